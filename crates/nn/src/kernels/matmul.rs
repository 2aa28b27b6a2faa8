//! Safe, bounds-checked strided matrix views over `f32` slices and a
//! single-threaded matrix product on the `gemm` crate.
//!
//! Callers parallelise at a coarser grain (one image or row tile per rayon
//! task), so the product itself never spawns threads.

/// A read-only `rows × cols` matrix whose element `(i, j)` lives at
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// A mutable `rows × cols` matrix with the same strided layout as [`MatRef`].
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

/// Whether every element of a `rows × cols` strided matrix lies within `len`.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1).checked_mul(row_stride).and_then(|r| {
        (cols - 1)
            .checked_mul(col_stride)
            .and_then(|c| r.checked_add(c))
    });
    last.is_some_and(|last| last < len)
}

impl<'a> MatRef<'a> {
    /// A strided view; panics if any element would fall outside `data`
    /// (a caller's programming error, never a data-dependent condition).
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert!(
            fits(data.len(), rows, cols, row_stride, col_stride),
            "MatRef {rows}x{cols} (strides {row_stride}, {col_stride}) exceeds a slice of {}",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major view (`row_stride == cols`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transpose, as a view of the same storage.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

impl<'a> MatMut<'a> {
    /// A strided mutable view; panics like [`MatRef::new`].
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert!(
            fits(data.len(), rows, cols, row_stride, col_stride),
            "MatMut {rows}x{cols} (strides {row_stride}, {col_stride}) exceeds a slice of {}",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// A dense row-major view (`row_stride == cols`).
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }
}

/// `dst = a · b`, or `dst += a · b` when `accumulate`, on the calling thread.
///
/// Panics if the shapes do not chain (`a` is m×k, `b` k×n, `dst` m×n).
pub fn matmul(dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    assert!(
        a.cols == b.rows && dst.rows == a.rows && dst.cols == b.cols,
        "matmul shapes: dst {}x{}, a {}x{}, b {}x{}",
        dst.rows,
        dst.cols,
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            zero(dst);
        }
        return;
    }
    LHS_PACKING.call_once(|| gemm::set_lhs_packing_threshold_single_thread(LHS_PACKING_THRESHOLD));
    gemm_checked(dst, a, b, accumulate);
}

/// gemm copies ("packs") its left operand into panels unless it is already
/// column-major, 16-row aligned and `n <= threshold · 6` (default threshold
/// 8). The convolution's patch tiles meet the first two conditions and sit in
/// L2, so repacking them only costs time: raising the threshold to 32 made the
/// conv3 forward product 8 % faster and changed nothing else measurable. The
/// setting is process-wide in gemm and affects speed only, never results.
const LHS_PACKING_THRESHOLD: usize = 32;

static LHS_PACKING: std::sync::Once = std::sync::Once::new();

/// Zeroes every element of a view (the product of an empty inner dimension).
fn zero(dst: MatMut<'_>) {
    for i in 0..dst.rows {
        for j in 0..dst.cols {
            dst.data[i * dst.row_stride + j * dst.col_stride] = 0.0;
        }
    }
}

/// The one call into `gemm`'s raw-pointer API, with non-empty, chained shapes.
#[allow(unsafe_code)]
fn gemm_checked(dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    // Slice lengths never exceed isize::MAX, and every in-bounds index is below a
    // slice length, so these strides convert losslessly.
    let stride = |s: usize| s as isize;
    // SAFETY: `MatRef::new`/`MatMut::new` checked that every element
    // `(i, j)` with `i < rows`, `j < cols` lies inside its slice, and `matmul`
    // checked that the shapes chain, so gemm reads `a` (m×k) and `b` (k×n) and
    // writes `dst` (m×n) only inside their slices. `dst` is a unique borrow, so
    // it overlaps neither input. gemm computes dst = alpha·dst + beta·a·b
    // (dst only read when `accumulate`), so alpha = beta = 1 gives `=`/`+=`.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            stride(dst.col_stride),
            stride(dst.row_stride),
            accumulate,
            a.data.as_ptr(),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.col_stride),
            stride(b.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop, to check strides and transposes.
    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    let x = a.data[i * a.row_stride + p * a.col_stride];
                    let y = b.data[p * b.row_stride + j * b.col_stride];
                    s += f64::from(x) * f64::from(y);
                }
                out[i * b.cols + j] = s as f32;
            }
        }
        out
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
            .collect()
    }

    #[test]
    fn transposed_operands_and_accumulation() {
        let (m, k, n) = (5, 7, 3);
        let a_store = ramp(k * m, 0.5);
        let b_store = ramp(k * n, 0.25);
        // `a` is stored k×m and used transposed; `b` is row-major k×n.
        let a = MatRef::row_major(&a_store, k, m).t();
        let b = MatRef::row_major(&b_store, k, n);
        let expected = naive(a, b);
        let mut out = vec![1.0; m * n];
        matmul(MatMut::row_major(&mut out, m, n), a, b, true);
        for (o, e) in out.iter().zip(&expected) {
            assert!((o - (e + 1.0)).abs() < 1e-5, "{o} vs {e} + 1");
        }
        matmul(MatMut::row_major(&mut out, m, n), a, b, false);
        for (o, e) in out.iter().zip(&expected) {
            assert!((o - e).abs() < 1e-5, "{o} vs {e}");
        }
    }

    #[test]
    fn empty_inner_dimension_zeroes_or_keeps() {
        let mut out = vec![3.0; 4];
        let none: [f32; 0] = [];
        let a = MatRef::new(&none, 2, 0, 0, 1);
        let b = MatRef::new(&none, 0, 2, 2, 1);
        matmul(MatMut::row_major(&mut out, 2, 2), a, b, true);
        assert_eq!(out, vec![3.0; 4]);
        matmul(MatMut::row_major(&mut out, 2, 2), a, b, false);
        assert_eq!(out, vec![0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn out_of_bounds_view_panics() {
        let data = vec![0.0; 5];
        let _ = MatRef::new(&data, 2, 3, 3, 1);
    }
}
