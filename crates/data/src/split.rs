//! Seeded train / held-out splits and per-epoch shuffles.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// How to divide a dataset: exact counts (`1500,356`) or fractions
/// (`0.8,0.2`), training part first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitSpec {
    /// Images for training and for evaluation; must add up to the dataset.
    Counts(usize, usize),
    /// Shares for training and evaluation; must add up to 1.
    Fractions(f64, f64),
}

/// Why a split cannot be made.
#[derive(Debug, Error, PartialEq)]
pub enum SplitError {
    /// Not two comma-separated numbers.
    #[error("split {0:?} is not TRAIN,TEST counts (1500,356) or fractions (0.8,0.2)")]
    Syntax(String),
    /// Counts that do not add up to the dataset size.
    #[error("split {train},{test} covers {} images but the dataset has {total}: make the counts add up to {total}", train + test)]
    CountsMismatch {
        /// Training count.
        train: usize,
        /// Held-out count.
        test: usize,
        /// Dataset size.
        total: usize,
    },
    /// Fractions that are not positive or do not add up to 1.
    #[error("split fractions {0},{1} must be positive and add up to 1")]
    BadFractions(f64, f64),
    /// A part would be empty.
    #[error("split of {total} images leaves the {part} part empty")]
    EmptyPart {
        /// Dataset size.
        total: usize,
        /// Which part.
        part: &'static str,
    },
}

impl FromStr for SplitSpec {
    type Err = SplitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || SplitError::Syntax(s.to_string());
        let (a, b) = s.split_once(',').ok_or_else(syntax)?;
        let (a, b) = (a.trim(), b.trim());
        if let (Ok(train), Ok(test)) = (a.parse::<usize>(), b.parse::<usize>()) {
            return Ok(Self::Counts(train, test));
        }
        match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(train), Ok(test)) => Ok(Self::Fractions(train, test)),
            _ => Err(syntax()),
        }
    }
}

impl fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Counts(a, b) => write!(f, "{a},{b}"),
            Self::Fractions(a, b) => write!(f, "{a},{b}"),
        }
    }
}

impl SplitSpec {
    /// Training and held-out sizes for a dataset of `total` images.
    pub fn sizes(&self, total: usize) -> Result<(usize, usize), SplitError> {
        let (train, test) = match *self {
            Self::Counts(train, test) if train + test == total => (train, test),
            Self::Counts(train, test) => {
                return Err(SplitError::CountsMismatch { train, test, total });
            }
            Self::Fractions(a, b) if a > 0.0 && b > 0.0 && ((a + b) - 1.0).abs() < 1e-6 => {
                let train = ((total as f64) * a).round() as usize;
                (train.min(total), total - train.min(total))
            }
            Self::Fractions(a, b) => return Err(SplitError::BadFractions(a, b)),
        };
        match (train, test) {
            (0, _) => Err(SplitError::EmptyPart {
                total,
                part: "training",
            }),
            (_, 0) => Err(SplitError::EmptyPart {
                total,
                part: "held-out",
            }),
            sizes => Ok(sizes),
        }
    }

    /// Divides indices `0..total` into training and held-out sets, the same
    /// way for the same seed, each sorted.
    pub fn split(&self, total: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>), SplitError> {
        let (train, _) = self.sizes(total)?;
        let mut order: Vec<usize> = (0..total).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut test = order.split_off(train);
        order.sort_unstable();
        test.sort_unstable();
        Ok((order, test))
    }
}

/// The order of `indices` for one epoch: a seeded shuffle that differs per
/// epoch and repeats across runs.
pub fn epoch_order(indices: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = indices.to_vec();
    let epoch_seed = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_fractions() {
        assert_eq!("1500,356".parse(), Ok(SplitSpec::Counts(1500, 356)));
        assert_eq!("0.8, 0.2".parse(), Ok(SplitSpec::Fractions(0.8, 0.2)));
        assert!(matches!(
            "80%".parse::<SplitSpec>(),
            Err(SplitError::Syntax(_))
        ));
    }

    #[test]
    fn counts_must_add_up() {
        let err = SplitSpec::Counts(1500, 300).split(1856, 1).err();
        assert_eq!(
            err,
            Some(SplitError::CountsMismatch {
                train: 1500,
                test: 300,
                total: 1856
            })
        );
        assert!(SplitSpec::Fractions(0.8, 0.3).split(10, 1).is_err());
        assert!(SplitSpec::Fractions(0.99, 0.01).split(10, 1).is_err());
    }

    #[test]
    fn split_is_reproducible_and_disjoint() -> Result<(), SplitError> {
        let spec = SplitSpec::Counts(1500, 356);
        let (train, test) = spec.split(1856, 77)?;
        assert_eq!((train.len(), test.len()), (1500, 356));
        assert_eq!(spec.split(1856, 77)?, (train.clone(), test.clone()));
        assert_ne!(spec.split(1856, 78)?.1, test);
        let mut all: Vec<_> = train.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1856).collect::<Vec<_>>());
        let (train, test) = SplitSpec::Fractions(0.8, 0.2).split(10, 1)?;
        assert_eq!((train.len(), test.len()), (8, 2));
        Ok(())
    }

    #[test]
    fn epochs_shuffle_differently_but_repeatably() {
        let indices: Vec<usize> = (0..100).collect();
        let first = epoch_order(&indices, 7, 0);
        assert_eq!(first, epoch_order(&indices, 7, 0));
        assert_ne!(first, epoch_order(&indices, 7, 1));
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, indices);
    }
}
