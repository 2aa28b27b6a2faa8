//! Accuracy, per-class precision / recall / F1 and the confusion matrix.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// How well a model classified a set of images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Share of images classified correctly.
    pub accuracy: f64,
    /// Per-class figures, in class order.
    pub classes: Vec<ClassMetrics>,
    /// `confusion[actual][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Precision, recall and F1 of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub name: String,
    /// Of the images predicted as this class, the share that are.
    pub precision: f64,
    /// Of the images of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Images of this class evaluated.
    pub support: usize,
}

/// Counts predictions against true labels.
#[derive(Clone, Debug)]
pub struct Confusion {
    names: Vec<String>,
    counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// An empty matrix over `names`.
    pub fn new(names: &[String]) -> Self {
        Self {
            names: names.to_vec(),
            counts: vec![vec![0; names.len()]; names.len()],
        }
    }

    /// Records the predicted class (the largest logit) of each row of
    /// `logits` against its label.
    pub fn add_predictions(&mut self, logits: &tread_nn::Tensor, labels: &[usize]) {
        for (predicted, actual) in crate::trainer::predictions(logits).into_iter().zip(labels) {
            self.add(*actual, predicted);
        }
    }

    /// Records one prediction.
    pub fn add(&mut self, actual: usize, predicted: usize) {
        if let Some(count) = self
            .counts
            .get_mut(actual)
            .and_then(|row| row.get_mut(predicted))
        {
            *count += 1;
        }
    }

    /// The figures; a class never predicted or never present scores 0.
    pub fn evaluation(&self) -> Evaluation {
        let total: usize = self.counts.iter().flatten().sum();
        let correct: usize = (0..self.names.len()).map(|c| self.counts[c][c]).sum();
        let classes = self
            .names
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let support: usize = self.counts[c].iter().sum();
                let predicted: usize = self.counts.iter().map(|row| row[c]).sum();
                let hits = self.counts[c][c] as f64;
                let precision = ratio(hits, predicted as f64);
                let recall = ratio(hits, support as f64);
                ClassMetrics {
                    name: name.clone(),
                    precision,
                    recall,
                    f1: ratio(2.0 * precision * recall, precision + recall),
                    support,
                }
            })
            .collect();
        Evaluation {
            images: total,
            accuracy: ratio(correct as f64, total as f64),
            classes,
            confusion: self.counts.clone(),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl Evaluation {
    /// The figures as a plain-text table for a terminal or a log.
    pub fn table(&self) -> String {
        let width = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(9);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "accuracy {:.2} % on {} held-out images",
            self.accuracy * 100.0,
            self.images
        );
        let _ = writeln!(
            out,
            "{:<width$}  precision  recall     f1  support",
            "class"
        );
        for c in &self.classes {
            let _ = writeln!(
                out,
                "{:<width$}  {:>9.3}  {:>6.3}  {:>5.3}  {:>7}",
                c.name, c.precision, c.recall, c.f1, c.support
            );
        }
        let _ = writeln!(out, "confusion (rows: actual, columns: predicted)");
        let _ = write!(out, "{:<width$}", "");
        for c in &self.classes {
            let _ = write!(out, "  {:>9}", c.name);
        }
        for (c, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(out, "\n{:<width$}", c.name);
            for n in row {
                let _ = write!(out, "  {n:>9}");
            }
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_confusion_matrix() {
        let names = vec!["defective".to_string(), "good".to_string()];
        let mut confusion = Confusion::new(&names);
        for (actual, predicted, times) in [(0, 0, 8), (0, 1, 2), (1, 1, 5), (1, 0, 5)] {
            (0..times).for_each(|_| confusion.add(actual, predicted));
        }
        let e = confusion.evaluation();
        assert_eq!((e.images, e.accuracy), (20, 0.65));
        assert_eq!(e.confusion, vec![vec![8, 2], vec![5, 5]]);
        let d = &e.classes[0];
        assert!((d.precision - 8.0 / 13.0).abs() < 1e-12 && (d.recall - 0.8).abs() < 1e-12);
        assert!((d.f1 - 2.0 * d.precision * d.recall / (d.precision + d.recall)).abs() < 1e-12);
        assert_eq!(e.classes[1].support, 10);
        assert!(e.table().contains("65.00 %"));
    }

    #[test]
    fn empty_classes_score_zero_not_nan() {
        let e = Confusion::new(&["a".to_string(), "b".to_string()]).evaluation();
        assert_eq!(e.accuracy, 0.0);
        assert!(e.classes.iter().all(|c| c.f1 == 0.0 && c.precision == 0.0));
    }
}
