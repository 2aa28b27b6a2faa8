//! tread's pipeline part: pipeline files (data, schedule, triggers,
//! instance, steps), runs of those steps on instances that stop the moment
//! a run ends, the model registry, and the scheduler and API of `tread up`.

pub mod address;
pub mod catalog;
pub mod http;
pub mod identity;
pub mod instance;
pub mod isolation;
pub mod log;
pub mod metrics;
pub mod preview;
pub mod runner;
pub mod service;
pub mod slurm;
pub mod spec;

pub use address::DaemonAddress;
pub use catalog::{Catalog, RunState};
pub use identity::Identities;
pub use instance::{Backends, InstanceBackend, LocalBackend};
pub use metrics::PipelineMetrics;
pub use runner::{Runner, RunnerSettings, StepResult};
pub use service::{PipelineError, Pipelines, SCHEDULER_LEASE_TERM, daemon_name};
pub use spec::{BackendKind, Gate, InstanceSpec, PipelineSpec, SpecError, Step, TrainStep};
