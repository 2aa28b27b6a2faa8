//! The scene of one photo: tyre geometry and tread pattern, rubber and
//! backdrop, and the per-pixel pass that paints them into material buffers.

use super::camera::{Light, Look};
use super::canvas::{Blob, Canvas, Material, Surf};
use super::maths::{
    Pt, Rgb, Rng8, atan2_p, band, cell, colour, floor_i, mix, noise, periodic, pick, scale,
    sharp_band, sign, sin_p, unit_dir,
};
use rand::Rng;
use std::f32::consts::{PI, TAU};

#[derive(Clone, Copy)]
enum Family {
    Ribs,
    Blocks,
    Zigzag,
    Chevron,
    Lugs,
}

/// Tread pattern in tread units: `t` across the width (-1..1), `ps` along
/// the circumference in pitches.
pub(super) struct Tread {
    family: Family,
    pitch: f32,
    inv_pitch: f32,
    half: f32,
    ribs: Vec<f32>,
    zig: f32,
    rib_norm: f32,
    /// Lateral groove slope, in pitches per tread unit.
    skew: f32,
    lat_norm: f32,
    depth: f32,
    sipes: bool,
    /// Wear at the centre line and its change across the width.
    pub(super) wear: Pt,
}

impl Tread {
    fn random(rng: &mut Rng8, age: f32) -> Self {
        let families = [
            Family::Ribs,
            Family::Blocks,
            Family::Zigzag,
            Family::Chevron,
            Family::Lugs,
        ];
        let family = families[rng.random_range(0..families.len())];
        let pitch = pick(rng, 0.25, 0.7);
        let n = match family {
            Family::Chevron => rng.random_range(0..=1),
            Family::Lugs => 0,
            _ => rng.random_range(2..=4),
        };
        let ribs = (0..n)
            .map(|k| -0.7 + 1.4 * (k as f32 + 0.5) / n as f32 + pick(rng, -0.05, 0.05))
            .collect();
        let zig = if matches!(family, Family::Zigzag) {
            pick(rng, 0.03, 0.1)
        } else {
            0.0
        };
        let slope = pick(rng, 0.3, 1.2) * sign(rng);
        Self {
            family,
            pitch,
            inv_pitch: 1.0 / pitch,
            half: pick(rng, 0.035, 0.09),
            ribs,
            zig,
            rib_norm: 1.0 / (1.0 + (4.0 * zig / pitch) * (4.0 * zig / pitch)).sqrt(),
            skew: slope / pitch,
            lat_norm: 1.0 / (1.0 + slope * slope).sqrt(),
            depth: pick(rng, 0.06, 0.16),
            sipes: rng.random_bool(0.5),
            // Serviceable tread keeps most of its depth: up to 0.35 worn,
            // short of a worn-out tyre's 0.55 and more (`plan_defects`); up
            // to 0.55 had made shallow new tread the look-alike of worn.
            wear: [
                pick(rng, 0.0, 0.35) * (0.4 + 0.6 * age),
                pick(rng, -0.15, 0.15),
            ],
        }
    }

    pub(super) fn wear_at(&self, t: f32) -> f32 {
        (self.wear[0] + self.wear[1] * t).clamp(0.0, 1.0)
    }

    /// Groove coverage 0..1 at a tread point; `aa` is one pixel in tread units.
    fn groove(&self, ps: f32, t: f32, aa: f32) -> f32 {
        // Grooves taper towards the bottom, so wear also narrows them.
        let half = self.half * (1.0 - 0.6 * self.wear_at(t));
        let sharp = 1.0 / (aa + half * 0.4);
        let zig = self.zig * (4.0 * periodic(ps) - 1.0);
        let (mut g, mut row) = (0.0f32, 0.0);
        for &r in &self.ribs {
            g = g.max(sharp_band((t - r - zig).abs() * self.rib_norm, half, sharp));
            row += f32::from(t > r);
        }
        let lateral = match self.family {
            Family::Ribs | Family::Zigzag if self.sipes => {
                let d = periodic(ps * 2.0 + row * 0.5) * self.pitch * 0.5;
                0.6 * band(d, half * 0.25, aa)
            }
            Family::Ribs | Family::Zigzag => 0.0,
            Family::Blocks => sharp_band(periodic(ps + row * 0.37) * self.pitch, half * 0.9, sharp),
            Family::Chevron => {
                let d = periodic(ps - self.skew * t.abs()) * self.pitch;
                sharp_band(d * self.lat_norm, half, sharp)
            }
            Family::Lugs => {
                let phase = if t > 0.0 { 0.0 } else { 0.5 };
                let d = periodic(ps + phase + self.skew * t) * self.pitch;
                sharp_band(d * self.lat_norm, half * 1.8, sharp)
            }
        };
        g.max(lateral)
    }
}

#[derive(Clone, Copy)]
enum RimKind {
    Hole,
    Steel,
    Alloy,
}

/// A whole tyre seen roughly face-on, or a close-up arc of one.
pub(super) struct Wheel {
    c: Pt,
    rot: Pt,
    squash: f32,
    pub(super) outer: f32,
    pub(super) tread_in: f32,
    pub(super) rim: f32,
    rim_kind: RimKind,
    spokes: f32,
    pitches: f32,
    t_unit: f32,
    metal: Rgb,
    /// Reciprocals of `squash`, `t_unit`, the ring and sidewall widths and
    /// `rim`, so the per-pixel code multiplies instead of dividing.
    inv: [f32; 5],
}

impl Wheel {
    fn random(rng: &mut Rng8, tread: &Tread) -> Self {
        let close = rng.random_bool(0.5);
        let outer = if close {
            pick(rng, 0.8, 1.6)
        } else {
            pick(rng, 0.33, 0.55)
        };
        let off = if close {
            outer * pick(rng, 0.65, 0.95)
        } else {
            pick(rng, 0.0, 0.12)
        };
        let d = unit_dir(pick(rng, -PI, PI));
        let ring = outer * pick(rng, 0.1, 0.17);
        let t_unit = ring / 0.65;
        let (squash, rim) = (pick(rng, 0.72, 1.0), outer * pick(rng, 0.5, 0.66));
        let inv = [
            1.0 / squash,
            1.0 / t_unit,
            1.0 / ring,
            1.0 / (outer - ring - rim),
            1.0 / rim,
        ];
        Self {
            c: [off * d[0], off * d[1]],
            rot: unit_dir(pick(rng, -PI, PI)),
            squash,
            outer,
            tread_in: outer - ring,
            rim,
            rim_kind: [RimKind::Hole, RimKind::Steel, RimKind::Alloy][rng.random_range(0..3)],
            spokes: rng.random_range(5..=10) as f32,
            pitches: floor_i(TAU * outer / (tread.pitch * t_unit) + 0.5).max(12) as f32,
            t_unit,
            metal: colour(rng, 0.25, 0.65, 0.05),
            inv,
        }
    }

    /// Radius and local (unsquashed) coordinates of a world point.
    fn polar(&self, x: f32, y: f32) -> (f32, Pt) {
        let (dx, dy) = (x - self.c[0], y - self.c[1]);
        let lx = dx * self.rot[0] + dy * self.rot[1];
        let ly = (dy * self.rot[0] - dx * self.rot[1]) * self.inv[0];
        ((lx * lx + ly * ly).sqrt(), [lx, ly])
    }

    fn to_world(&self, s: f32, r: f32) -> Pt {
        let d = unit_dir(s / r.max(1e-3));
        let l = [r * d[0], r * d[1] * self.squash];
        [
            self.c[0] + l[0] * self.rot[0] - l[1] * self.rot[1],
            self.c[1] + l[0] * self.rot[1] + l[1] * self.rot[0],
        ]
    }
}

/// A close-up of the tread face: a straight band with shoulders.
pub(super) struct Band {
    c: Pt,
    rot: Pt,
    pub(super) half: f32,
    pub(super) shoulder: f32,
    curve: f32,
    /// Reciprocals of `half` and `shoulder`.
    inv: Pt,
}

impl Band {
    fn random(rng: &mut Rng8) -> Self {
        let (c, rot) = (
            [pick(rng, -0.15, 0.15), pick(rng, -0.15, 0.15)],
            unit_dir(pick(rng, -PI, PI)),
        );
        let (half, shoulder) = (pick(rng, 0.22, 0.7), pick(rng, 0.1, 0.5));
        Self {
            c,
            rot,
            half,
            shoulder,
            curve: pick(rng, 0.0, 0.6),
            inv: [1.0 / half, 1.0 / shoulder],
        }
    }

    fn local(&self, x: f32, y: f32) -> Pt {
        let (dx, dy) = (x - self.c[0], y - self.c[1]);
        [
            dx * self.rot[0] + dy * self.rot[1],
            dy * self.rot[0] - dx * self.rot[1],
        ]
    }

    fn to_world(&self, s: f32, r: f32) -> Pt {
        [
            self.c[0] + s * self.rot[0] - r * self.rot[1],
            self.c[1] + s * self.rot[1] + r * self.rot[0],
        ]
    }
}

/// How the tyre is framed.
pub(super) enum View {
    Wheel(Wheel),
    Band(Band),
}

/// Floor or wall behind the tyre, with optional tiles and clutter.
struct Backdrop {
    base: Rgb,
    alt: Rgb,
    scale: f32,
    grain: f32,
    /// Tiles per world unit, or 0 for no tiles.
    tile: f32,
    tile_rot: Pt,
    clutter: Vec<(Blob, Rgb)>,
    salt: u32,
}

impl Backdrop {
    fn random(rng: &mut Rng8) -> Self {
        // Concrete, tiles, asphalt, plain wall, soil or grass.
        let kinds = [
            (0.4, 0.7, 0.05, 0.25),
            (0.55, 0.85, 0.1, 0.06),
            (0.15, 0.3, 0.04, 0.5),
        ];
        let more = [(0.2, 0.8, 0.2, 0.04), (0.25, 0.5, 0.3, 0.35)];
        let kind = rng.random_range(0..5);
        let (lo, hi, tint, grain) = if kind < 3 {
            kinds[kind]
        } else {
            more[kind - 3]
        };
        let base = colour(rng, lo, hi, tint);
        let n = if rng.random_bool(0.5) {
            0
        } else {
            rng.random_range(1..=3)
        };
        let clutter = (0..n)
            .map(|_| (clutter_blob(rng), colour(rng, 0.05, 0.8, 0.4)))
            .collect();
        Self {
            base,
            alt: scale(base, pick(rng, 0.7, 1.2)),
            scale: pick(rng, 2.0, 10.0),
            grain: grain * pick(rng, 0.5, 1.5),
            tile: if kind == 1 {
                1.0 / pick(rng, 0.12, 0.4)
            } else {
                0.0
            },
            tile_rot: unit_dir(pick(rng, -PI, PI)),
            clutter,
            salt: rng.random(),
        }
    }

    fn at(&self, x: f32, y: f32, aa: f32) -> Surf {
        let (f, salt) = (self.scale, self.salt);
        let n = 0.65 * noise(x * f, y * f, salt) + 0.35 * noise(x * f * 3.1, y * f * 3.1, salt ^ 1);
        let fine = cell(x / aa, y / aa, salt ^ 2);
        let mut col = scale(mix(self.base, self.alt, n), 1.0 + self.grain * (fine - 0.5));
        if self.tile > 0.0 {
            let u = x * self.tile_rot[0] + y * self.tile_rot[1];
            let v = y * self.tile_rot[0] - x * self.tile_rot[1];
            let d = periodic(u * self.tile).min(periodic(v * self.tile)) / self.tile;
            col = scale(col, 1.0 - 0.4 * band(d, 0.004, aa));
        }
        let mut height = fine * self.grain * 2.0;
        for (b, c) in &self.clutter {
            let (dx, dy) = (x - b.c[0], y - b.c[1]);
            let lx = (dx * b.rot[0] + dy * b.rot[1]) / b.r[0];
            let ly = (dy * b.rot[0] - dx * b.rot[1]) / b.r[1];
            let q = if b.dome {
                (lx * lx + ly * ly).sqrt()
            } else {
                lx.abs().max(ly.abs())
            };
            let k = band(q, 1.0, aa / b.r[0].min(b.r[1]));
            col = mix(col, scale(*c, 0.9 + 0.2 * n), k);
            height += k * 3.0;
        }
        Surf {
            albedo: col,
            height,
            gloss: 0.03,
            material: Material::Floor,
        }
    }
}

/// A box (or, when `dome`, a round object) lying on the floor, world units.
fn clutter_blob(rng: &mut Rng8) -> Blob {
    let r = pick(rng, 0.05, 0.3);
    Blob {
        c: [pick(rng, -0.6, 0.6), pick(rng, -0.6, 0.6)],
        r: [r, r * pick(rng, 0.3, 1.0)],
        rot: unit_dir(pick(rng, -PI, PI)),
        rough: 0.0,
        dome: rng.random_bool(0.3),
        salt: 0,
    }
}

/// Rubber colour, dust and grain.
pub(super) struct Rubber {
    pub(super) col: Rgb,
    dust: f32,
    dust_col: Rgb,
    pub(super) gloss: f32,
    salt: u32,
}

impl Rubber {
    fn random(rng: &mut Rng8, age: f32) -> Self {
        let dust = pick(rng, 0.0, 0.7);
        let col = colour(rng, 0.07, 0.17, 0.05);
        // Old rubber oxidises towards a dull brownish grey.
        let faded = 0.5 * age * pick(rng, 0.2, 1.0);
        Self {
            col: mix(col, [0.2, 0.18, 0.16], faded),
            dust: dust * dust * (0.3 + age),
            dust_col: colour(rng, 0.35, 0.55, 0.12),
            gloss: pick(rng, 0.05, 0.4) * (1.2 - age),
            salt: rng.random(),
        }
    }

    fn at(&self, x: f32, y: f32, px: f32) -> Rgb {
        let d = noise(x * 6.0, y * 6.0, self.salt ^ 7);
        scale(
            mix(self.col, self.dust_col, self.dust * d),
            0.97 + 0.06 * cell(x * px, y * px, self.salt),
        )
    }
}

/// Everything needed to paint one photo.
pub(super) struct Scene {
    pub(super) w: usize,
    pub(super) h: usize,
    /// Pixels per world unit (the shorter image side is one unit).
    pub(super) px: f32,
    inv_px: f32,
    /// Tyre age in `0..1`, which drives dust, dullness, wear and weathering.
    pub(super) age: f32,
    backdrop: Backdrop,
    pub(super) tread: Tread,
    pub(super) view: View,
    pub(super) rubber: Rubber,
    pub(super) light: Light,
    pub(super) look: Look,
}

impl Scene {
    pub(super) fn new(rng: &mut Rng8, w: usize, h: usize, age: f32) -> Self {
        let backdrop = Backdrop::random(rng);
        let tread = Tread::random(rng, age);
        let view = if rng.random_bool(0.5) {
            View::Wheel(Wheel::random(rng, &tread))
        } else {
            View::Band(Band::random(rng))
        };
        let rubber = Rubber::random(rng, age);
        let (light, look) = (Light::random(rng), Look::random(rng));
        let px = w.min(h) as f32;
        Self {
            w,
            h,
            px,
            inv_px: 1.0 / px,
            age,
            backdrop,
            tread,
            view,
            rubber,
            light,
            look,
        }
    }

    pub(super) fn world(&self, x: usize, y: usize) -> Pt {
        let wx = (x as f32 + 0.5 - self.w as f32 * 0.5) * self.inv_px;
        [wx, (y as f32 + 0.5 - self.h as f32 * 0.5) * self.inv_px]
    }

    /// Maps tyre coordinates (`s` along the circumference, `r` the radius or
    /// offset across the band, world units) to pixel coordinates.
    pub(super) fn to_px(&self, p: Pt) -> Pt {
        let w = match &self.view {
            View::Wheel(wh) => wh.to_world(p[0], p[1]),
            View::Band(b) => b.to_world(p[0], p[1]),
        };
        [
            w[0] * self.px + self.w as f32 * 0.5,
            w[1] * self.px + self.h as f32 * 0.5,
        ]
    }

    pub(super) fn paint(&self) -> Canvas {
        let mut c = Canvas::new(self.w, self.h);
        let xs: Vec<f32> = (0..self.w).map(|x| self.world(x, 0)[0]).collect();
        for y in 0..self.h {
            let wy = self.world(0, y)[1];
            for (x, &wx) in xs.iter().enumerate() {
                let s = self.surface(wx, wy).unwrap_or_else(|| self.floor(wx, wy));
                c.put(y * self.w + x, s);
            }
        }
        c
    }

    fn floor(&self, x: f32, y: f32) -> Surf {
        let mut s = self.backdrop.at(x, y, self.inv_px);
        let [sx, sy] = self.light.shadow;
        s.albedo = scale(
            s.albedo,
            1.0 - self.light.shadow_k * self.cover(x - sx, y - sy),
        );
        if let View::Wheel(wh) = &self.view
            && wh.polar(x, y).0 <= wh.outer
        {
            s.material = Material::Gap;
        }
        s
    }

    /// Soft silhouette of the tyre, for its cast shadow.
    fn cover(&self, x: f32, y: f32) -> f32 {
        match &self.view {
            View::Wheel(wh) => band(wh.polar(x, y).0 / wh.outer, 1.0, 0.08),
            View::Band(b) => band(b.local(x, y)[1].abs() * b.inv[0], 1.0 + b.shoulder, 0.15),
        }
    }

    fn surface(&self, x: f32, y: f32) -> Option<Surf> {
        match &self.view {
            View::Wheel(wh) => self.wheel_at(wh, x, y),
            View::Band(b) => self.band_at(b, x, y),
        }
    }

    /// Rubber with tread-groove coverage `g` cut `depth` pixels deep.
    fn rubber_surf(&self, x: f32, y: f32, g: f32, wear: f32, depth: f32) -> Surf {
        let col = self.rubber.at(x, y, self.px);
        let occlusion = 1.0 - 0.6 * g * (1.0 - wear * wear);
        Surf {
            albedo: scale(col, occlusion),
            height: -depth * (1.0 - wear) * g,
            gloss: self.rubber.gloss * (1.0 + wear),
            material: Material::Rubber,
        }
    }

    fn wheel_at(&self, wh: &Wheel, x: f32, y: f32) -> Option<Surf> {
        let (r, l) = wh.polar(x, y);
        if r > wh.outer {
            return None;
        }
        if r >= wh.tread_in {
            let f = (r - wh.tread_in) * wh.inv[2];
            let t = 0.35 + 0.65 * f;
            let ps = atan2_p(l[1], l[0]) * (1.0 / TAU) * wh.pitches;
            let g = self.tread.groove(ps, t, self.inv_px * wh.inv[1]);
            let depth = self.tread.depth * wh.t_unit * self.px;
            // Groove ends notch the silhouette like real shoulder lugs.
            return (f <= 1.0 - 0.25 * g)
                .then(|| self.rubber_surf(x, y, g, self.tread.wear_at(t), depth));
        }
        if r >= wh.rim {
            let rr = (r - wh.rim) * wh.inv[3];
            let albedo = self.rubber.at(x, y, self.px);
            let bead = band(rr, 0.06, 0.02);
            let height = (sin_p(PI * rr) * 0.08 + bead * 0.02) * (wh.tread_in - wh.rim) * self.px;
            let gloss = self.rubber.gloss;
            return Some(Surf {
                albedo,
                height,
                gloss,
                material: Material::Rubber,
            });
        }
        self.rim_at(wh, r * wh.inv[4], atan2_p(l[1], l[0]))
    }

    fn rim_at(&self, wh: &Wheel, rr: f32, a: f32) -> Option<Surf> {
        let size = wh.rim * self.px;
        let aa = 1.0 / size;
        let lip = band((rr - 0.93).abs(), 0.04, aa * 2.0);
        let open = match wh.rim_kind {
            RimKind::Hole => return None,
            RimKind::Steel => {
                let arc = periodic(a / TAU * wh.spokes) * TAU * rr / wh.spokes;
                let hole = (arc * arc + (rr - 0.62) * (rr - 0.62)).sqrt();
                band(hole, 0.09, aa).max(band(rr, 0.14, aa))
            }
            RimKind::Alloy => {
                let soft = aa * wh.spokes / (TAU * rr.max(0.05));
                let spoke = band(periodic(a / TAU * wh.spokes), 0.1 + 0.1 * (1.0 - rr), soft);
                1.0 - spoke.max(band(rr, 0.22, aa)).max(band(1.0 - rr, 0.14, aa))
            }
        };
        Some(Surf {
            albedo: scale(wh.metal, 1.0 - 0.85 * open),
            height: (lip * 0.03 + (1.0 - open) * 0.05) * size,
            gloss: 0.6,
            material: Material::Metal,
        })
    }

    fn band_at(&self, b: &Band, x: f32, y: f32) -> Option<Surf> {
        let [u, v] = b.local(x, y);
        let t = v * b.inv[0];
        let side = ((t.abs() - 1.0) * b.inv[1]).max(0.0);
        if side > 1.0 {
            return None;
        }
        let ps = u * b.inv[0] * self.tread.inv_pitch;
        let depth = self.tread.depth * b.half * self.px;
        let tc = t.clamp(-1.0, 1.0);
        let g = self.tread.groove(ps, tc, self.inv_px * b.inv[0]) * (1.0 - side);
        let mut s = self.rubber_surf(x, y, g, self.tread.wear_at(tc), depth);
        // The shoulder rolls away from the camera and the tread curves along u.
        s.height -= side * side * 0.3 * b.half * self.px;
        s.albedo = scale(
            s.albedo,
            (1.0 - b.curve * u * u).max(0.3) * (1.0 - 0.3 * side),
        );
        Some(s)
    }
}
