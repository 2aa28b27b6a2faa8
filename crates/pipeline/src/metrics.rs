//! The pipeline part's Prometheus series, served by `tread up`'s `/metrics`
//! beside the endpoints' own.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    pipeline: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabel {
    pipeline: String,
}

/// Runs by outcome, runs in flight, and instance time.
#[derive(Default)]
pub struct PipelineMetrics {
    runs: Family<RunLabels, Counter>,
    running: Gauge,
    billed: Family<PipelineLabel, Counter<f64, AtomicU64>>,
    idle: Family<PipelineLabel, Counter<f64, AtomicU64>>,
}

impl PipelineMetrics {
    /// Adds every series to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pipeline_runs",
            "Runs ended, by pipeline and final state",
            self.runs.clone(),
        );
        registry.register(
            "pipeline_runs_in_flight",
            "Runs holding an instance now",
            self.running.clone(),
        );
        registry.register(
            "instance_billed_seconds",
            "Seconds instances were held, by pipeline",
            self.billed.clone(),
        );
        registry.register(
            "instance_idle_seconds",
            "Seconds instances were held after their run's last step, by pipeline",
            self.idle.clone(),
        );
    }

    pub(crate) fn started(&self) {
        self.running.inc();
    }

    pub(crate) fn stopped(&self, pipeline: &str, billed: f64, idle: Option<f64>) {
        self.running.dec();
        let label = PipelineLabel {
            pipeline: pipeline.to_string(),
        };
        self.billed.get_or_create(&label).inc_by(billed);
        self.idle.get_or_create(&label).inc_by(idle.unwrap_or(0.0));
    }

    pub(crate) fn ended(&self, pipeline: &str, state: &str) {
        let labels = RunLabels {
            pipeline: pipeline.to_string(),
            state: state.to_string(),
        };
        self.runs.get_or_create(&labels).inc();
    }
}
