//! tread's pipeline part: what a pipeline file says (data, schedule,
//! triggers, instance, steps), checked before anything runs. Runs, the
//! instances they hold and the model registry build on it.

pub mod spec;

pub use spec::{Gate, InstanceSpec, PipelineSpec, SpecError, Step, TrainStep};
