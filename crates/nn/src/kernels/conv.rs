//! 2-D convolution, forward and backward, over contiguous NCHW `f32` tensors.
//!
//! Every pass is im2col + gemm on a *tile*: a run of a few hundred output
//! pixels (a couple of rows), sized so that its patch matrix and its output
//! (or gradient) stay in one core's L2 cache. The full im2col matrix of an
//! image would be tens of MB and run the gemm from memory at half speed.
//! A patch row is one shifted copy of a plane when the kernel allows it
//! (stride 1 with the output the input's shape, or a strided kernel read
//! through its input's phase planes), and is gathered row by row otherwise.
//!
//! Parallelism is coarse: one rayon task per image, each running gemm on its
//! own thread (`gemm::Parallelism::None`). When the batch is too small to keep
//! every core busy (inference at batch 1), images are cut further into chunks
//! of output rows; when an image's plane is small (a late layer's 7×7), a
//! task takes several images and lays their patches side by side, so that
//! one product reads the weights (and, backward, updates their gradient)
//! for all of them. Weight and bias gradients go to one accumulator per worker
//! thread (per task when [`super::set_deterministic`] is on, so the sum's
//! order is fixed), summed into the caller's buffers once at the end. Input gradients
//! of adjacent chunks overlap by a few input rows, so chunks run in two phases
//! (even chunks, then odd ones) whose input-row bands are disjoint.
//!
//! Scratch memory (patch, output and gradient tiles) lives in a per-thread
//! buffer that grows to the largest tile seen and is then reused; a call
//! allocates only one weight-sized accumulator per worker and the small lists
//! of slice borrows that hand each task its rows.
//!
//! Shape mismatches panic with a message at entry: the checks cost nothing next
//! to the convolution, and a silent mismatch (e.g. an over-long output left
//! partly unwritten) would corrupt training without a trace.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::matmul::{MatMut, MatRef, matmul};

/// Floats of per-thread tile scratch to aim for: with the weights this stays
/// under the 1 MB L2 of one core.
const TILE_FLOATS: usize = 160 * 1024;

/// Tiles hold a multiple of this many pixels: gemm then runs whole 16-lane
/// AVX-512 (or two 8-lane AVX2) rows without repacking its operands, 5–20 %
/// faster than with whole output rows of arbitrary width.
const TILE_QUANTUM: usize = 16;

/// Parallel tasks per worker thread to aim for when the batch is small, so
/// that a core slowed by other processes does not hold up the call.
const TASKS_PER_THREAD: usize = 4;

/// Geometry of one 2-D convolution over a batch: square kernels, equal stride
/// and zero padding on both axes, weights laid out `[out, in, k, k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of each input image.
    pub in_channels: usize,
    /// Input rows.
    pub in_height: usize,
    /// Input columns.
    pub in_width: usize,
    /// Channels of each output image (number of filters).
    pub out_channels: usize,
    /// Side of the square kernel.
    pub kernel: usize,
    /// Step between kernel positions, on both axes.
    pub stride: usize,
    /// Zeros added on every side of the input.
    pub padding: usize,
}

impl ConvGeometry {
    /// Whether the kernels can run on this geometry: non-zero sizes and
    /// stride, and a kernel no larger than the padded input.
    pub fn is_valid(&self) -> bool {
        let sizes = [
            self.in_channels,
            self.in_height,
            self.in_width,
            self.out_channels,
            self.kernel,
            self.stride,
        ];
        sizes.iter().all(|&n| n > 0)
            && self.kernel <= self.in_height + 2 * self.padding
            && self.kernel <= self.in_width + 2 * self.padding
    }

    /// Output rows.
    pub fn out_height(&self) -> usize {
        (self.in_height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Output columns.
    pub fn out_width(&self) -> usize {
        (self.in_width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Elements of the input (and input-gradient) tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_height * self.in_width
    }

    /// Elements of the weight (and weight-gradient) tensor.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    /// Elements of the output (and output-gradient) tensor.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_pixels()
    }

    /// Multiply-adds ×2 of the forward pass (each backward product costs the same).
    pub fn forward_flops(&self) -> u64 {
        2 * (self.output_len() as u64) * (self.patch_len() as u64)
    }

    /// Inputs one output element reads: `in_channels · kernel²`.
    fn patch_len(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    fn out_pixels(&self) -> usize {
        self.out_height() * self.out_width()
    }

    pub(super) fn in_pixels(&self) -> usize {
        self.in_height * self.in_width
    }

    /// A 1×1, stride-1, unpadded kernel reads the input as its own patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// How many planes per input channel im2col shifts whole (see
    /// [`shifted_im2col`]): 1 for a stride-1 kernel whose output has the
    /// input's shape (the input's own planes); `stride²` phase planes (see
    /// [`split_phases`]) where every read past the output's span is padding
    /// (`stride · out ≥ in` on both axes) and the kernel reads every phase
    /// (`kernel ≥ stride`; a strided 1×1 kernel would split four planes to
    /// read one); none otherwise.
    fn phases(&self) -> Option<usize> {
        let (s, oh, ow) = (self.stride, self.out_height(), self.out_width());
        let fits = if s == 1 {
            oh == self.in_height && ow == self.in_width
        } else {
            self.kernel >= s && s * oh >= self.in_height && s * ow >= self.in_width
        };
        fits.then_some(s * s)
    }

    /// The phase-plane rows a tile's patch rows read (row `oy + sy` for
    /// each of its output rows `oy` and each kernel row's `sy`).
    fn phase_rows(&self, tile: Tile) -> Range<usize> {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let (r0, r1) = tile.rows(self.out_width());
        let first = (r0 as isize + (-p).div_euclid(s)).max(0);
        let end = r1 as isize + (self.kernel as isize - 1 - p).div_euclid(s);
        first as usize..(end.max(first) as usize).min(self.out_height())
    }

    /// [`Self::phase_shift`] of every kernel position in row-major order,
    /// taken once per call: a late layer's patch rows are a few pixels long,
    /// and their divisions cost more than the copy.
    fn phase_shifts(&self) -> Vec<(usize, isize, isize)> {
        let k = self.kernel;
        (0..k * k).map(|i| self.phase_shift(i / k, i % k)).collect()
    }

    /// Where kernel position `(ky, kx)` reads in the shifted planes: the
    /// phase (`py · stride + px`), the offset `sy · out_width + sx` from an
    /// output pixel to the phase-plane pixel it reads, and `sx`. Input row
    /// `oy·s + ky − p` is row `oy + sy` of phase `py`, with
    /// `ky − p = sy·s + py`; columns alike.
    fn phase_shift(&self, ky: usize, kx: usize) -> (usize, isize, isize) {
        let (s, p) = (self.stride as isize, self.padding as isize);
        let (sy, py) = (
            (ky as isize - p).div_euclid(s),
            (ky as isize - p).rem_euclid(s),
        );
        let (sx, px) = (
            (kx as isize - p).div_euclid(s),
            (kx as isize - p).rem_euclid(s),
        );
        let phase = (py * s + px) as usize;
        (phase, sy * self.out_width() as isize + sx, sx)
    }

    /// The input row read by output row `oy` at kernel row `ky`, if not padding.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride + ky)
            .checked_sub(self.padding)
            .filter(|&iy| iy < self.in_height)
    }

    /// Input rows `[lo, hi)` that output rows `[r0, r1)` read.
    fn footprint(&self, r0: usize, r1: usize) -> (usize, usize) {
        let lo = (r0 * self.stride).saturating_sub(self.padding);
        let hi = ((r1 - 1) * self.stride + self.kernel).saturating_sub(self.padding);
        let lo = lo.min(self.in_height);
        (lo, hi.clamp(lo, self.in_height))
    }
}

/// `output = conv(input, weight) + bias`, then `max(0, ·)` when `relu`.
///
/// `input` is `[batch, in, h, w]`, `weight` `[out, in, k, k]`, `bias` `[out]`
/// and `output` `[batch, out, out_h, out_w]`, all contiguous. Panics if the
/// geometry is invalid or a length does not match it.
pub fn conv2d_forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    output: &mut [f32],
) {
    check_common(g, input, weight, output.len(), "output");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), g.out_channels, "conv2d: bias length");
    }
    if g.batch == 0 {
        return;
    }
    let plan = Plan::new(g, g.patch_len() + g.out_channels);
    let epilogue = Epilogue { bias, relu };
    forward_with_plan(g, &plan, input, weight, epilogue, output);
}

/// Gradients of [`conv2d_forward`].
///
/// `grad_output` is dL/d(output). With `relu_output` (the forward's post-ReLU
/// output) the gradient is first masked where that output is `<= 0`, tile by
/// tile. `grad_input` is overwritten; `grad_weight` and `grad_bias` are added
/// to, so that a caller can sum over micro-batches. Panics if the geometry is
/// invalid or a length does not match it.
#[allow(clippy::too_many_arguments)] // mirrors the forward's tensors one for one
pub fn conv2d_backward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    grad_output: &[f32],
    relu_output: Option<&[f32]>,
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    check_common(g, input, weight, grad_output.len(), "grad_output");
    if let Some(out) = relu_output {
        assert_eq!(out.len(), g.output_len(), "conv2d: relu_output length");
    }
    if let Some(gi) = grad_input.as_deref() {
        assert_eq!(gi.len(), g.input_len(), "conv2d: grad_input length");
    }
    assert_eq!(
        grad_weight.len(),
        g.weight_len(),
        "conv2d: grad_weight length"
    );
    if let Some(gb) = grad_bias.as_deref() {
        assert_eq!(gb.len(), g.out_channels, "conv2d: grad_bias length");
    }
    if g.batch == 0 {
        return;
    }
    let plan = Plan::new(g, g.patch_len() + g.out_channels);
    let tensors = BackwardTensors {
        input,
        weight,
        grad_output,
        relu_output,
    };
    backward_with_plan(g, &plan, &tensors, grad_input, grad_weight, grad_bias);
}

fn check_common(g: &ConvGeometry, input: &[f32], weight: &[f32], out_len: usize, what: &str) {
    assert!(g.is_valid(), "conv2d: invalid geometry {g:?}");
    assert_eq!(input.len(), g.input_len(), "conv2d: input length");
    assert_eq!(weight.len(), g.weight_len(), "conv2d: weight length");
    assert_eq!(out_len, g.output_len(), "conv2d: {what} length");
}

/// How a call cuts its work: each image into `chunks` runs of `chunk_rows`
/// output rows, each run into tiles of `tile_pixels`. A parallel task is one
/// run of one image or, when an image is one small tile, `group` whole
/// images side by side in one product.
#[derive(Clone, Copy, Debug)]
struct Plan {
    tile_pixels: usize,
    chunk_rows: usize,
    chunks: usize,
    group: usize,
}

impl Plan {
    /// A plan whose tiles hold about [`TILE_FLOATS`] at `floats_per_pixel`
    /// scratch floats per output pixel.
    fn new(g: &ConvGeometry, floats_per_pixel: usize) -> Self {
        let threads = rayon::current_num_threads();
        let wanted_chunks = (TASKS_PER_THREAD * threads).div_ceil(g.batch);
        let tile_pixels = TILE_FLOATS / floats_per_pixel / TILE_QUANTUM * TILE_QUANTUM;
        let plan = Self::with_sizes(g, tile_pixels.max(TILE_QUANTUM), wanted_chunks);
        // A plane of a few pixels (a late layer's 7×7) alone would give gemm
        // a product a few columns wide that streams the whole weight matrix
        // (and, backward, its whole gradient) once per image.
        let most = g.batch.div_ceil(TASKS_PER_THREAD * threads);
        let fits = tile_pixels / g.out_pixels();
        if plan.chunks == 1 && !g.is_pointwise() {
            plan.grouped(fits.min(most))
        } else {
            plan
        }
    }

    /// The same plan with up to `group` whole images per task.
    fn grouped(self, group: usize) -> Self {
        Self {
            group: group.max(1),
            ..self
        }
    }

    /// Parallel tasks over a batch.
    fn tasks(&self, g: &ConvGeometry) -> usize {
        g.batch.div_ceil(self.group) * self.chunks
    }

    /// The images of the `q`-th group.
    fn images(&self, g: &ConvGeometry, q: usize) -> Range<usize> {
        let first = q * self.group;
        first..(first + self.group).min(g.batch)
    }

    /// A plan with about `wanted_chunks` chunks per image and tiles of at most
    /// `tile_pixels` pixels (at least one).
    fn with_sizes(g: &ConvGeometry, tile_pixels: usize, wanted_chunks: usize) -> Self {
        let oh = g.out_height();
        // Chunk i+1 must be tall enough that the input rows of chunks i and
        // i+2 do not overlap: (rows + 1) · stride >= kernel.
        let separating = g.kernel.div_ceil(g.stride).saturating_sub(1);
        let chunk_rows = oh
            .div_ceil(wanted_chunks.max(1))
            .max(separating)
            .clamp(1, oh);
        Self {
            tile_pixels: tile_pixels.clamp(1, chunk_rows * g.out_width()),
            chunk_rows,
            chunks: oh.div_ceil(chunk_rows),
            group: 1,
        }
    }

    /// Output rows `[r0, r1)` of chunk `c`.
    fn chunk(&self, g: &ConvGeometry, c: usize) -> (usize, usize) {
        let r0 = c * self.chunk_rows;
        (r0, (r0 + self.chunk_rows).min(g.out_height()))
    }

    /// The tiles of output rows `rows`, in order: of even size (in steps of
    /// [`TILE_QUANTUM`]) rather than full tiles and a small remainder.
    fn tiles(&self, g: &ConvGeometry, rows: (usize, usize)) -> impl Iterator<Item = Tile> {
        let (start, end) = (rows.0 * g.out_width(), rows.1 * g.out_width());
        let count = (end - start).div_ceil(self.tile_pixels);
        let even = (end - start).div_ceil(count).next_multiple_of(TILE_QUANTUM);
        let step = even.min(self.tile_pixels);
        (start..end).step_by(step).map(move |s| Tile {
            start: s,
            end: (s + step).min(end),
        })
    }

    /// The chunks of one backward phase: all of them when an image is one
    /// chunk, otherwise the even ones, then the odd ones.
    fn phase_chunks(&self, phase: usize) -> Vec<usize> {
        let phases = self.phases();
        (phase..self.chunks).step_by(phases).collect()
    }

    fn phases(&self) -> usize {
        if self.chunks == 1 { 1 } else { 2 }
    }

    /// Input rows of chunk `c`'s input-gradient band: its footprint, extended
    /// over rows that no output row reads so that every row has an owner.
    fn input_band(&self, g: &ConvGeometry, c: usize) -> (usize, usize) {
        let (lo, hi) = self.chunk_footprint(g, c);
        if c + 1 == self.chunks {
            (lo, g.in_height)
        } else {
            (lo, hi.max(self.chunk_footprint(g, c + 1).0))
        }
    }

    /// The rows of chunk `c`'s band that it must zero before accumulating: all
    /// of them in the first phase; in the second, those that the first-phase
    /// neighbours on either side did not already write.
    fn zero_rows(&self, g: &ConvGeometry, c: usize) -> (usize, usize) {
        let (lo, end) = self.input_band(g, c);
        if c.is_multiple_of(2) {
            return (lo, end);
        }
        let start = lo.max(self.chunk_footprint(g, c - 1).1);
        if c + 1 == self.chunks {
            (start, end)
        } else {
            (start, end.min(self.chunk_footprint(g, c + 1).0))
        }
    }

    fn chunk_footprint(&self, g: &ConvGeometry, c: usize) -> (usize, usize) {
        let (r0, r1) = self.chunk(g, c);
        g.footprint(r0, r1)
    }
}

/// Output pixels `[start, end)` of one image plane, in row-major order: the
/// unit of one gemm call. It may begin and end mid-row.
#[derive(Clone, Copy, Debug)]
struct Tile {
    start: usize,
    end: usize,
}

impl Tile {
    fn len(self) -> usize {
        self.end - self.start
    }

    /// The output rows it touches.
    fn rows(self, out_width: usize) -> (usize, usize) {
        (self.start / out_width, (self.end - 1) / out_width + 1)
    }

    /// Its pieces within single output rows, as (row, first column, end column).
    fn row_pieces(self, out_width: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        let (r0, r1) = self.rows(out_width);
        (r0..r1).map(move |oy| {
            let row_start = oy * out_width;
            let first = self.start.max(row_start) - row_start;
            let end = self.end.min(row_start + out_width) - row_start;
            (oy, first, end)
        })
    }
}

/// Rows `[first_row, first_row + n)` of every channel plane of one image,
/// borrowed mutably so that tasks can write disjoint parts of one tensor.
pub(super) struct Band<'a> {
    pub(super) planes: Vec<&'a mut [f32]>,
    pub(super) first_row: usize,
    width: usize,
}

/// Cuts an NCHW tensor into one band per (image, row range), image-major.
/// `ranges` must be sorted and disjoint.
pub(super) fn carve_bands<'a>(
    data: &'a mut [f32],
    channels: usize,
    plane: (usize, usize),
    ranges: &[(usize, usize)],
) -> Vec<Band<'a>> {
    let (height, width) = plane;
    let images = data.len() / (channels * height * width);
    let mut bands: Vec<Band<'a>> = (0..images * ranges.len())
        .map(|i| Band {
            planes: Vec::with_capacity(channels),
            first_row: ranges[i % ranges.len()].0,
            width,
        })
        .collect();
    for (q, mut rest) in data.chunks_exact_mut(height * width).enumerate() {
        let mut consumed = 0;
        for (r, &(lo, hi)) in ranges.iter().enumerate() {
            let tail = std::mem::take(&mut rest)
                .split_at_mut((lo - consumed) * width)
                .1;
            let (piece, tail) = tail.split_at_mut((hi - lo) * width);
            bands[(q / channels) * ranges.len() + r].planes.push(piece);
            rest = tail;
            consumed = hi;
        }
    }
    bands
}

thread_local! {
    /// Per-thread tile scratch, grown on demand and kept across calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of this thread's scratch (contents unspecified).
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        // Never re-entered: `f` runs gemm single-threaded and no rayon call,
        // so this thread cannot pick up another task while it holds the borrow.
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Bias and activation applied while a tile moves from scratch to the output.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    bias: Option<&'a [f32]>,
    relu: bool,
}

fn forward_with_plan(
    g: &ConvGeometry,
    plan: &Plan,
    input: &[f32],
    weight: &[f32],
    epilogue: Epilogue<'_>,
    output: &mut [f32],
) {
    let ranges: Vec<_> = (0..plan.chunks).map(|c| plan.chunk(g, c)).collect();
    let plane = (g.out_height(), g.out_width());
    let mut bands = carve_bands(output, g.out_channels, plane, &ranges);
    let image_len = g.in_channels * g.in_pixels();
    let tasks = bands.par_chunks_mut(plan.group).enumerate();
    tasks.for_each(|(i, bands)| {
        let images = plan.images(g, i / plan.chunks);
        let images = &input[images.start * image_len..images.end * image_len];
        let rows = ranges[i % plan.chunks];
        forward_chunk(g, plan, images, weight, epilogue, rows, bands);
    });
}

/// Computes output rows `rows` of one or more whole images (one `band`
/// each) tile by tile, the images' tiles side by side in one product.
fn forward_chunk(
    g: &ConvGeometry,
    plan: &Plan,
    images: &[f32],
    weight: &[f32],
    epilogue: Epilogue<'_>,
    rows: (usize, usize),
    bands: &mut [Band<'_>],
) {
    let (k, o, n) = (g.patch_len(), g.out_channels, bands.len());
    with_scratch((k + o) * plan.tile_pixels * n, |scratch| {
        let (col, out) = scratch.split_at_mut(k * plan.tile_pixels * n);
        let weight = MatRef::row_major(weight, o, k);
        for tile in plan.tiles(g, rows) {
            let (t, width) = (tile.len(), tile.len() * n);
            let patches = patches(g, images, tile, col);
            let out = &mut out[..o * width];
            matmul(MatMut::row_major(out, o, width), weight, patches, false);
            for (j, band) in bands.iter_mut().enumerate() {
                store_tile(&out[j * t..], width, epilogue, band, tile);
            }
        }
    });
}

/// Writes one image's `[out, tile]` block of a product `row_stride` columns
/// wide into `band`, adding the bias and applying the ReLU on the way.
fn store_tile(
    out: &[f32],
    row_stride: usize,
    epilogue: Epilogue<'_>,
    band: &mut Band<'_>,
    tile: Tile,
) {
    let (t, at) = (tile.len(), tile.start - band.first_row * band.width);
    for (o, plane) in band.planes.iter_mut().enumerate() {
        let bias = epilogue.bias.map_or(0.0, |b| b[o]);
        let dst = &mut plane[at..at + t];
        let src = &out[o * row_stride..][..t];
        if epilogue.relu {
            // `v < 0 → 0` rather than `max` so that a NaN still shows.
            for (d, &x) in dst.iter_mut().zip(src) {
                let v = x + bias;
                *d = if v < 0.0 { 0.0 } else { v };
            }
        } else {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = x + bias;
            }
        }
    }
}

/// The patch matrix `[in·k·k, tile · images]` of one or more whole images,
/// each image's columns beside the previous one's: a view of the image
/// itself for a single image under a pointwise kernel (whose output pixels
/// are its input pixels), otherwise gathered into `col`.
fn patches<'a>(g: &ConvGeometry, images: &'a [f32], tile: Tile, col: &'a mut [f32]) -> MatRef<'a> {
    let t = tile.len();
    let image_len = g.in_channels * g.in_pixels();
    if g.is_pointwise() && images.len() == image_len {
        return MatRef::new(&images[tile.start..], g.in_channels, t, g.in_pixels(), 1);
    }
    let width = t * (images.len() / image_len);
    let col = &mut col[..g.patch_len() * width];
    for (j, image) in images.chunks_exact(image_len).enumerate() {
        im2col(g, image, tile, &mut col[j * t..], width);
    }
    MatRef::row_major(col, g.patch_len(), width)
}

/// The output columns `[lo, hi)` at which kernel column `kx` lands inside the
/// image (not in padding), and the input column that `lo` reads.
#[derive(Clone, Copy)]
struct ColumnSpan {
    lo: usize,
    hi: usize,
    first_ix: usize,
}

impl ColumnSpan {
    fn new(g: &ConvGeometry, kx: usize) -> Self {
        let (s, p, ow) = (g.stride, g.padding, g.out_width());
        let lo = p.saturating_sub(kx).div_ceil(s).min(ow);
        let hi = (g.in_width + p)
            .saturating_sub(kx)
            .div_ceil(s)
            .clamp(lo, ow);
        let first_ix = (lo * s + kx).saturating_sub(p);
        Self { lo, hi, first_ix }
    }
}

/// Row `kk = (c·k + ky)·k + kx` of the patch matrix (at `kk · row_stride`
/// in `col`) holds, for each output pixel of the tile, the input at channel
/// `c` shifted by `(ky, kx)`: shifted copies of whole planes where
/// [`ConvGeometry::phases`] allows, row by row otherwise.
fn im2col(g: &ConvGeometry, image: &[f32], tile: Tile, col: &mut [f32], row_stride: usize) {
    match g.phases() {
        Some(1) => shifted_im2col(g, image, tile, col, row_stride),
        Some(phases) => PHASES.with(|cell| {
            // Never re-entered, as the tile scratch (see `with_scratch`).
            let mut planes = cell.borrow_mut();
            planes.resize(g.in_channels * phases * g.out_pixels(), 0.0);
            split_phases(g, image, g.phase_rows(tile), &mut planes);
            shifted_im2col(g, &planes, tile, col, row_stride);
        }),
        None => gathered_im2col(g, image, tile, col, row_stride),
    }
}

thread_local! {
    /// Per-thread phase planes of one image, kept across calls.
    static PHASES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// [`im2col`] from planes of the output's shape, `phases` per input channel
/// (see [`ConvGeometry::phases`]): every patch row is one shifted copy of a
/// plane ([`shifted_gather`]).
fn shifted_im2col(
    g: &ConvGeometry,
    planes: &[f32],
    tile: Tile,
    col: &mut [f32],
    row_stride: usize,
) {
    let (plane, phases) = (g.out_pixels(), g.stride * g.stride);
    let shifts = g.phase_shifts();
    let mut rows = col.chunks_mut(row_stride);
    for channel in planes.chunks_exact(phases * plane).take(g.in_channels) {
        for &(phase, offset, dx) in &shifts {
            let Some(dst) = rows.next() else { return };
            let src = &channel[phase * plane..][..plane];
            shifted_gather(
                &mut dst[..tile.len()],
                src,
                tile,
                g.out_width(),
                (offset, dx),
            );
        }
    }
}

/// Splits rows `rows` of each input plane of a stride-`s` kernel into its
/// `s²` phases, each of the output's shape: phase `(py, px)` holds input
/// pixels `(a·s + py, b·s + px)` at `(a, b)`, zeros past the input's edge.
/// A strided kernel position then reads one phase at a fixed shift, as a
/// stride-1 kernel reads its input. Other rows keep what they held: a tile
/// reads them only in the columns [`shifted_gather`] then zeroes.
fn split_phases(g: &ConvGeometry, image: &[f32], rows: Range<usize>, phases: &mut [f32]) {
    let (s, h, w, ow) = (g.stride, g.in_height, g.in_width, g.out_width());
    let mut planes = phases.chunks_exact_mut(g.out_pixels());
    for input in image.chunks_exact(g.in_pixels()) {
        for (py, px) in (0..s).flat_map(|py| (0..s).map(move |px| (py, px))) {
            let Some(phase) = planes.next() else { return };
            let taken = w.saturating_sub(px).div_ceil(s).min(ow);
            let phase = &mut phase[rows.start * ow..rows.end * ow];
            for (a, row) in (rows.clone()).zip(phase.chunks_exact_mut(ow)) {
                let iy = a * s + py;
                if iy >= h {
                    row.fill(0.0);
                    continue;
                }
                let src = input[iy * w..][..w].get(px..).unwrap_or_default();
                // A known stride lets the compiler vectorise the strided reads.
                match s {
                    2 => take_every::<2>(&mut row[..taken], src, s),
                    _ => take_every::<0>(&mut row[..taken], src, s),
                }
                row[taken..].fill(0.0);
            }
        }
    }
}

/// `dst[i] = src[i · S]` (`stride` when `S` is 0).
fn take_every<const S: usize>(dst: &mut [f32], src: &[f32], stride: usize) {
    let s = if S == 0 { stride } else { S };
    for (i, d) in dst.iter_mut().enumerate() {
        *d = src[i * s];
    }
}

/// [`im2col`] row piece by row piece, for kernels [`ConvGeometry::phases`]
/// rejects: strided reads, zeros where the kernel overlaps the padding.
fn gathered_im2col(
    g: &ConvGeometry,
    image: &[f32],
    tile: Tile,
    col: &mut [f32],
    row_stride: usize,
) {
    let (k, w, ow) = (g.kernel, g.in_width, g.out_width());
    for kk in 0..g.patch_len() {
        let dst = &mut col[kk * row_stride..][..tile.len()];
        let (c, ky, kx) = (kk / (k * k), kk / k % k, kk % k);
        let plane = &image[c * g.in_pixels()..][..g.in_pixels()];
        let span = ColumnSpan::new(g, kx);
        let mut at = 0;
        for (oy, first, end) in tile.row_pieces(ow) {
            let piece = &mut dst[at..at + end - first];
            at += end - first;
            match g.input_row(oy, ky) {
                Some(iy) => gather(piece, &plane[iy * w..][..w], span, g.stride, first),
                None => piece.fill(0.0),
            }
        }
    }
}

/// The columns `[lo, hi)` of `span` that fall in a piece of output row
/// starting at column `first` of length `len`, and the input column `lo` reads.
fn clip(span: ColumnSpan, stride: usize, first: usize, len: usize) -> (usize, usize, usize) {
    let end = first + len;
    let lo = span.lo.clamp(first, end);
    let hi = span.hi.clamp(lo, end);
    let ix = span.first_ix + lo.saturating_sub(span.lo) * stride;
    (lo - first, hi - first, ix)
}

/// One piece of one patch row: strided input reads, zeros where the kernel
/// overlaps the padding.
fn gather(piece: &mut [f32], src: &[f32], span: ColumnSpan, stride: usize, first: usize) {
    let (lo, hi, ix) = clip(span, stride, first, piece.len());
    piece[..lo].fill(0.0);
    piece[hi..].fill(0.0);
    if lo == hi {
        return;
    }
    let dst = &mut piece[lo..hi];
    let src = &src[ix..];
    if stride == 1 {
        dst.copy_from_slice(&src[..dst.len()]);
    } else {
        // Whole strides as chunks, the last value alone: a step_by loop
        // would not vectorise, this one does (loads and a shuffle).
        let Some((last, dst)) = dst.split_last_mut() else {
            return;
        };
        for (d, run) in dst.iter_mut().zip(src.chunks_exact(stride)) {
            *d = run[0];
        }
        *last = src[dst.len() * stride];
    }
}

/// The inverse of [`im2col`]: adds each patch-matrix gradient (row `kk` at
/// `kk · row_stride` in `dcol`) back onto the input pixel it was gathered
/// from. A stride-1 kernel whose output has the input's shape first zeroes
/// the wrapped columns of `dcol` (see [`shifted_scatter`]).
fn col2im(g: &ConvGeometry, dcol: &mut [f32], row_stride: usize, tile: Tile, band: &mut Band<'_>) {
    if g.phases() == Some(1) {
        shifted_col2im(g, dcol, row_stride, tile, band);
    } else {
        scattered_col2im(g, dcol, row_stride, tile, band);
    }
}

/// [`col2im`] by shifted rows, as [`shifted_im2col`] gathers them; tile and
/// footprint counted from the band's first row.
fn shifted_col2im(
    g: &ConvGeometry,
    dcol: &mut [f32],
    row_stride: usize,
    tile: Tile,
    band: &mut Band<'_>,
) {
    let w = g.in_width;
    let (r0, r1) = tile.rows(w);
    let (lo, hi) = g.footprint(r0, r1);
    let footprint = (lo - band.first_row) * w..(hi - band.first_row) * w;
    let base = band.first_row * w;
    let tile = Tile {
        start: tile.start - base,
        end: tile.end - base,
    };
    let shifts = g.phase_shifts();
    let mut rows = dcol.chunks_mut(row_stride);
    for plane in &mut band.planes {
        for &(_, offset, dx) in &shifts {
            let Some(src) = rows.next() else { return };
            let (plane, src) = (&mut plane[..footprint.end], &mut src[..tile.len()]);
            shifted_scatter(plane, footprint.start, src, tile, w, (offset, dx));
        }
    }
}

/// [`col2im`] row piece by row piece, as [`gathered_im2col`] gathers them.
fn scattered_col2im(
    g: &ConvGeometry,
    dcol: &[f32],
    row_stride: usize,
    tile: Tile,
    band: &mut Band<'_>,
) {
    let (k, w, ow) = (g.kernel, g.in_width, g.out_width());
    for kk in 0..g.patch_len() {
        let src = &dcol[kk * row_stride..][..tile.len()];
        let (c, ky, kx) = (kk / (k * k), kk / k % k, kk % k);
        let plane = &mut band.planes[c];
        let span = ColumnSpan::new(g, kx);
        let mut at = 0;
        for (oy, first, end) in tile.row_pieces(ow) {
            let piece = &src[at..at + end - first];
            at += end - first;
            if let Some(iy) = g.input_row(oy, ky) {
                let row = &mut plane[(iy - band.first_row) * w..][..w];
                scatter(row, piece, span, g.stride, first);
            }
        }
    }
}

/// Adds one piece of one patch-gradient row onto an input row.
fn scatter(row: &mut [f32], piece: &[f32], span: ColumnSpan, stride: usize, first: usize) {
    let (lo, hi, ix) = clip(span, stride, first, piece.len());
    if lo == hi {
        return;
    }
    let src = &piece[lo..hi];
    let dst = &mut row[ix..];
    if stride == 1 {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d += x;
        }
    } else {
        // As in `gather`: whole strides as chunks, then the last value.
        let Some((last, src)) = src.split_last() else {
            return;
        };
        for (run, &x) in dst.chunks_exact_mut(stride).zip(src) {
            run[0] += x;
        }
        dst[src.len() * stride] += last;
    }
}

/// Where a shifted kernel position's reads land: the pixels `[from, to)`
/// of `tile` (counted from its start) whose input pixel `q + offset` lies in
/// `[bound, end)`, and the input pixel the first of them reads.
fn shifted_overlap(
    tile: Tile,
    offset: isize,
    (bound, end): (usize, usize),
) -> (usize, usize, usize) {
    let (len, start) = (tile.len() as isize, tile.start as isize + offset);
    let from = (bound as isize - start).clamp(0, len);
    let to = (end as isize - start).clamp(from, len);
    // With no overlap that pixel is never read; keep it in range.
    let at = (start + from).clamp(bound as isize, end as isize);
    (from as usize, to as usize, at as usize)
}

/// The pixels of `tile` (counted from its start) in the columns whose reads
/// at column shift `dx` fall outside a row of `w` and wrap onto a
/// neighbouring row.
fn wrapped(tile: Tile, w: usize, dx: isize) -> impl Iterator<Item = usize> {
    let (lo, hi) = if dx < 0 {
        (0, dx.unsigned_abs())
    } else {
        (w - dx.unsigned_abs(), w)
    };
    let (r0, r1) = tile.rows(w);
    (r0..r1)
        .flat_map(move |r| (r * w + lo).max(tile.start)..(r * w + hi).min(tile.end))
        .map(move |q| q - tile.start)
}

/// One patch row read from a plane of the output's shape (the input's own
/// or a phase plane, see [`ConvGeometry::phases`]) `w` wide: output pixel
/// `q` reads pixel `q + offset`, so the whole row is one copy of the plane,
/// zeros where that runs off its top or bottom, and zeros in the columns
/// whose reads wrapped round a row's edge. [`gather`]'s per-row clipping
/// cost more than the copy on planes 4 to 28 pixels wide.
fn shifted_gather(
    dst: &mut [f32],
    plane: &[f32],
    tile: Tile,
    w: usize,
    (offset, dx): (isize, isize),
) {
    let (from, to, at) = shifted_overlap(tile, offset, (0, plane.len()));
    dst[..from].fill(0.0);
    dst[from..to].copy_from_slice(&plane[at..at + to - from]);
    dst[to..].fill(0.0);
    for q in wrapped(tile, w, dx) {
        dst[q] = 0.0;
    }
}

/// The inverse of [`shifted_gather`] onto the rows `[bound, plane.len())` of
/// a band (tile and bound counted from the band's start): zeroes the wrapped
/// columns of `src`, then adds it onto the plane in one pass.
fn shifted_scatter(
    plane: &mut [f32],
    bound: usize,
    src: &mut [f32],
    tile: Tile,
    w: usize,
    (offset, dx): (isize, isize),
) {
    for q in wrapped(tile, w, dx) {
        src[q] = 0.0;
    }
    let (from, to, at) = shifted_overlap(tile, offset, (bound, plane.len()));
    add_assign(&mut plane[at..at + to - from], &src[from..to]);
}

/// The read-only tensors of a backward call.
#[derive(Clone, Copy)]
struct BackwardTensors<'a> {
    input: &'a [f32],
    weight: &'a [f32],
    grad_output: &'a [f32],
    relu_output: Option<&'a [f32]>,
}

fn backward_with_plan(
    g: &ConvGeometry,
    plan: &Plan,
    tensors: &BackwardTensors<'_>,
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: Option<&mut [f32]>,
) {
    let acc = Accumulators::new(g.weight_len(), g.out_channels, plan.tasks(g));
    match grad_input {
        None => (0..plan.tasks(g)).into_par_iter().for_each(|u| {
            let task = BackwardTask::new(g, plan, tensors, plan.images(g, u / plan.chunks));
            task.run(&acc, u % plan.chunks, None);
        }),
        Some(grad_input) => {
            for phase in 0..plan.phases() {
                backward_phase(g, plan, tensors, &acc, phase, grad_input);
            }
        }
    }
    acc.add_into(grad_weight, grad_bias);
}

/// Runs one phase's chunks of every image, each writing its own input band.
fn backward_phase(
    g: &ConvGeometry,
    plan: &Plan,
    tensors: &BackwardTensors<'_>,
    acc: &Accumulators,
    phase: usize,
    grad_input: &mut [f32],
) {
    let chunks = plan.phase_chunks(phase);
    let ranges: Vec<_> = chunks.iter().map(|&c| plan.input_band(g, c)).collect();
    let plane = (g.in_height, g.in_width);
    let mut bands = carve_bands(grad_input, g.in_channels, plane, &ranges);
    let tasks = bands.par_chunks_mut(plan.group).enumerate();
    tasks.for_each(|(i, bands)| {
        let chunk = chunks[i % chunks.len()];
        let (zeroed, zero_end) = plan.zero_rows(g, chunk);
        let mut targets: Vec<_> = bands
            .iter_mut()
            .map(|band| InputGrad {
                band,
                zeroed,
                zero_end,
            })
            .collect();
        let images = plan.images(g, i / chunks.len());
        let task = BackwardTask::new(g, plan, tensors, images);
        task.run(acc, chunk, Some(&mut targets));
    });
}

/// A task's share of the input gradient: its band, of which rows
/// `[zeroed, zero_end)` are still to be zeroed before anything is added to
/// them. They are zeroed just before a tile first touches them, while the
/// tile's writes will find them in cache.
struct InputGrad<'b, 'a> {
    band: &'b mut Band<'a>,
    zeroed: usize,
    zero_end: usize,
}

impl InputGrad<'_, '_> {
    /// Zeroes the pending rows below `row`.
    fn zero_until(&mut self, row: usize) {
        let to = row.min(self.zero_end);
        if to <= self.zeroed {
            return;
        }
        let (w, first) = (self.band.width, self.band.first_row);
        for plane in &mut self.band.planes {
            plane[(self.zeroed - first) * w..(to - first) * w].fill(0.0);
        }
        self.zeroed = to;
    }
}

/// The backward pass over some output rows of one image, or over several
/// whole images side by side.
struct BackwardTask<'a> {
    g: &'a ConvGeometry,
    plan: &'a Plan,
    tensors: &'a BackwardTensors<'a>,
    images: Range<usize>,
}

impl<'a> BackwardTask<'a> {
    fn new(
        g: &'a ConvGeometry,
        plan: &'a Plan,
        tensors: &'a BackwardTensors<'a>,
        images: Range<usize>,
    ) -> Self {
        Self {
            g,
            plan,
            tensors,
            images,
        }
    }

    /// Adds the weight and bias gradients of the images' `chunk` to an
    /// accumulator and, with `input_grads` (one per image), writes their
    /// input gradients.
    fn run(&self, acc: &Accumulators, chunk: usize, mut input_grads: Option<&mut [InputGrad]>) {
        let (k, o) = (self.g.patch_len(), self.g.out_channels);
        let width = self.plan.tile_pixels * self.images.len();
        let rows = self.plan.chunk(self.g, chunk);
        let task = self.images.start / self.plan.group * self.plan.chunks + chunk;
        with_scratch((k + o) * width, |scratch| {
            let (col, dy) = scratch.split_at_mut(k * width);
            acc.with(task, |dw, db| {
                for tile in self.plan.tiles(self.g, rows) {
                    self.tile(tile, col, dy, (dw, db), input_grads.as_deref_mut());
                }
            });
        });
        for ig in input_grads.into_iter().flatten() {
            ig.zero_until(ig.zero_end);
        }
    }

    /// One tile of every image: the masked output gradients into `dy`, then
    /// the weight gradient from the patches in `col`, then (reusing `col`
    /// for the patch gradients) the input gradients.
    fn tile(
        &self,
        tile: Tile,
        col: &mut [f32],
        dy: &mut [f32],
        (dw, db): (&mut [f32], &mut [f32]),
        input_grads: Option<&mut [InputGrad<'_, '_>]>,
    ) {
        let g = self.g;
        let (k, o) = (g.patch_len(), g.out_channels);
        let (t, width) = (tile.len(), tile.len() * self.images.len());
        let dy = &mut dy[..o * width];
        for (j, image) in self.images.clone().enumerate() {
            self.load_grad_tile(image, tile, &mut dy[j * t..], width, db);
        }
        let dy = MatRef::row_major(dy, o, width);
        let image_len = g.in_channels * g.in_pixels();
        let images =
            &self.tensors.input[self.images.start * image_len..][..self.images.len() * image_len];
        // The accumulator is stored transposed (`[k, out]`): gemm runs this
        // product ~15 % faster writing that layout.
        let dw = MatMut::new(dw, o, k, 1, o);
        matmul(dw, dy, patches(g, images, tile, col).t(), true);
        if let Some(igs) = input_grads {
            let dcol = &mut col[..k * width];
            let weight = MatRef::row_major(self.tensors.weight, o, k);
            matmul(MatMut::row_major(dcol, k, width), weight.t(), dy, false);
            let (r0, r1) = tile.rows(g.out_width());
            for (j, ig) in igs.iter_mut().enumerate() {
                ig.zero_until(g.footprint(r0, r1).1);
                col2im(g, &mut dcol[j * t..], width, tile, ig.band);
            }
        }
    }

    /// Copies the output gradient of `tile` of `image` into `dy` as an
    /// `[out, tile]` block of a matrix `row_stride` wide, masked by the ReLU,
    /// and adds its per-channel sums to `db`.
    fn load_grad_tile(
        &self,
        image: usize,
        tile: Tile,
        dy: &mut [f32],
        row_stride: usize,
        db: &mut [f32],
    ) {
        let g = self.g;
        let t = tile.len();
        for (o, db) in db.iter_mut().enumerate() {
            let dst = &mut dy[o * row_stride..][..t];
            let at = (image * g.out_channels + o) * g.out_pixels() + tile.start;
            let src = &self.tensors.grad_output[at..at + t];
            match self.tensors.relu_output {
                Some(out) => {
                    for ((d, &grad), &y) in dst.iter_mut().zip(src).zip(&out[at..at + t]) {
                        *d = if y > 0.0 { grad } else { 0.0 };
                    }
                }
                None => dst.copy_from_slice(src),
            }
            *db += super::lane_sum(dst, |x| x) as f32;
        }
    }
}

/// One weight-and-bias gradient accumulator per worker thread, the weight
/// part transposed to `[in·k·k, out]`. A task holds its thread's slot while
/// it runs and runs no other rayon work meanwhile, so the locks are never
/// contended; they only make the sharing safe. Which tasks a thread adds up
/// depends on timing, so the last bits of the sum vary from run to run; in
/// deterministic mode every task has a slot of its own instead.
struct Accumulators {
    slots: Vec<Mutex<Vec<f32>>>,
    per_task: bool,
    weight_len: usize,
    bias_len: usize,
}

impl Accumulators {
    fn new(weight_len: usize, bias_len: usize, tasks: usize) -> Self {
        let per_task = super::deterministic();
        let count = if per_task {
            tasks
        } else {
            rayon::current_num_threads()
        };
        Self {
            slots: (0..count.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
            per_task,
            weight_len,
            bias_len,
        }
    }

    /// Runs `f` on the (weight, bias) accumulators of `task` (its thread's
    /// unless deterministic), zeroed on first use.
    fn with<R>(&self, task: usize, f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
        let owner = if self.per_task {
            task
        } else {
            rayon::current_thread_index().unwrap_or(0)
        };
        let index = owner % self.slots.len();
        let mut slot = self.slots[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_empty() {
            slot.resize(self.weight_len + self.bias_len, 0.0);
        }
        let (dw, db) = slot.split_at_mut(self.weight_len);
        f(dw, db)
    }

    /// Adds every used accumulator into the caller's gradients.
    fn add_into(self, grad_weight: &mut [f32], mut grad_bias: Option<&mut [f32]>) {
        let out_channels = self.bias_len;
        for slot in self.slots {
            let slot = slot.into_inner().unwrap_or_else(PoisonError::into_inner);
            if slot.is_empty() {
                continue;
            }
            let (dw_t, db) = slot.split_at(self.weight_len);
            let patch_len = self.weight_len / out_channels;
            for (o, row) in grad_weight.chunks_exact_mut(patch_len).enumerate() {
                for (d, &s) in row.iter_mut().zip(dw_t[o..].iter().step_by(out_channels)) {
                    *d += s;
                }
            }
            if let Some(gb) = grad_bias.as_deref_mut() {
                add_assign(gb, db);
            }
        }
    }
}

fn add_assign(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of values in [-1, 1).
    fn noise(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn geometry(dims: [usize; 8]) -> ConvGeometry {
        let [
            batch,
            in_channels,
            in_height,
            in_width,
            out_channels,
            kernel,
            stride,
            padding,
        ] = dims;
        ConvGeometry {
            batch,
            in_channels,
            in_height,
            in_width,
            out_channels,
            kernel,
            stride,
            padding,
        }
    }

    /// Calls `f(output index, input index, weight index)` for every term of
    /// the convolution sum that does not read padding.
    fn for_each_term(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let out = ((n * g.out_channels + o) * oh + oy) * ow + ox;
                        for c in 0..g.in_channels {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * g.stride + ky).checked_sub(g.padding);
                                    let ix = (ox * g.stride + kx).checked_sub(g.padding);
                                    let (Some(iy), Some(ix)) = (iy, ix) else {
                                        continue;
                                    };
                                    if iy >= g.in_height || ix >= g.in_width {
                                        continue;
                                    }
                                    let inp = ((n * g.in_channels + c) * g.in_height + iy)
                                        * g.in_width
                                        + ix;
                                    let wi = ((o * g.in_channels + c) * k + ky) * k + kx;
                                    f(out, inp, wi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Direct-loop forward in f64: conv + bias, optionally ReLU.
    fn reference_forward(
        g: &ConvGeometry,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        relu: bool,
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; g.output_len()];
        for_each_term(g, |o_i, x_i, w_i| {
            out[o_i] += f64::from(x[x_i]) * f64::from(w[w_i]);
        });
        let pixels = g.out_height() * g.out_width();
        for (i, v) in out.iter_mut().enumerate() {
            *v += f64::from(b[i / pixels % g.out_channels]);
            if relu {
                *v = v.max(0.0);
            }
        }
        out
    }

    /// Direct-loop gradients in f64 for an already-masked output gradient.
    fn reference_backward(g: &ConvGeometry, x: &[f32], w: &[f32], dy: &[f64]) -> [Vec<f64>; 3] {
        let mut dx = vec![0.0f64; g.input_len()];
        let mut dw = vec![0.0f64; g.weight_len()];
        let mut db = vec![0.0f64; g.out_channels];
        for_each_term(g, |o_i, x_i, w_i| {
            dx[x_i] += dy[o_i] * f64::from(w[w_i]);
            dw[w_i] += dy[o_i] * f64::from(x[x_i]);
        });
        let pixels = g.out_height() * g.out_width();
        for (i, d) in dy.iter().enumerate() {
            db[i / pixels % g.out_channels] += d;
        }
        [dx, dw, db]
    }

    fn assert_close(what: &str, got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&a, &e)) in got.iter().zip(want).enumerate() {
            let err = (f64::from(a) - e).abs();
            assert!(
                err <= 1e-4 * (1.0 + e.abs()),
                "{what}[{i}]: got {a}, want {e}"
            );
        }
    }

    /// Checks forward and backward of `g` against the reference, with the
    /// automatic plan and with forced (tile rows, chunks) plans.
    fn check(dims: [usize; 8]) {
        let g = geometry(dims);
        let oh = g.out_height();
        let plans = [
            None,
            Some(Plan::with_sizes(&g, 3, 3)),
            Some(Plan::with_sizes(&g, 2 * g.out_width() + 1, 2)),
            Some(Plan::with_sizes(&g, 1, oh)),
            // Whole images side by side, in one tile or several.
            Some(Plan::with_sizes(&g, g.out_pixels(), 1).grouped(2)),
            Some(Plan::with_sizes(&g, 5, 1).grouped(3)),
        ];
        for relu in [false, true] {
            for plan in plans {
                check_with(&g, relu, plan);
            }
        }
    }

    fn check_with(g: &ConvGeometry, relu: bool, plan: Option<Plan>) {
        let x = noise(g.input_len(), 1);
        let w = noise(g.weight_len(), 2);
        let b = noise(g.out_channels, 3);
        let dy = noise(g.output_len(), 4);
        let mut out = vec![f32::NAN; g.output_len()];
        match plan {
            None => conv2d_forward(g, &x, &w, Some(&b), relu, &mut out),
            Some(plan) => {
                let epilogue = Epilogue {
                    bias: Some(&b),
                    relu,
                };
                forward_with_plan(g, &plan, &x, &w, epilogue, &mut out);
            }
        }
        let context = format!("{g:?} relu={relu} plan={plan:?}");
        assert_close(
            &format!("forward {context}"),
            &out,
            &reference_forward(g, &x, &w, &b, relu),
        );

        let masked: Vec<f64> = dy
            .iter()
            .zip(&out)
            .map(|(&d, &y)| if !relu || y > 0.0 { f64::from(d) } else { 0.0 })
            .collect();
        let [dx_want, mut dw_want, mut db_want] = reference_backward(g, &x, &w, &masked);
        dw_want.iter_mut().for_each(|v| *v += 0.5);
        db_want.iter_mut().for_each(|v| *v -= 0.25);

        // grad_input starts as NaN to prove every element is overwritten;
        // grad_weight and grad_bias start non-zero to prove `+=`.
        let mut dx = vec![f32::NAN; g.input_len()];
        let mut dw = vec![0.5; g.weight_len()];
        let mut db = vec![-0.25; g.out_channels];
        let relu_output = relu.then_some(out.as_slice());
        match plan {
            None => conv2d_backward(
                g,
                &x,
                &w,
                &dy,
                relu_output,
                Some(&mut dx),
                &mut dw,
                Some(&mut db),
            ),
            Some(plan) => {
                let tensors = BackwardTensors {
                    input: &x,
                    weight: &w,
                    grad_output: &dy,
                    relu_output,
                };
                backward_with_plan(g, &plan, &tensors, Some(&mut dx), &mut dw, Some(&mut db));
            }
        }
        assert_close(&format!("grad_input {context}"), &dx, &dx_want);
        assert_close(&format!("grad_weight {context}"), &dw, &dw_want);
        assert_close(&format!("grad_bias {context}"), &db, &db_want);

        // Without an input gradient the weight gradient must not change.
        let mut dw_only = vec![0.5; g.weight_len()];
        conv2d_backward(g, &x, &w, &dy, relu_output, None, &mut dw_only, None);
        assert_close(&format!("grad_weight alone {context}"), &dw_only, &dw_want);
    }

    #[test]
    fn three_by_three_unpadded() {
        check([1, 3, 7, 9, 4, 3, 1, 0]);
        check([3, 2, 5, 5, 2, 3, 2, 0]);
    }

    #[test]
    fn three_by_three_padded() {
        check([2, 3, 11, 10, 4, 3, 1, 1]);
        check([3, 2, 8, 7, 5, 3, 2, 1]);
        // Odd sides at stride 2, and stride 3: phase planes with zeros
        // past the input's edge.
        check([2, 2, 7, 9, 3, 3, 2, 1]);
        check([2, 2, 10, 9, 3, 3, 3, 1]);
    }

    #[test]
    fn pointwise_and_strided_one_by_one() {
        check([3, 4, 6, 5, 3, 1, 1, 0]);
        // Stride 2 with a 1×1 kernel leaves input rows no output reads.
        check([1, 5, 9, 8, 6, 1, 2, 0]);
        check([1, 2, 10, 9, 3, 1, 1, 1]);
    }

    #[test]
    fn large_kernels_and_padding() {
        check([1, 2, 13, 12, 3, 5, 2, 2]);
        check([3, 3, 4, 3, 2, 5, 1, 2]);
    }

    #[test]
    fn many_rows_split_across_tasks() {
        check([1, 3, 40, 6, 4, 3, 1, 1]);
        check([3, 2, 31, 5, 3, 3, 2, 0]);
    }

    /// The backward pass against central differences of the forward, for the
    /// loss `sum(output · r)`. The convolution is linear in its inputs, so the
    /// difference quotient is exact up to rounding.
    #[test]
    fn finite_differences() {
        let g = geometry([2, 2, 6, 5, 3, 3, 2, 1]);
        let x = noise(g.input_len(), 5);
        let w = noise(g.weight_len(), 6);
        let b = noise(g.out_channels, 7);
        let r = noise(g.output_len(), 8);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut out = vec![0.0; g.output_len()];
            conv2d_forward(&g, x, w, Some(b), false, &mut out);
            out.iter()
                .zip(&r)
                .map(|(&y, &r)| f64::from(y) * f64::from(r))
                .sum::<f64>()
        };
        let mut dx = vec![0.0; g.input_len()];
        let mut dw = vec![0.0; g.weight_len()];
        let mut db = vec![0.0; g.out_channels];
        conv2d_backward(&g, &x, &w, &r, None, Some(&mut dx), &mut dw, Some(&mut db));
        let eps = 0.05f32;
        let quotient = |f: &dyn Fn(f32) -> f64| (f(eps) - f(-eps)) / f64::from(2.0 * eps);
        for i in (0..x.len()).step_by(7) {
            let moved = |e: f32| {
                let mut x = x.clone();
                x[i] += e;
                loss(&x, &w, &b)
            };
            assert!(
                (quotient(&moved) - f64::from(dx[i])).abs() < 1e-3,
                "dx[{i}]"
            );
        }
        for i in (0..w.len()).step_by(5) {
            let moved = |e: f32| {
                let mut w = w.clone();
                w[i] += e;
                loss(&x, &w, &b)
            };
            assert!(
                (quotient(&moved) - f64::from(dw[i])).abs() < 1e-3,
                "dw[{i}]"
            );
        }
        for i in 0..b.len() {
            let moved = |e: f32| {
                let mut b = b.clone();
                b[i] += e;
                loss(&x, &w, &b)
            };
            assert!(
                (quotient(&moved) - f64::from(db[i])).abs() < 1e-3,
                "db[{i}]"
            );
        }
    }

    #[test]
    fn geometry_sizes() {
        let g = geometry([2, 3, 224, 224, 32, 3, 1, 0]);
        assert_eq!((g.out_height(), g.out_width()), (222, 222));
        assert_eq!(g.weight_len(), 32 * 27);
        assert_eq!(g.output_len(), 2 * 32 * 222 * 222);
        let g = geometry([1, 16, 112, 111, 32, 3, 2, 1]);
        assert_eq!((g.out_height(), g.out_width()), (56, 56));
        assert!(g.is_valid());
        assert!(!geometry([1, 1, 2, 2, 1, 5, 1, 1]).is_valid());
        assert!(!geometry([1, 1, 2, 2, 1, 1, 0, 0]).is_valid());
    }

    #[test]
    fn empty_batch_is_a_no_op() {
        let g = geometry([0, 2, 5, 5, 3, 3, 1, 1]);
        let w = noise(g.weight_len(), 9);
        let mut dw = w.clone();
        conv2d_forward(&g, &[], &w, None, true, &mut []);
        conv2d_backward(&g, &[], &w, &[], None, Some(&mut []), &mut dw, None);
        assert_eq!(dw, w);
    }

    #[test]
    #[should_panic(expected = "conv2d: weight length")]
    fn wrong_length_panics() {
        let g = geometry([1, 2, 5, 5, 3, 3, 1, 1]);
        let x = vec![0.0; g.input_len()];
        let mut out = vec![0.0; g.output_len()];
        conv2d_forward(&g, &x, &[0.0; 3], None, false, &mut out);
    }
}
