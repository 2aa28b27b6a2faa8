//! `/metrics` in Prometheus text format: requests, errors, latency, batch
//! sizes, and the model version each endpoint serves. Names follow
//! TorchServe's and Triton's in spirit, with a `tread_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests per endpoint whose latencies [`Traffic`] reads its quantiles
/// from: recent enough to describe the endpoint now, enough for a p99.
const RECENT_REQUESTS: usize = 2048;

/// The span a [`Traffic`] request rate covers.
const RATE_SPAN: Duration = Duration::from_secs(60);

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
    /// The Prometheus histogram keeps buckets for a scraper; a person
    /// asking "how fast is it now" reads these exact recent latencies.
    recent: Mutex<HashMap<String, Recent>>,
}

/// One endpoint's recent answers and its counts since the server started.
#[derive(Default)]
struct Recent {
    /// When each of the last [`RECENT_REQUESTS`] was answered, and its
    /// latency in seconds.
    answers: VecDeque<(Instant, f64)>,
    requests: u64,
    errors: u64,
}

/// An endpoint's traffic as the server saw it, for a person (the console)
/// rather than a scraper.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Traffic {
    /// Inference requests answered since the server started.
    pub requests: u64,
    /// Of those, answered with an error status.
    pub errors: u64,
    /// Requests answered in the last minute.
    pub last_minute: usize,
    /// Median latency over the recent requests, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency over the recent requests, in milliseconds.
    pub p99_ms: Option<f64>,
    /// How many recent requests the quantiles describe.
    pub recent: usize,
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
            recent: Mutex::default(),
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
        self.remember(endpoint, seconds, status >= 400);
        if status >= 400 {
            self.errors
                .get_or_create(&ErrorLabels {
                    endpoint: label.endpoint,
                    status,
                })
                .inc();
        }
    }

    fn remember(&self, endpoint: &str, seconds: f64, error: bool) {
        // A poisoned lock only means another request panicked mid-update
        // of plain counters; they stay usable.
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let entry = recent.entry(endpoint.to_owned()).or_default();
        if entry.answers.len() == RECENT_REQUESTS {
            entry.answers.pop_front();
        }
        entry.answers.push_back((Instant::now(), seconds));
        entry.requests += 1;
        entry.errors += u64::from(error);
    }

    /// What `endpoint` has answered: counts since start, the last
    /// minute's requests and the recent latencies' median and p99.
    pub fn traffic(&self, endpoint: &str) -> Traffic {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = recent.get(endpoint) else {
            return Traffic::default();
        };
        let since = Instant::now().checked_sub(RATE_SPAN);
        let mut latencies: Vec<f64> = entry.answers.iter().map(|a| a.1).collect();
        latencies.sort_by(f64::total_cmp);
        Traffic {
            requests: entry.requests,
            errors: entry.errors,
            last_minute: entry
                .answers
                .iter()
                .filter(|a| since.is_none_or(|s| a.0 >= s))
                .count(),
            p50_ms: quantile(&latencies, 0.5).map(|s| s * 1000.0),
            p99_ms: quantile(&latencies, 0.99).map(|s| s * 1000.0),
            recent: latencies.len(),
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

/// The `q` quantile of `sorted` values (nearest rank), if there are any.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(last)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_counts_answers_and_errors_and_reads_quantiles_from_recent_latencies() {
        let metrics = Metrics::default();
        for ms in 1..=100 {
            let status = if ms % 25 == 0 { 400 } else { 200 };
            metrics.observe_request("ep", f64::from(ms) / 1000.0, status);
        }
        let traffic = metrics.traffic("ep");
        assert_eq!((traffic.requests, traffic.errors), (100, 4));
        assert_eq!((traffic.last_minute, traffic.recent), (100, 100));
        let close = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
        assert!(close(traffic.p50_ms, 50.0), "{traffic:?}");
        assert!(close(traffic.p99_ms, 99.0), "{traffic:?}");
        assert_eq!(metrics.traffic("other"), Traffic::default());
    }

    #[test]
    fn quantiles_describe_the_most_recent_requests_only() {
        let metrics = Metrics::default();
        for _ in 0..RECENT_REQUESTS {
            metrics.observe_request("ep", 5.0, 200);
        }
        for _ in 0..RECENT_REQUESTS {
            metrics.observe_request("ep", 0.001, 200);
        }
        let traffic = metrics.traffic("ep");
        assert_eq!(traffic.requests, 2 * RECENT_REQUESTS as u64);
        assert_eq!(traffic.recent, RECENT_REQUESTS);
        assert!(traffic.p99_ms.is_some_and(|p| p < 1.5), "{traffic:?}");
    }
}
