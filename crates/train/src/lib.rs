//! tread's training part: train an image classifier from a bucket, evaluate
//! it on a held-out split, and pack it as a self-describing `model.tar.gz`.

pub mod artifact;
pub mod clock;
pub mod eval;
pub mod history;
pub mod job;
pub mod recipe;
pub mod trainer;

pub use artifact::{ArtifactError, Model, ModelCard, pack, unpack};
pub use eval::Evaluation;
pub use history::{ConsoleProgress, EpochMetrics, Progress};
pub use job::{
    Classifier, EvalModel, EvalOutcome, EvalScope, ForeignModel, JobError, TrainOutcome,
    evaluate_at, train_to,
};
pub use recipe::{Recipe, RecipeError, RecipeOverrides, Schedule};
pub use trainer::{Parts, TrainError, TrainOptions, Trained, evaluate, train};
