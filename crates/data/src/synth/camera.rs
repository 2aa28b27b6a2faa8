//! Light and camera: shading the material buffers, the camera's exposure,
//! tone, grain and blur, and packing the final pixels.

use super::canvas::Canvas;
use super::maths::{
    Pt, Rgb, Rng8, band, cos_p, mix, pick, round_i, scale, sin_p, speckle_row, unit_dir,
};
use super::scene::Scene;
use image::{DynamicImage, GrayImage, RgbImage};
use rand::Rng;
use std::f32::consts::PI;

/// Key light, ambient level and the cast shadow it makes on the floor.
pub(super) struct Light {
    dir: [f32; 3],
    halfway: [f32; 3],
    ambient: f32,
    /// Reciprocal of a flat surface's brightness, which maps to albedo.
    flat: f32,
    spec: f32,
    pub(super) shadow: Pt,
    pub(super) shadow_k: f32,
}

impl Light {
    pub(super) fn random(rng: &mut Rng8) -> Self {
        let az = unit_dir(pick(rng, -PI, PI));
        let elev = pick(rng, 0.4, 1.25);
        let (ce, se) = (cos_p(elev), sin_p(elev));
        let dir = [ce * az[0], ce * az[1], se];
        let hz = se + 1.0;
        let hn = (dir[0] * dir[0] + dir[1] * dir[1] + hz * hz).sqrt();
        let ambient = pick(rng, 0.25, 0.55);
        let len = pick(rng, 0.02, 0.1);
        Self {
            dir,
            halfway: [dir[0] / hn, dir[1] / hn, hz / hn],
            ambient,
            flat: 1.0 / (ambient + (1.0 - ambient) * se),
            spec: pick(rng, 0.1, 0.8),
            shadow: [-az[0] * len, -az[1] * len],
            shadow_k: pick(rng, 0.2, 0.65),
        }
    }
}

/// Camera and post-processing: exposure, fall-off, blur, noise, grey.
pub(super) struct Look {
    exposure: f32,
    grad: Pt,
    vignette: f32,
    cast: Rgb,
    tone: f32,
    noise: f32,
    /// Passes of the box blur at 256 px; scaled with the photo's size.
    blur: usize,
    gray: bool,
    /// JPEG quality the photo is saved at.
    pub(super) quality: u8,
    edge: Option<[f32; 4]>,
    salt: u32,
}

impl Look {
    pub(super) fn random(rng: &mut Rng8) -> Self {
        let roll = rng.random::<f32>();
        let edge = rng.random_bool(0.15).then(|| {
            let d = unit_dir(pick(rng, -PI, PI));
            [d[0], d[1], pick(rng, -0.3, 0.3), pick(rng, 0.2, 0.5)]
        });
        Self {
            exposure: pick(rng, 0.85, 1.4),
            grad: [pick(rng, -0.5, 0.5), pick(rng, -0.5, 0.5)],
            vignette: pick(rng, 0.0, 0.7),
            cast: [
                1.0 + pick(rng, -0.08, 0.08),
                1.0,
                1.0 + pick(rng, -0.08, 0.08),
            ],
            tone: pick(rng, -0.2, 0.8),
            noise: pick(rng, 0.004, 0.03),
            blur: if roll < 0.7 {
                0
            } else if roll < 0.92 {
                1
            } else {
                2
            },
            gray: rng.random_bool(0.08),
            quality: rng.random_range(85..=92),
            edge,
            salt: rng.random(),
        }
    }

    /// Exposure, light fall-off and a soft straight shadow edge at a world point.
    fn gain(&self, x: f32, y: f32) -> f32 {
        let r2 = x * x + y * y;
        let lin = 1.0 + self.grad[0] * x + self.grad[1] * y;
        let mut g = self.exposure * lin * (1.0 - self.vignette * r2 * 0.8);
        if let Some([nx, ny, off, k]) = self.edge {
            g *= 1.0 - k * band(nx * x + ny * y - off, 0.0, 0.03);
        }
        g.max(0.0)
    }

    /// Tone curve as a table over `0..2` in steps of `1 / TONE_STEPS`, in
    /// output levels; a lookup avoids three divisions per pixel.
    fn tone_curve(&self) -> Vec<f32> {
        (0..2 * TONE_STEPS as usize)
            .map(|i| {
                let v = i as f32 / TONE_STEPS;
                255.0 * v * (1.0 + self.tone) / (1.0 + self.tone * v)
            })
            .collect()
    }

    /// Separable box blur in integers, for soft-focus photos. The passes
    /// scale with the photo's shorter side, so a photo is as soft at any
    /// size: two passes at 96 px, as many as at 256, had left the demo's
    /// softest photos too soft to show a crack, labels no model can learn.
    pub(super) fn blur(&self, img: &mut RgbImage) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        for _ in 0..(self.blur * w.min(h) + 128) / 256 {
            blur_rows(img, w);
            blur_cols(img, w, h);
        }
    }

    /// Wraps the pixels as RGB, or converts them to 8-bit grey for the grey
    /// share of photos.
    pub(super) fn finish(&self, img: RgbImage) -> DynamicImage {
        if !self.gray {
            return DynamicImage::ImageRgb8(img);
        }
        let gray = GrayImage::from_fn(img.width(), img.height(), |x, y| {
            let [r, g, b] = img.get_pixel(x, y).0.map(u32::from);
            image::Luma([((299 * r + 587 * g + 114 * b + 500) / 1000) as u8])
        });
        DynamicImage::ImageLuma8(gray)
    }
}

/// Resolution of the tone table per unit of linear light; the table spans
/// `0..2` so it has `2 * TONE_STEPS` entries and `TONE_MASK` indexes it.
const TONE_STEPS: f32 = 1024.0;
const TONE_MASK: usize = 2047;

fn avg3(a: u8, b: u8, c: u8) -> u8 {
    ((u16::from(a) + u16::from(b) + u16::from(c) + 1) / 3) as u8
}

/// Three-tap horizontal box filter in place; edge columns stay as they are.
fn blur_rows(buf: &mut [u8], w: usize) {
    let src = buf.to_vec();
    for (s, o) in src.chunks_exact(w * 3).zip(buf.chunks_exact_mut(w * 3)) {
        for j in 3..(w - 1) * 3 {
            o[j] = avg3(s[j - 3], s[j], s[j + 3]);
        }
    }
}

/// Three-tap vertical box filter in place; edge rows stay as they are.
fn blur_cols(buf: &mut [u8], w: usize, h: usize) {
    let line = w * 3;
    let src = buf.to_vec();
    for (y, out) in buf.chunks_exact_mut(line).enumerate().take(h - 1).skip(1) {
        let (a, b, c) = (
            &src[(y - 1) * line..],
            &src[y * line..],
            &src[(y + 1) * line..],
        );
        for (j, o) in out.iter_mut().enumerate() {
            *o = avg3(a[j], b[j], c[j]);
        }
    }
}

impl Scene {
    /// Lights the canvas and applies the camera look.
    pub(super) fn shade(&self, c: &Canvas) -> RgbImage {
        let (w, h) = (c.w, c.h);
        let relief = c.height.iter().zip(&c.lift).zip(&c.carve);
        let hgt: Vec<f32> = relief
            .map(|((base, lift), carve)| base + lift - carve)
            .collect();
        let xs: Vec<f32> = (0..w).map(|x| self.world(x, 0)[0]).collect();
        let (look, tone) = (&self.look, self.look.tone_curve());
        let mut out = RgbImage::new(w as u32, h as u32);
        for (y, out_row) in out.chunks_exact_mut(w * 3).enumerate() {
            let row = &hgt[y * w..(y + 1) * w];
            let up = &hgt[y.saturating_sub(1) * w..][..w];
            let down = &hgt[(y + 1).min(h - 1) * w..][..w];
            let (wy, grain_row) = (self.world(0, y)[1], speckle_row(y, look.salt));
            for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
                let gx = 0.5 * (row[(x + 1).min(w - 1)] - row[x.saturating_sub(1)]);
                let lit = self.lit(c, y * w + x, gx, 0.5 * (down[x] - up[x]));
                let gain = look.gain(xs[x], wy) * TONE_STEPS;
                let grain = (grain_row(x) - 0.5) * look.noise * 255.0;
                for ch in 0..3 {
                    let v = (lit[ch] * gain * look.cast[ch]).clamp(0.0, TONE_STEPS * 2.0 - 1.0);
                    let level = tone[round_i(v) as usize & TONE_MASK] + grain;
                    px[ch] = round_i(level.clamp(0.0, 255.0)) as u8;
                }
            }
        }
        out
    }

    fn lit(&self, c: &Canvas, i: usize, gx: f32, gy: f32) -> Rgb {
        let inv = 1.0 / (gx * gx + gy * gy + 1.0).sqrt();
        let n = [-gx * inv, -gy * inv, inv];
        let l = &self.light;
        let diffuse = (n[0] * l.dir[0] + n[1] * l.dir[1] + n[2] * l.dir[2]).max(0.0);
        let mut spec = (n[0] * l.halfway[0] + n[1] * l.halfway[1] + n[2] * l.halfway[2]).max(0.0);
        for _ in 0..5 {
            spec *= spec;
        }
        let base = scale(
            mix(c.albedo[i], c.stain_col[i], c.stain[i]),
            1.0 - c.dark[i],
        );
        let k = (l.ambient + (1.0 - l.ambient) * diffuse) * l.flat;
        let s = spec * c.gloss[i] * l.spec;
        [base[0] * k + s, base[1] * k + s, base[2] * k + s]
    }
}
