//! Defects, and the benign marks both classes share so that no single cue
//! (say, "a dark line") gives the label away.

use super::canvas::{Blob, Canvas, Ink};
use super::maths::{Pt, Rng8, colour, mix, pick, sign, unit_dir};
use super::scene::{Scene, View};
use rand::Rng;
use std::f32::consts::PI;

/// One kind of damage that makes a tyre defective.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Defect {
    Crack,
    Crazing,
    Cut,
    Bulge,
    Chunk,
    Worn,
}

/// Where on the picture a mark may go.
#[derive(Clone, Copy)]
enum Zone {
    Side,
    Tread,
    Floor,
}

/// Start of a random-walk crack, in tyre coordinates; `half` is the
/// half-width in pixels.
#[derive(Clone, Copy)]
struct Stroke {
    at: Pt,
    heading: f32,
    len: f32,
    half: f32,
}

/// Strokes of a block-capital-like glyph on a 1×2 grid: three rows, two
/// uprights per half and four diagonals.
const GLYPH_STROKES: [[f32; 4]; 11] = [
    [0., 0., 1., 0.],
    [0., 1., 1., 1.],
    [0., 2., 1., 2.],
    [0., 0., 0., 1.],
    [1., 0., 1., 1.],
    [0., 1., 0., 2.],
    [1., 1., 1., 2.],
    [0., 0., 1., 1.],
    [1., 0., 0., 1.],
    [0., 1., 1., 2.],
    [1., 1., 0., 2.],
];

impl Scene {
    /// Picks a point (tyre coordinates) on `zone` that lies inside the frame.
    fn sample(&self, rng: &mut Rng8, zone: Zone) -> Option<Pt> {
        for _ in 0..24 {
            let r = match (&self.view, zone) {
                (View::Wheel(wh), Zone::Side) => {
                    let span = wh.tread_in - wh.rim;
                    pick(rng, wh.rim + 0.1 * span, wh.tread_in - 0.05 * span)
                }
                (View::Wheel(wh), Zone::Tread) => pick(rng, wh.tread_in, wh.outer * 0.98),
                (View::Wheel(wh), Zone::Floor) => wh.outer * pick(rng, 1.1, 2.0),
                (View::Band(b), Zone::Side) => {
                    b.half * (1.0 + pick(rng, 0.1, 0.9) * b.shoulder) * sign(rng)
                }
                (View::Band(b), Zone::Tread) => b.half * pick(rng, -0.95, 0.95),
                (View::Band(b), Zone::Floor) => {
                    (b.half * (1.0 + b.shoulder) + pick(rng, 0.03, 0.6)) * sign(rng)
                }
            };
            let s = match &self.view {
                View::Wheel(_) => pick(rng, -PI, PI) * r,
                View::Band(_) => pick(rng, -0.8, 0.8),
            };
            let q = self.to_px([s, r]);
            let m = 0.04 * self.px;
            if q[0] > m && q[1] > m && q[0] < self.w as f32 - m && q[1] < self.h as f32 - m {
                return Some([s, r]);
            }
        }
        None
    }

    /// Line-width scale: grows gently with image size so thin marks stay
    /// thin, but never below its width at 256 px: drawn thinner, a crack in
    /// a small photo (the demo draws 96 px) is under a pixel wide and
    /// vanishes in the blur.
    fn pen(&self) -> f32 {
        (self.px / 256.0).sqrt().max(1.0)
    }

    /// Chooses this photo's defects; wear must be known before painting.
    pub(super) fn plan_defects(&mut self, rng: &mut Rng8) -> Vec<Defect> {
        use Defect::{Bulge, Chunk, Crack, Crazing, Cut, Worn};
        let n = [2, 2, 3, 3, 3, 4, 4, 5, 5, 6][rng.random_range(0..10)];
        let kinds: &[Defect] = match self.view {
            View::Wheel(_) => &[
                Crack, Crack, Crazing, Crazing, Cut, Bulge, Bulge, Chunk, Worn,
            ],
            View::Band(_) => &[Crack, Crack, Crazing, Cut, Chunk, Worn, Worn, Bulge],
        };
        let list: Vec<Defect> = (0..n)
            .map(|_| kinds[rng.random_range(0..kinds.len())])
            .collect();
        if list.contains(&Worn) {
            self.tread.wear = if rng.random_bool(0.6) {
                [pick(rng, 0.75, 1.0), pick(rng, -0.1, 0.1)]
            } else {
                // One-sided wear from bad alignment.
                [pick(rng, 0.55, 0.7), pick(rng, 0.6, 1.0) * sign(rng)]
            };
        }
        list
    }

    /// Draws one planned defect: most are plain to see, some faint, as in
    /// real photos.
    pub(super) fn draw_defect(&self, defect: Defect, rng: &mut Rng8, c: &mut Canvas) {
        let k = if rng.random_bool(0.08) {
            pick(rng, 0.2, 0.45)
        } else {
            pick(rng, 0.7, 1.3)
        };
        self.draw_defect_of_strength(defect, k, rng, c);
    }

    /// Draws one more local defect at full strength, for a photo whose
    /// planned damage does not show.
    pub(super) fn draw_plain_defect(&self, rng: &mut Rng8, c: &mut Canvas) {
        use Defect::{Bulge, Chunk, Crack, Crazing, Cut};
        let kinds = [Crack, Crazing, Cut, Bulge, Chunk];
        let defect = kinds[rng.random_range(0..kinds.len())];
        let k = pick(rng, 1.0, 1.3);
        self.draw_defect_of_strength(defect, k, rng, c);
    }

    fn draw_defect_of_strength(&self, defect: Defect, k: f32, rng: &mut Rng8, c: &mut Canvas) {
        let zone = match (&self.view, defect) {
            (_, Defect::Chunk) | (View::Band(_), Defect::Cut) => Zone::Tread,
            (View::Wheel(_), Defect::Crack) if rng.random_bool(0.25) => Zone::Tread,
            (View::Band(_), Defect::Crack | Defect::Crazing | Defect::Bulge)
                if rng.random_bool(0.75) =>
            {
                Zone::Tread
            }
            _ => Zone::Side,
        };
        let Some(at) = self.sample(rng, zone) else {
            return;
        };
        match defect {
            Defect::Crack => self.cracks(rng, c, at, k),
            Defect::Crazing => self.crazing(rng, c, at, k),
            Defect::Cut => self.cut(rng, c, at, k),
            Defect::Bulge => self.bulge(rng, c, at, k),
            Defect::Chunk => self.chunk(rng, c, at, k),
            Defect::Worn => {}
        }
    }

    /// A few long branching cracks around `at`, mostly along the circumference.
    fn cracks(&self, rng: &mut Rng8, c: &mut Canvas, at: Pt, k: f32) {
        let ink = Ink {
            carve: 2.0 + 4.0 * k,
            dark: 0.45 + 0.5 * k,
            ..Ink::default()
        };
        for _ in 0..rng.random_range(2..=6) {
            let start = [
                at[0] + pick(rng, -0.06, 0.06),
                at[1] + pick(rng, -0.02, 0.02),
            ];
            let len = pick(rng, 0.1, 0.4) * (0.5 + k);
            let heading = pick(rng, -0.6, 0.6) + if rng.random_bool(0.3) { PI * 0.5 } else { 0.0 };
            let half = (0.45 + 1.0 * k) * self.pen();
            self.crack(
                rng,
                c,
                Stroke {
                    at: start,
                    heading,
                    len,
                    half,
                },
                ink,
            );
        }
    }

    /// Branching random-walk crack, drawn with `ink`.
    fn crack(&self, rng: &mut Rng8, c: &mut Canvas, start: Stroke, ink: Ink) {
        let mut stack = vec![start];
        let mut branches = 6;
        while let Some(Stroke {
            at: mut p,
            mut heading,
            len,
            half,
        }) = stack.pop()
        {
            let steps = rng.random_range(5..=10);
            let step = len / steps as f32;
            let mut last = self.to_px(p);
            for i in 0..steps {
                heading += pick(rng, -0.5, 0.5);
                let d = unit_dir(heading);
                p = [p[0] + d[0] * step, p[1] + d[1] * step];
                let next = self.to_px(p);
                c.segment(
                    last,
                    next,
                    half * (1.0 - 0.6 * i as f32 / steps as f32),
                    ink,
                );
                last = next;
                if branches > 0 && rng.random_bool(0.12) {
                    branches -= 1;
                    let fork = heading + pick(rng, 0.5, 1.2) * sign(rng);
                    stack.push(Stroke {
                        at: p,
                        heading: fork,
                        len: len * 0.45,
                        half: half * 0.7,
                    });
                }
            }
        }
    }

    /// Weather checking: many short, mostly circumferential hairline cracks.
    fn crazing(&self, rng: &mut Rng8, c: &mut Canvas, at: Pt, k: f32) {
        let radius = pick(rng, 0.08, 0.3);
        let ink = Ink {
            carve: 1.5 + 2.5 * k,
            dark: 0.35 + 0.6 * k,
            ..Ink::default()
        };
        for _ in 0..rng.random_range(30..=120) {
            let p = [
                at[0] + pick(rng, -1.6, 1.6) * radius,
                at[1] + pick(rng, -0.5, 0.5) * radius,
            ];
            let d = unit_dir(pick(rng, -0.4, 0.4));
            // Checks long enough to read as lines, not dots, at 96 px.
            let len = pick(rng, 0.02, 0.06) * 0.5;
            let a = self.to_px([p[0] - d[0] * len, p[1] - d[1] * len]);
            let b = self.to_px([p[0] + d[0] * len, p[1] + d[1] * len]);
            c.segment(a, b, pick(rng, 0.45, 0.9) * self.pen(), ink);
        }
    }

    fn cut(&self, rng: &mut Rng8, c: &mut Canvas, at: Pt, k: f32) {
        let len = pick(rng, 0.05, 0.18) * (0.5 + k) * self.px;
        let wide = pick(rng, 0.006, 0.025) * (0.5 + k) * self.px + 0.6;
        let lip = colour(rng, 0.3, 0.45, 0.05);
        let edge = Ink {
            stain: 0.3 + 0.4 * k,
            color: lip,
            lift: 0.8,
            ..Ink::default()
        };
        let core = Ink {
            carve: 3.0 + 3.0 * k,
            dark: 0.5 + 0.45 * k,
            ..Ink::default()
        };
        c.gash(
            self.to_px(at),
            unit_dir(pick(rng, -PI, PI)),
            len,
            wide,
            edge,
            core,
        );
    }

    fn bulge(&self, rng: &mut Rng8, c: &mut Canvas, at: Pt, k: f32) {
        let r = pick(rng, 0.05, 0.14) * self.px;
        let rot = unit_dir(pick(rng, -PI, PI));
        let dome = Blob {
            c: self.to_px(at),
            r: [r, r * pick(rng, 0.45, 1.0)],
            rot,
            rough: 0.0,
            dome: true,
            salt: 0,
        };
        let shine = self.rubber.gloss + 0.5 * k;
        c.blob(
            &dome,
            Ink {
                // Raised and glossy enough to catch the light at 96 px:
                // half the lower domes changed under 1 % of the tyre's
                // pixels, and photos damaged by a bulge alone were missed
                // three times in four (bench/RESULTS.md).
                lift: r * (0.6 + 0.8 * k),
                shine,
                ..Ink::default()
            },
        );
    }

    /// Missing rubber: a jagged pit, lighter inside, sometimes showing cords.
    fn chunk(&self, rng: &mut Rng8, c: &mut Canvas, at: Pt, k: f32) {
        let r = pick(rng, 0.04, 0.1) * (0.6 + k) * self.px;
        let centre = self.to_px(at);
        let rot = unit_dir(pick(rng, -PI, PI));
        let pit = Blob {
            c: centre,
            r: [r, r * pick(rng, 0.5, 1.0)],
            rot,
            rough: 0.6,
            dome: false,
            salt: rng.random(),
        };
        // The torn edge lies in shadow: a dark rim round the lighter pit
        // tells missing rubber from a stone or a clod of dirt.
        let rim = Blob {
            r: [pit.r[0] * 1.2 + self.pen(), pit.r[1] * 1.2 + self.pen()],
            ..pit
        };
        c.blob(
            &rim,
            Ink {
                carve: r * 0.1,
                dark: 0.5 + 0.3 * k,
                ..Ink::default()
            },
        );
        let inner = mix(self.rubber.col, [0.45, 0.4, 0.35], pick(rng, 0.2, 0.5));
        c.blob(
            &pit,
            Ink {
                carve: r * (0.2 + 0.2 * k),
                stain: 0.5 + 0.4 * k,
                color: inner,
                ..Ink::default()
            },
        );
        if rng.random_bool(0.35) {
            let d = unit_dir(pick(rng, -PI, PI));
            let cord = Ink {
                stain: 0.8,
                color: colour(rng, 0.4, 0.6, 0.2),
                lift: 0.5,
                ..Ink::default()
            };
            for j in -2..=2 {
                let off = j as f32 * r * 0.25;
                let o = [centre[0] - d[1] * off, centre[1] + d[0] * off];
                let (a, b) = (
                    [o[0] - d[0] * r * 0.6, o[1] - d[1] * r * 0.6],
                    [o[0] + d[0] * r * 0.6, o[1] + d[1] * r * 0.6],
                );
                c.segment(a, b, 0.5 * self.pen(), cord);
            }
        }
    }

    /// Nuisance marks drawn with the same odds for both classes.
    pub(super) fn benign_marks(&self, rng: &mut Rng8, c: &mut Canvas) {
        let letter_odds = if matches!(self.view, View::Wheel(_)) {
            0.85
        } else {
            0.4
        };
        if rng.random_bool(letter_odds) {
            let white = rng.random_bool(0.08);
            for _ in 0..rng.random_range(1..=3) {
                self.lettering(rng, c, white);
            }
        }
        let dirt = colour(rng, 0.3, 0.5, 0.2);
        for _ in 0..(rng.random::<f32>() * rng.random::<f32>() * 30.0) as usize {
            let ink = Ink {
                stain: pick(rng, 0.3, 0.9),
                color: dirt,
                lift: 0.4,
                ..Ink::default()
            };
            self.speck(rng, c, ink, 0.002, 0.012);
        }
        for _ in 0..rng.random_range(0..=3) {
            self.scuff(rng, c);
        }
        // Vent spews wear off within the first few thousand kilometres.
        if rng.random_bool(f64::from(0.55 * (1.0 - self.age))) {
            self.hairs(rng, c);
        }
        self.weathering(rng, c);
        if rng.random_bool(0.3) {
            self.seam(rng, c);
        }
        if rng.random_bool(0.25) {
            // Cracks in the concrete floor look just like tyre cracks.
            let ink = Ink {
                carve: 2.0,
                dark: pick(rng, 0.3, 0.7),
                floor: true,
                ..Ink::default()
            };
            if let Some(at) = self.sample(rng, Zone::Floor) {
                let (heading, len) = (pick(rng, -PI, PI), pick(rng, 0.2, 0.6));
                self.crack(
                    rng,
                    c,
                    Stroke {
                        at,
                        heading,
                        len,
                        half: self.pen(),
                    },
                    ink,
                );
            }
        }
        if rng.random_bool(0.15) {
            let paint =
                [[0.9, 0.8, 0.2], [0.8, 0.2, 0.15], [0.9, 0.9, 0.9]][rng.random_range(0..3)];
            self.speck(
                rng,
                c,
                Ink {
                    stain: 0.9,
                    color: paint,
                    ..Ink::default()
                },
                0.006,
                0.015,
            );
        }
        if matches!(self.view, View::Band(_)) && rng.random_bool(0.3) {
            for _ in 0..rng.random_range(1..=4) {
                let stone = Ink {
                    stain: 0.9,
                    color: colour(rng, 0.4, 0.7, 0.1),
                    lift: 2.0,
                    ..Ink::default()
                };
                // A third of the smallest chunk's radius at most: a stone
                // as large as a chunk was a look-alike no model could tell.
                self.speck(rng, c, stone, 0.004, 0.01);
            }
        }
    }

    fn speck(&self, rng: &mut Rng8, c: &mut Canvas, ink: Ink, lo: f32, hi: f32) {
        let zone = if rng.random_bool(0.5) {
            Zone::Side
        } else {
            Zone::Tread
        };
        let Some(at) = self.sample(rng, zone) else {
            return;
        };
        let r = pick(rng, lo, hi) * self.px;
        let rot = unit_dir(pick(rng, -PI, PI));
        let blob = Blob {
            c: self.to_px(at),
            r: [r, r * pick(rng, 0.5, 1.0)],
            rot,
            rough: 0.5,
            dome: false,
            salt: rng.random(),
        };
        c.blob(&blob, ink);
    }

    /// Pale smudge where the rubber rubbed against a kerb.
    fn scuff(&self, rng: &mut Rng8, c: &mut Canvas) {
        let Some(at) = self.sample(rng, Zone::Side) else {
            return;
        };
        let d = unit_dir(pick(rng, -0.5, 0.5));
        let len = pick(rng, 0.03, 0.12);
        let pale = colour(rng, 0.35, 0.5, 0.05);
        let ink = Ink {
            stain: pick(rng, 0.15, 0.45),
            color: pale,
            ..Ink::default()
        };
        let a = self.to_px([at[0] - d[0] * len, at[1] - d[1] * len]);
        let b = self.to_px([at[0] + d[0] * len, at[1] + d[1] * len]);
        c.segment(a, b, pick(rng, 0.004, 0.02) * self.px, ink);
    }

    /// Faint hairline checking that any ageing tyre shows, well short of
    /// the cracks that make a tyre defective.
    fn weathering(&self, rng: &mut Rng8, c: &mut Canvas) {
        let ink = Ink {
            carve: pick(rng, 0.4, 1.0),
            dark: pick(rng, 0.08, 0.22),
            ..Ink::default()
        };
        for _ in 0..((self.age - 0.4).max(0.0) * 80.0) as usize {
            let zone = if rng.random_bool(0.6) {
                Zone::Side
            } else {
                Zone::Tread
            };
            let Some(at) = self.sample(rng, zone) else {
                continue;
            };
            let d = unit_dir(pick(rng, -0.4, 0.4));
            let len = pick(rng, 0.005, 0.015);
            let a = self.to_px([at[0] - d[0] * len, at[1] - d[1] * len]);
            let b = self.to_px([at[0] + d[0] * len, at[1] + d[1] * len]);
            c.segment(a, b, 0.3 * self.pen(), ink);
        }
    }

    /// Vent spews: short moulding hairs on new tyres.
    fn hairs(&self, rng: &mut Rng8, c: &mut Canvas) {
        let ink = Ink {
            lift: 1.2,
            ..Ink::default()
        };
        for _ in 0..rng.random_range(5..=40) {
            let zone = if rng.random_bool(0.5) {
                Zone::Side
            } else {
                Zone::Tread
            };
            let Some(at) = self.sample(rng, zone) else {
                continue;
            };
            let a = self.to_px(at);
            let d = unit_dir(pick(rng, -PI, PI));
            let len = pick(rng, 0.004, 0.012) * self.px;
            c.segment(
                a,
                [a[0] + d[0] * len, a[1] + d[1] * len],
                0.35 * self.pen(),
                ink,
            );
        }
    }

    /// Straight mould parting line: thin and ridge-like.
    fn seam(&self, rng: &mut Rng8, c: &mut Canvas) {
        let Some(at) = self.sample(rng, Zone::Side) else {
            return;
        };
        let (a, b) = match &self.view {
            View::Wheel(wh) => (
                [at[0] / at[1] * wh.rim, wh.rim],
                [at[0] / at[1] * wh.outer, wh.outer],
            ),
            View::Band(bd) => {
                let edge = bd.half * (1.0 + bd.shoulder);
                ([at[0], -edge], [at[0] + pick(rng, -0.2, 0.2), edge])
            }
        };
        // A ridge, lighter than the rubber round it: drawn darker, at 96 px
        // it read as a crack (bench/RESULTS.md).
        let ink = Ink {
            lift: pick(rng, 0.6, 1.5),
            stain: 0.3,
            color: [0.5, 0.5, 0.5],
            ..Ink::default()
        };
        c.segment(self.to_px(a), self.to_px(b), 0.4 * self.pen(), ink);
    }

    /// A run of embossed letter-like glyphs along the sidewall.
    fn lettering(&self, rng: &mut Rng8, c: &mut Canvas, white: bool) {
        let Some(at) = self.sample(rng, Zone::Side) else {
            return;
        };
        let span = match &self.view {
            View::Wheel(wh) => (wh.tread_in - wh.rim) * 5.0,
            View::Band(b) => b.half * b.shoulder * 4.0,
        };
        let size = pick(rng, 0.02, 0.06) * span;
        // Raised letters hold dust and read lighter than the wall: drawn
        // by their relief alone, at 96 px their shadows read as cracks and
        // cuts, and models learned to pass over thin dark lines.
        let stain = if white { 0.85 } else { 0.3 };
        let ink = Ink {
            lift: pick(rng, 0.8, 2.0),
            stain,
            color: [0.85, 0.85, 0.82],
            ..Ink::default()
        };
        for i in 0..rng.random_range(3..=12) {
            // About four of the eleven strokes per glyph.
            let glyph = rng.random::<u16>() & (rng.random::<u16>() | rng.random::<u16>());
            let place = |gx: f32, gy: f32| {
                self.to_px([
                    at[0] + (i as f32 * 0.8 + gx * 0.55) * size,
                    at[1] + (gy * 0.5 - 0.5) * size,
                ])
            };
            for (_, s) in GLYPH_STROKES
                .iter()
                .enumerate()
                .filter(|(j, _)| glyph >> j & 1 == 1)
            {
                c.segment(
                    place(s[0], s[1]),
                    place(s[2], s[3]),
                    size * self.px * 0.05,
                    ink,
                );
            }
        }
    }
}
