//! A training step's curves: loss and accuracy per epoch, for training and
//! for the validation part, drawn from what `/api/runs/{id}/metrics` reads.

use crate::chart::{LineChart, Series};
use crate::error::ConsoleError;
use serde::Serialize;
use serde_json::Value as Json;

/// One training step's charts and latest figures.
#[derive(Serialize)]
pub struct Curves {
    step: i64,
    /// Epochs finished so far.
    epochs: usize,
    /// Loss per epoch (SVG), when an epoch has finished.
    loss: Option<String>,
    /// Accuracy per epoch (SVG), when an epoch has finished.
    accuracy: Option<String>,
    /// The last epoch's figures.
    last: Option<Json>,
    /// The held-out evaluation, once training ended.
    evaluation: Option<Json>,
}

impl Curves {
    /// The curves of one answer of `/api/runs/{id}/metrics`.
    pub fn of(metrics: &Json) -> Result<Self, ConsoleError> {
        let epochs = metrics["epochs"].as_array().cloned().unwrap_or_default();
        let chart = |y_label, fields: [(&str, &str); 2]| {
            let series = fields
                .into_iter()
                .map(|(label, field)| Series {
                    label: label.to_owned(),
                    points: points(&epochs, field),
                    ringed: Vec::new(),
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            LineChart {
                x_label: "epoch",
                y_label,
                whole_x: true,
                series,
            }
            .svg()
        };
        Ok(Self {
            step: metrics["step"].as_i64().unwrap_or_default(),
            epochs: epochs.len(),
            loss: chart(
                "loss",
                [("training", "loss"), ("validation", "validation_loss")],
            )?,
            accuracy: chart(
                "accuracy",
                [
                    ("training", "accuracy"),
                    ("validation", "validation_accuracy"),
                ],
            )?,
            last: epochs.last().cloned(),
            evaluation: metrics.get("evaluation").filter(|e| !e.is_null()).cloned(),
        })
    }
}

/// `(epoch, field)` of every epoch that has the field.
fn points(epochs: &[Json], field: &str) -> Vec<(f64, f64)> {
    epochs
        .iter()
        .filter_map(|e| Some((e["epoch"].as_f64()?, e[field].as_f64()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_adds_a_point_and_validation_is_drawn_only_when_measured() {
        let epoch = |n: u32, validation: Option<f64>| {
            let mut e =
                serde_json::json!({ "epoch": n, "loss": 1.0 / f64::from(n), "accuracy": 0.5 });
            if let Some(v) = validation {
                e["validation_loss"] = v.into();
            }
            e
        };
        let training_only =
            serde_json::json!({ "step": 1, "epochs": [epoch(1, None), epoch(2, None)] });
        let curves = Curves::of(&training_only).expect("drawn");
        assert_eq!(curves.epochs, 2);
        let loss = curves.loss.expect("a loss chart");
        assert_eq!(loss.matches("<circle").count(), 2, "a point per epoch");
        assert_eq!(curves.last.expect("last")["epoch"], 2);
        let with_validation =
            serde_json::json!({ "step": 1, "epochs": [epoch(1, Some(0.9)), epoch(2, Some(0.8))] });
        let loss = Curves::of(&with_validation)
            .expect("drawn")
            .loss
            .expect("chart");
        assert_eq!(
            loss.matches("<circle").count(),
            4,
            "and a point per validation"
        );
        assert!(loss.contains("validation"), "the legend names both lines");
        let none = Curves::of(&serde_json::json!({ "step": 1, "epochs": [] })).expect("empty");
        assert!(none.loss.is_none() && none.accuracy.is_none());
    }
}
