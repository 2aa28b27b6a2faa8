//! `/metrics` in Prometheus text format: requests, errors, latency, batch
//! sizes, and the model version each endpoint serves. Names follow
//! TorchServe's and Triton's in spirit, with a `tread_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The label of per-endpoint series. Requests to endpoints that do not
/// exist are counted under [`UNKNOWN_ENDPOINT`], so hostile names cannot
/// grow the series without bound.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// The endpoint's name.
    pub endpoint: String,
}

/// The endpoint label used for requests to endpoints that do not exist.
pub const UNKNOWN_ENDPOINT: &str = "(unknown)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    endpoint: String,
    version: String,
    uri: String,
}

/// Every series the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<EndpointLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<EndpointLabel, Histogram>,
    batch_size: Family<EndpointLabel, Histogram>,
    model: Family<ModelLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 8))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tread");
        let requests = Family::<EndpointLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Family::<EndpointLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let batch_size = Family::<EndpointLabel, Histogram>::new_with_constructor(
            batch_histogram as fn() -> Histogram,
        );
        let model = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "inference_requests",
            "Inference requests received",
            requests.clone(),
        );
        registry.register(
            "inference_errors",
            "Inference requests answered with an error, by HTTP status",
            errors.clone(),
        );
        registry.register(
            "inference_latency_seconds",
            "Time from request to answer, decode and preprocessing included",
            latency.clone(),
        );
        registry.register(
            "inference_batch_size",
            "Images per forward pass",
            batch_size.clone(),
        );
        registry.register(
            "endpoint_model",
            "The model version an endpoint serves (1 for the current one)",
            model.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            latency,
            batch_size,
            model,
        }
    }
}

impl Metrics {
    /// The server's series and a host's own (`tread up`'s pipelines), in
    /// one registry so `/metrics` stays one valid exposition.
    pub fn with_host(register: impl FnOnce(&mut Registry)) -> Self {
        let mut metrics = Self::default();
        register(&mut metrics.registry);
        metrics
    }

    /// Counts one answered inference request and its latency.
    pub fn observe_request(&self, endpoint: &str, seconds: f64, status: u16) {
        let label = EndpointLabel {
            endpoint: endpoint.to_string(),
        };
        self.requests.get_or_create(&label).inc();
        self.latency.get_or_create(&label).observe(seconds);
        if status >= 400 {
            self.errors
                .get_or_create(&ErrorLabels {
                    endpoint: label.endpoint,
                    status,
                })
                .inc();
        }
    }

    /// Counts one forward pass of `images` images.
    pub fn observe_batch(&self, endpoint: &str, images: usize) {
        self.batch_size
            .get_or_create(&EndpointLabel {
                endpoint: endpoint.to_string(),
            })
            .observe(images as f64);
    }

    /// Records that `endpoint` now serves `version` (from `uri`), and no
    /// longer `previous`.
    pub fn set_model(
        &self,
        endpoint: &str,
        previous: Option<(&str, &str)>,
        now: Option<(&str, &str)>,
    ) {
        let labels = |(version, uri): (&str, &str)| ModelLabels {
            endpoint: endpoint.to_string(),
            version: version.to_string(),
            uri: uri.to_string(),
        };
        if let Some(old) = previous {
            self.model.remove(&labels(old));
        }
        if let Some(new) = now {
            self.model.get_or_create(&labels(new)).set(1);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
