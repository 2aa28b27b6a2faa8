//! Material buffers: the base paint writes them per pixel, marks are stamped
//! on top, and the lighting pass turns them into colours.

use super::maths::{Pt, Rgb, band, noise, seg_dist};

/// Material at one point before lighting; `height` is in pixels.
pub(super) struct Surf {
    pub(super) albedo: Rgb,
    pub(super) height: f32,
    pub(super) gloss: f32,
    pub(super) material: Material,
}

/// What a pixel shows; a mark targets the rubber or the open floor.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Material {
    Rubber,
    /// The wheel's rim.
    Metal,
    /// Floor around the tyre.
    Floor,
    /// Floor seen within the tyre's outline: through a rimless tyre's hole
    /// or between shoulder lugs. Floor cracks skip it: one seen there lies
    /// against the rubber and reads as the tyre's own crack.
    Gap,
}

/// How a mark changes the material where it covers it. Channels combine by
/// maximum so overlapping strokes of one mark do not double up.
#[derive(Clone, Copy, Default)]
pub(super) struct Ink {
    pub(super) carve: f32,
    pub(super) lift: f32,
    pub(super) dark: f32,
    pub(super) stain: f32,
    pub(super) color: Rgb,
    pub(super) shine: f32,
    /// Mark the open floor instead of the rubber.
    pub(super) floor: bool,
}

/// Elliptic mark in pixel space: a smooth dome, or a patch with a jagged edge.
pub(super) struct Blob {
    pub(super) c: Pt,
    pub(super) r: Pt,
    pub(super) rot: Pt,
    pub(super) rough: f32,
    pub(super) dome: bool,
    pub(super) salt: u32,
}

pub(super) struct Canvas {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) albedo: Vec<Rgb>,
    pub(super) height: Vec<f32>,
    pub(super) gloss: Vec<f32>,
    pub(super) material: Vec<Material>,
    pub(super) carve: Vec<f32>,
    pub(super) lift: Vec<f32>,
    pub(super) dark: Vec<f32>,
    pub(super) stain: Vec<f32>,
    pub(super) stain_col: Vec<Rgb>,
}

impl Canvas {
    /// How many pixels show tyre rubber.
    pub(super) fn rubber_pixels(&self) -> usize {
        self.material
            .iter()
            .filter(|&&m| m == Material::Rubber)
            .count()
    }

    pub(super) fn new(w: usize, h: usize) -> Self {
        let n = w * h;
        Self {
            w,
            h,
            albedo: vec![[0.0; 3]; n],
            height: vec![0.0; n],
            gloss: vec![0.0; n],
            material: vec![Material::Floor; n],
            carve: vec![0.0; n],
            lift: vec![0.0; n],
            dark: vec![0.0; n],
            stain: vec![0.0; n],
            stain_col: vec![[0.0; 3]; n],
        }
    }

    pub(super) fn put(&mut self, i: usize, s: Surf) {
        self.albedo[i] = s.albedo;
        self.height[i] = s.height;
        self.gloss[i] = s.gloss;
        self.material[i] = s.material;
    }

    fn apply(&mut self, i: usize, k: f32, ink: &Ink) {
        let target = if ink.floor {
            Material::Floor
        } else {
            Material::Rubber
        };
        if self.material[i] != target {
            return;
        }
        self.carve[i] = self.carve[i].max(k * ink.carve);
        self.lift[i] = self.lift[i].max(k * ink.lift);
        self.dark[i] = self.dark[i].max(k * ink.dark);
        self.gloss[i] = self.gloss[i].max(k * ink.shine);
        if k * ink.stain > self.stain[i] {
            self.stain[i] = k * ink.stain;
            self.stain_col[i] = ink.color;
        }
    }

    /// Applies `ink` over a pixel box, weighted by `cover` at pixel centres.
    fn stamp(&mut self, lo: Pt, hi: Pt, ink: Ink, cover: impl Fn(f32, f32) -> f32) {
        let x0 = lo[0].max(0.0) as usize;
        let y0 = lo[1].max(0.0) as usize;
        let x1 = ((hi[0] + 1.0).max(0.0) as usize).min(self.w);
        let y1 = ((hi[1] + 1.0).max(0.0) as usize).min(self.h);
        for y in y0..y1 {
            for x in x0..x1 {
                let k = cover(x as f32 + 0.5, y as f32 + 0.5);
                if k > 0.0 {
                    self.apply(y * self.w + x, k, &ink);
                }
            }
        }
    }

    pub(super) fn segment(&mut self, a: Pt, b: Pt, half: f32, ink: Ink) {
        let pad = half + 2.0;
        let lo = [a[0].min(b[0]) - pad, a[1].min(b[1]) - pad];
        let hi = [a[0].max(b[0]) + pad, a[1].max(b[1]) + pad];
        self.stamp(lo, hi, ink, |x, y| band(seg_dist([x, y], a, b), half, 1.0));
    }

    pub(super) fn blob(&mut self, b: &Blob, ink: Ink) {
        let pad = b.r[0].max(b.r[1]) * (1.0 + b.rough) + 2.0;
        let mean = 0.5 * (b.r[0] + b.r[1]);
        let (lo, hi) = ([b.c[0] - pad, b.c[1] - pad], [b.c[0] + pad, b.c[1] + pad]);
        self.stamp(lo, hi, ink, |x, y| {
            let (dx, dy) = (x - b.c[0], y - b.c[1]);
            let lx = (dx * b.rot[0] + dy * b.rot[1]) / b.r[0];
            let ly = (dy * b.rot[0] - dx * b.rot[1]) / b.r[1];
            let q2 = lx * lx + ly * ly;
            if b.dome {
                return (1.0 - q2).max(0.0) * (1.0 - q2).max(0.0);
            }
            let edge = 1.0 + b.rough * (noise(lx * 2.5 + 9.0, ly * 2.5 + 9.0, b.salt) - 0.5);
            band(q2.sqrt() * mean, edge * mean, 1.0)
        });
    }

    /// Lens-shaped gash along unit vector `dir`: `edge` over the full width
    /// (the torn lips), `core` over the narrower deep middle.
    pub(super) fn gash(&mut self, c: Pt, dir: Pt, len: f32, wide: f32, edge: Ink, core: Ink) {
        let pad = len * 0.5 + wide + 2.0;
        let (lo, hi) = ([c[0] - pad, c[1] - pad], [c[0] + pad, c[1] + pad]);
        for (ink, frac) in [(edge, 1.0), (core, 0.55)] {
            self.stamp(lo, hi, ink, |x, y| {
                let (dx, dy) = (x - c[0], y - c[1]);
                let along = 2.0 * (dx * dir[0] + dy * dir[1]) / len;
                let half = wide * frac * (1.0 - along * along);
                if half <= 0.0 {
                    return 0.0;
                }
                band((dy * dir[0] - dx * dir[1]).abs(), half, 1.0)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_ink_marks_only_the_open_floor_and_tyre_ink_only_rubber() {
        let mut c = Canvas::new(4, 1);
        let materials = [
            Material::Floor,
            Material::Gap,
            Material::Metal,
            Material::Rubber,
        ];
        c.material.copy_from_slice(&materials);
        let crack = |floor| Ink {
            carve: 1.0,
            floor,
            ..Ink::default()
        };
        c.segment([0.0, 0.5], [4.0, 0.5], 1.0, crack(true));
        assert_eq!(c.carve, [1.0, 0.0, 0.0, 0.0]);
        c.segment([0.0, 0.5], [4.0, 0.5], 1.0, crack(false));
        assert_eq!(c.carve, [1.0, 0.0, 0.0, 1.0]);
    }
}
