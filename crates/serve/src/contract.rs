//! What clients of an endpoint rely on: the classes it answers, in order,
//! and the input tensor it takes. A deploy or rollback that changes either
//! is refused unless asked for, because clients would otherwise see a new
//! class appear, or send tensors of the old shape to a model that wants
//! another.

use crate::model::ModelInfo;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An endpoint's promise to its clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    /// Class names; a class's index in `probabilities` is its position.
    pub classes: Vec<String>,
    /// The input tensor of one image, `[channels, height, width]` (FP32).
    pub input_shape: [u32; 3],
    /// Per-channel mean tensor clients subtract after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel standard deviation tensor clients divide by.
    pub std: [f32; 3],
}

impl Contract {
    /// The contract a model offers.
    pub fn of(info: &ModelInfo) -> Self {
        let size = info.input.size;
        Self {
            classes: info.classes.clone(),
            // tread's preprocessing always gives RGB, so 3 channels.
            input_shape: [3, size, size],
            mean: info.input.mean,
            std: info.input.std,
        }
    }

    /// How `new` differs from this contract, one line per part; empty when
    /// clients would notice nothing.
    ///
    /// ```
    /// # use tread_serve::contract::Contract;
    /// let old = Contract { classes: vec!["a".into(), "b".into()], input_shape: [3, 224, 224],
    ///                      mean: [0.5; 3], std: [0.25; 3] };
    /// let new = Contract { classes: vec!["a".into(), "b".into(), "c".into()], ..old.clone() };
    /// assert_eq!(old.changes_to(&new), ["classes [a, b] → [a, b, c]"]);
    /// ```
    pub fn changes_to(&self, new: &Contract) -> Vec<String> {
        let mut changes = Vec::new();
        if self.classes != new.classes {
            changes.push(format!(
                "classes {} → {}",
                list(&self.classes),
                list(&new.classes)
            ));
        }
        if self.input_shape != new.input_shape {
            changes.push(format!(
                "input FP32 {:?} → {:?}",
                self.input_shape, new.input_shape
            ));
        }
        if self.mean != new.mean || self.std != new.std {
            changes.push(format!(
                "normalisation mean {:?} std {:?} → mean {:?} std {:?}",
                self.mean, self.std, new.mean, new.std
            ));
        }
        changes
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "classes {}; input FP32 {:?}, mean {:?}, std {:?}",
            list(&self.classes),
            self.input_shape,
            self.mean,
            self.std
        )
    }
}

fn list(classes: &[String]) -> String {
    format!("[{}]", classes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(classes: &[&str], size: u32) -> Contract {
        Contract {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            input_shape: [3, size, size],
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    #[test]
    fn changes_name_each_part_that_differs() {
        let base = contract(&["defective", "good"], 224);
        let renormalised = Contract {
            mean: [0.5; 3],
            ..base.clone()
        };
        let cases: [(Contract, &[&str]); 5] = [
            (base.clone(), &[]),
            (
                contract(&["good", "defective"], 224),
                &["classes [defective, good] → [good, defective]"],
            ),
            (
                contract(&["defective", "good"], 96),
                &["input FP32 [3, 224, 224] → [3, 96, 96]"],
            ),
            (
                contract(&["a", "b", "c"], 96),
                &[
                    "classes [defective, good] → [a, b, c]",
                    "input FP32 [3, 224, 224] → [3, 96, 96]",
                ],
            ),
            (renormalised, &["normalisation mean"]),
        ];
        for (new, want) in cases {
            let got = base.changes_to(&new);
            assert_eq!(got.len(), want.len(), "{got:?}");
            for (g, w) in got.iter().zip(want) {
                assert!(g.starts_with(w), "{g:?} vs {w:?}");
            }
        }
    }
}
