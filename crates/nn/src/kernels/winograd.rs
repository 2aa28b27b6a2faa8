//! Inference forward pass of 3×3, stride-1 convolutions by Winograd's
//! minimal filtering F(2×2, 3×3) (Lavin & Gray, 2015): each 2×2 block of
//! output comes from a 4×4 block of input with 16 multiplications per
//! channel pair instead of 36, as 16 matrix products `[out, in] × [in,
//! tiles]`. The transforms add a little float rounding (about 1e-6
//! relative), so training keeps the exact im2col path and only inference
//! uses this one, where the seed CNN's two wide 3×3 layers dominate a
//! single image's latency.

use rayon::prelude::*;

use super::conv::{Band, ConvGeometry, carve_bands, with_scratch};
use super::matmul::{MatMut, MatRef, matmul};

/// Positions of the 4×4 transformed tile.
const POSITIONS: usize = 16;
/// Tile rows transformed and multiplied together: wide enough products
/// that gemm's per-call cost fades, small enough to stay near the cache.
const ROWS_PER_BLOCK: usize = 4;

/// Whether [`forward`] can compute this convolution: 3×3, stride 1.
pub fn computes(g: &ConvGeometry) -> bool {
    g.kernel == 3 && g.stride == 1 && g.is_valid()
}

/// Whether [`forward`] is also faster than im2col here: enough input
/// channels that the products outweigh the transforms, and enough tiles per
/// row that each product is wide. Measured at batch 1 on 2 cores: 1.3–1.5×
/// faster at 24–32 channels on 56²–224² planes, slower from 14² down.
pub fn applies(g: &ConvGeometry) -> bool {
    computes(g) && g.in_channels >= 8 && g.out_height() >= 24 && g.out_width() >= 24
}

/// `output = relu?(conv(input, weight) + bias)` for a geometry where
/// [`applies`] holds; same layouts as [`super::conv::conv2d_forward`].
pub fn forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    output: &mut [f32],
) {
    assert!(computes(g), "winograd: not a 3×3 stride-1 convolution");
    assert_eq!(input.len(), g.input_len(), "winograd: input length");
    assert_eq!(weight.len(), g.weight_len(), "winograd: weight length");
    assert_eq!(output.len(), g.output_len(), "winograd: output length");
    let u = transform_filters(weight, g.out_channels, g.in_channels);
    let (oh, ow) = (g.out_height(), g.out_width());
    let tile_rows = oh.div_ceil(2);
    let threads = rayon::current_num_threads();
    // Several bands per thread so uneven finishing evens out.
    let per_band = tile_rows
        .div_ceil((4 * threads).div_ceil(g.batch.max(1)))
        .max(1);
    let ranges: Vec<(usize, usize)> = (0..tile_rows)
        .step_by(per_band)
        .map(|t| (2 * t, (2 * (t + per_band)).min(oh)))
        .collect();
    let mut bands = carve_bands(output, g.out_channels, (oh, ow), &ranges);
    let image_len = g.in_channels * g.in_pixels();
    bands.par_iter_mut().enumerate().for_each(|(i, band)| {
        let image = &input[(i / ranges.len()) * image_len..][..image_len];
        let (r0, r1) = ranges[i % ranges.len()];
        let rows: Vec<usize> = (r0 / 2..r1.div_ceil(2)).collect();
        for block in rows.chunks(ROWS_PER_BLOCK) {
            block_forward(g, &u, image, bias, relu, block, band);
        }
    });
}

/// `U = G g Gᵀ` for every filter, laid out `[position][out][in]`.
fn transform_filters(weight: &[f32], outs: usize, ins: usize) -> Vec<f32> {
    let mut u = vec![0.0; POSITIONS * outs * ins];
    for (pair, g) in weight.chunks_exact(9).enumerate() {
        let mut s = [[0.0f32; 3]; 4];
        for col in 0..3 {
            let (a, b, c) = (g[col], g[3 + col], g[6 + col]);
            s[0][col] = a;
            s[1][col] = 0.5 * (a + b + c);
            s[2][col] = 0.5 * (a - b + c);
            s[3][col] = c;
        }
        for (row, s) in s.iter().enumerate() {
            let t = [
                s[0],
                0.5 * (s[0] + s[1] + s[2]),
                0.5 * (s[0] - s[1] + s[2]),
                s[2],
            ];
            for (col, v) in t.into_iter().enumerate() {
                u[(row * 4 + col) * outs * ins + pair] = v;
            }
        }
    }
    u
}

/// A block of rows of 2×2 output tiles: transform the input tiles, 16
/// products, transform back into the band.
fn block_forward(
    g: &ConvGeometry,
    u: &[f32],
    image: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    tile_rows: &[usize],
    band: &mut Band<'_>,
) {
    let (ins, outs) = (g.in_channels, g.out_channels);
    let per_row = g.out_width().div_ceil(2);
    let tiles = per_row * tile_rows.len();
    with_scratch(POSITIONS * (ins + outs) * tiles, |scratch| {
        let (v, m) = scratch.split_at_mut(POSITIONS * ins * tiles);
        for (k, &tile_row) in tile_rows.iter().enumerate() {
            transform_inputs(g, image, tile_row, (k * per_row, tiles), v);
        }
        for p in 0..POSITIONS {
            matmul(
                MatMut::row_major(&mut m[p * outs * tiles..][..outs * tiles], outs, tiles),
                MatRef::row_major(&u[p * outs * ins..][..outs * ins], outs, ins),
                MatRef::row_major(&v[p * ins * tiles..][..ins * tiles], ins, tiles),
                false,
            );
        }
        for (k, &tile_row) in tile_rows.iter().enumerate() {
            store_outputs(g, m, (k * per_row, tiles), tile_row, bias, relu, band);
        }
    });
}

/// `V = Bᵀ d B` of every 4×4 input tile of the row, `[position][in][tile]`;
/// reads outside the image are the padding's zeros. `columns` is (first
/// column of this row's tiles, columns in all). `Bᵀ` is applied down whole
/// input rows first and then across each tile's four columns, so both
/// stages run over contiguous memory.
fn transform_inputs(
    g: &ConvGeometry,
    image: &[f32],
    tile_row: usize,
    columns: (usize, usize),
    v: &mut [f32],
) {
    let (first, tiles) = columns;
    let per_row = g.out_width().div_ceil(2);
    // Padded row width, rounded so every tile's four columns exist.
    let width = 2 * per_row + 2;
    let mut rows = vec![0.0f32; 4 * width];
    let mut t = vec![0.0f32; 4 * width];
    for (c, plane) in image.chunks_exact(g.in_pixels()).enumerate() {
        load_rows(g, plane, tile_row, width, &mut rows);
        let (d0, rest) = rows.split_at(width);
        let (d1, rest) = rest.split_at(width);
        let (d2, d3) = rest.split_at(width);
        let (t0, rest) = t.split_at_mut(width);
        let (t1, rest) = rest.split_at_mut(width);
        let (t2, t3) = rest.split_at_mut(width);
        for x in 0..width {
            t0[x] = d0[x] - d2[x];
            t1[x] = d1[x] + d2[x];
            t2[x] = d2[x] - d1[x];
            t3[x] = d1[x] - d3[x];
        }
        for (i, ti) in [&*t0, &*t1, &*t2, &*t3].into_iter().enumerate() {
            let at = |col: usize| ((i * 4 + col) * g.in_channels + c) * tiles + first;
            let (v0, v1, v2, v3) = four_rows(v, [at(0), at(1), at(2), at(3)], per_row);
            for tile in 0..per_row {
                let (a, b, cc, d) = (
                    ti[2 * tile],
                    ti[2 * tile + 1],
                    ti[2 * tile + 2],
                    ti[2 * tile + 3],
                );
                v0[tile] = a - cc;
                v1[tile] = b + cc;
                v2[tile] = cc - b;
                v3[tile] = b - d;
            }
        }
    }
}

/// The four input rows of a tile row, padded with zeros, into `rows`.
fn load_rows(g: &ConvGeometry, plane: &[f32], tile_row: usize, width: usize, rows: &mut [f32]) {
    let (h, w, pad) = (g.in_height, g.in_width, g.padding);
    rows.fill(0.0);
    for (dy, row) in rows.chunks_exact_mut(width).enumerate() {
        let y = (2 * tile_row + dy).checked_sub(pad).filter(|&y| y < h);
        if let Some(y) = y {
            let n = w.min(width - pad);
            row[pad..pad + n].copy_from_slice(&plane[y * w..y * w + n]);
        }
    }
}

/// Four disjoint `len`-long runs of `v` starting at `starts` (increasing).
fn four_rows(
    v: &mut [f32],
    starts: [usize; 4],
    len: usize,
) -> (&mut [f32], &mut [f32], &mut [f32], &mut [f32]) {
    let (_, rest) = v.split_at_mut(starts[0]);
    let (r0, rest) = rest.split_at_mut(starts[1] - starts[0]);
    let (r1, rest) = rest.split_at_mut(starts[2] - starts[1]);
    let (r2, rest) = rest.split_at_mut(starts[3] - starts[2]);
    (
        &mut r0[..len],
        &mut r1[..len],
        &mut r2[..len],
        &mut rest[..len],
    )
}

/// `Y = Aᵀ M A` of every tile, plus bias and ReLU, into the band's rows,
/// over contiguous runs of tiles.
fn store_outputs(
    g: &ConvGeometry,
    m: &[f32],
    columns: (usize, usize),
    tile_row: usize,
    bias: Option<&[f32]>,
    relu: bool,
    band: &mut Band<'_>,
) {
    let (oh, ow, outs) = (g.out_height(), g.out_width(), g.out_channels);
    let (first, tiles) = columns;
    let per_row = ow.div_ceil(2);
    let mut pair_rows = vec![0.0f32; 2 * 2 * per_row];
    // Aᵀ M, per output row dy and column c: M rows 0+1+2 (dy 0) and
    // 1−2−3 (dy 1). Kept as runs over the tiles so each loop vectorises.
    let mut r = vec![0.0f32; 8 * per_row];
    for (o, plane) in band.planes.iter_mut().enumerate() {
        let b = bias.map_or(0.0, |b| b[o]);
        let run = |p: usize| &m[(p * outs + o) * tiles + first..][..per_row];
        for (k, rk) in r.chunks_exact_mut(per_row).enumerate() {
            let (dy, c) = (k / 4, k % 4);
            let (a, bb, cc) = (run(c), run(4 + c), run(8 + c));
            let d = run(12 + c);
            if dy == 0 {
                for (((x, a), bb), cc) in rk.iter_mut().zip(a).zip(bb).zip(cc) {
                    *x = a + bb + cc;
                }
            } else {
                for (((x, bb), cc), d) in rk.iter_mut().zip(bb).zip(cc).zip(d) {
                    *x = bb - cc - d;
                }
            }
        }
        for (dy, out) in pair_rows.chunks_exact_mut(2 * per_row).enumerate() {
            let rows = &r[4 * dy * per_row..][..4 * per_row];
            let (r0, rest) = rows.split_at(per_row);
            let (r1, rest) = rest.split_at(per_row);
            let (r2, r3) = rest.split_at(per_row);
            for ((((pair, a), bb), cc), d) in
                out.chunks_exact_mut(2).zip(r0).zip(r1).zip(r2).zip(r3)
            {
                pair[0] = a + bb + cc + b;
                pair[1] = bb - cc - d + b;
            }
        }
        for (dy, out) in pair_rows.chunks_exact(2 * per_row).enumerate() {
            let y = 2 * tile_row + dy;
            if y >= oh {
                break;
            }
            let dst = &mut plane[(y - band.first_row) * ow..][..ow];
            if relu {
                for (d, &v) in dst.iter_mut().zip(out) {
                    *d = if v < 0.0 { 0.0 } else { v };
                }
            } else {
                dst.copy_from_slice(&out[..ow]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2d_forward;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_im2col_convolution_on_odd_sizes_padding_and_batches() {
        let cases = [
            (1, 8, 9, 7, 5, 0, true),
            (2, 16, 12, 12, 8, 1, false),
            (1, 32, 23, 17, 24, 0, true),
            (3, 9, 6, 11, 3, 1, true),
        ];
        for (batch, ins, h, w, outs, padding, relu) in cases {
            let g = ConvGeometry {
                batch,
                in_channels: ins,
                in_height: h,
                in_width: w,
                out_channels: outs,
                kernel: 3,
                stride: 1,
                padding,
            };
            assert!(computes(&g));
            let (input, weight, bias) = (
                values(g.input_len(), 1),
                values(g.weight_len(), 2),
                values(outs, 3),
            );
            let mut want = vec![0.0; g.output_len()];
            conv2d_forward(&g, &input, &weight, Some(&bias), relu, &mut want);
            let mut got = vec![f32::NAN; g.output_len()];
            forward(&g, &input, &weight, Some(&bias), relu, &mut got);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{g:?} at {i}: {a} vs {b}"
                );
            }
        }
    }
}
