//! Softmax and cross-entropy over a batch of logits.

use crate::tensor::Tensor;

/// Class probabilities of each row of `logits` (`[n, classes]`).
pub fn softmax(logits: &Tensor) -> Vec<Vec<f32>> {
    let classes = logits.item_len().max(1);
    logits
        .data()
        .chunks_exact(classes)
        .map(softmax_row)
        .collect()
}

fn softmax_row(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Mean cross-entropy of `logits` against `labels`, as PyTorch's
/// `CrossEntropyLoss`; writes d(loss)/d(logits) into `grad`.
pub fn cross_entropy(logits: &Tensor, labels: &[usize], grad: &mut Tensor) -> f32 {
    smoothed_cross_entropy(logits, labels, 0.0, grad)
}

/// Cross-entropy against targets with `smoothing` of the probability spread
/// evenly over all classes, as PyTorch's `CrossEntropyLoss(label_smoothing)`;
/// writes d(loss)/d(logits) into `grad`.
pub fn smoothed_cross_entropy(
    logits: &Tensor,
    labels: &[usize],
    smoothing: f32,
    grad: &mut Tensor,
) -> f32 {
    grad.resize(logits.shape());
    let classes = logits.item_len().max(1);
    let n = labels.len().max(1) as f32;
    let mut loss = 0.0f64;
    let rows = logits.data().chunks_exact(classes);
    for ((row, g), &label) in rows
        .zip(grad.data_mut().chunks_exact_mut(classes))
        .zip(labels)
    {
        let p = softmax_row(row);
        let spread = smoothing / classes as f32;
        for (c, (g, p)) in g.iter_mut().zip(&p).enumerate() {
            let target = spread + if c == label { 1.0 - smoothing } else { 0.0 };
            if target > 0.0 {
                loss -= f64::from(target) * f64::from(p.max(f32::MIN_POSITIVE).ln());
            }
            *g = (p - target) / n;
        }
    }
    (loss / f64::from(n)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_closed_form() {
        let logits = Tensor::from_vec(&[2, 2], vec![1.0, 2.0, 0.5, -0.5]).unwrap_or_default();
        let mut grad = Tensor::default();
        let loss = cross_entropy(&logits, &[1, 0], &mut grad);
        let expected = ((1.0f32 + (-1.0f32).exp()).ln() + (1.0f32 + (-1.0f32).exp()).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        let p = 1.0 / (1.0 + 1.0f32.exp());
        assert!((grad.data()[0] - p / 2.0).abs() < 1e-6);
        assert!((grad.data()[1] + p / 2.0).abs() < 1e-6);
    }

    #[test]
    fn smoothing_matches_pytorch() {
        // PyTorch's definition: (1 − ε)·(−log p_y) + ε·mean_c(−log p_c),
        // 0.5477 for these logits (computed in f64).
        let logits = Tensor::from_vec(&[1, 3], vec![1.0, 2.0, 0.5]).unwrap_or_default();
        let mut grad = Tensor::default();
        let loss = smoothed_cross_entropy(&logits, &[1], 0.1, &mut grad);
        let p = softmax(&logits).remove(0);
        let target = [0.1 / 3.0, 0.9 + 0.1 / 3.0, 0.1 / 3.0];
        let expected: f32 = -(0..3).map(|c| target[c] * p[c].ln()).sum::<f32>();
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        assert!((loss - 0.5477).abs() < 1e-4, "{loss}");
        assert!((grad.data()[1] - (p[1] - target[1])).abs() < 1e-6);
        assert!(grad.data().iter().sum::<f32>().abs() < 1e-6);
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let logits = Tensor::from_vec(&[1, 3], vec![1000.0, 0.0, -1000.0]).unwrap_or_default();
        let p = softmax(&logits);
        assert!((p[0].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0][0] > 0.999);
    }
}
