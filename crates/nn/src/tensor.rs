//! A dense f32 tensor: a shape and a contiguous row-major buffer.

use thiserror::Error;

/// A dense, contiguous, row-major f32 tensor (NCHW for images).
///
/// Buffers are reused across steps: [`Tensor::resize`] keeps the allocation
/// when the new shape fits, because faulting hundreds of megabytes of fresh
/// pages in every step costs as much as a convolution.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// A tensor's data does not match the shape it was given.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("tensor of shape {shape:?} needs {expected} values, got {actual}")]
pub struct ShapeMismatch {
    /// The shape asked for.
    pub shape: Vec<usize>,
    /// The number of values that shape holds.
    pub expected: usize,
    /// The number of values given.
    pub actual: usize,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// A tensor over `data`, which must hold exactly the shape's values.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self, ShapeMismatch> {
        let expected = shape.iter().product();
        if data.len() != expected {
            return Err(ShapeMismatch {
                shape: shape.to_vec(),
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            shape: shape.to_vec(),
            data,
        })
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values in row-major order, writable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Gives the tensor a new shape, keeping the allocation where it fits.
    /// The values are unspecified afterwards: callers overwrite them.
    pub fn resize(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
            self.data.resize(shape.iter().product(), 0.0);
        }
    }

    /// Sets every value to zero.
    pub fn fill_zero(&mut self) {
        self.data.fill(0.0);
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The size of the first dimension (the batch), 0 for a scalar.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// The number of values per item of the batch.
    pub fn item_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Gives up the values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_refuses_wrong_length() {
        let err = Tensor::from_vec(&[2, 3], vec![0.0; 5]).err();
        assert_eq!(err.map(|e| (e.expected, e.actual)), Some((6, 5)));
    }

    #[test]
    fn resize_keeps_allocation_when_shrinking() {
        let mut t = Tensor::zeros(&[4, 8]);
        let capacity = t.data.capacity();
        t.resize(&[2, 8]);
        assert_eq!((t.len(), t.data.capacity()), (16, capacity));
        assert_eq!((t.batch(), t.item_len()), (2, 8));
    }
}
