//! tread's serving part: named endpoints that load a `model.tar.gz` (or an
//! ONNX classifier) from a bucket and answer predictions over HTTP —
//! SageMaker's invocations route, the Open Inference Protocol, a management
//! API and Prometheus metrics — swapping models without a failed request.

pub mod auth;
pub mod batcher;
pub mod catalog;
pub mod contract;
pub mod endpoints;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod model;
#[cfg(feature = "onnx")]
pub mod onnx;

pub use auth::ApiToken;
pub use batcher::BatchOptions;
pub use catalog::AlsoRecord;
pub use contract::Contract;
pub use endpoints::{DeployError, DeployOptions, EndpointView, Endpoints, RollbackOptions};
pub use model::{LoadError, ModelInfo};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// How the endpoint server is set up.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The catalog holding endpoint definitions.
    pub database: tread_catalog::Database,
    /// The directory holding the API token.
    pub data_dir: PathBuf,
    /// Dynamic batching.
    pub batch: BatchOptions,
    /// Serve inference without the token even when not on loopback.
    pub public_inference: bool,
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The endpoint catalog could not be opened.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The token file or the listener failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// What a server listening beyond loopback exposes, for its startup warning.
pub fn exposure(public_inference: bool) -> &'static str {
    if public_inference {
        "inference (/endpoints/…/invocations, /v2/…, /ping) and /metrics (model versions, URIs, request counts) are open to anyone who can reach this address; the management API (/api/…) needs the token"
    } else {
        "every route needs the token: the management API (/api/…), inference and /metrics (--public-inference opens inference and /metrics to anyone)"
    }
}

/// A bound endpoint server, endpoints restored, not yet answering.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<http::ServerState>,
    management: Option<axum::Router>,
    front: Option<Front>,
}

/// What a host puts in front of the whole API (`tread up`'s console): given
/// the API's router and token, the router that answers every request.
pub type Front = Box<dyn FnOnce(axum::Router, ApiToken) -> axum::Router + Send>;

impl Server {
    /// Opens the catalog and the token, restores every endpoint's model and
    /// binds the listener.
    pub async fn bind(options: &ServeOptions) -> Result<Self, ServeError> {
        Self::bind_with_metrics(options, Arc::default()).await
    }

    /// [`Server::bind`], reporting to `metrics` (made with
    /// [`metrics::Metrics::with_host`] to add a host's series).
    pub async fn bind_with_metrics(
        options: &ServeOptions,
        metrics: Arc<metrics::Metrics>,
    ) -> Result<Self, ServeError> {
        let io = |context: String| move |source| ServeError::Io { context, source };
        let token = ApiToken::load_or_create(&options.data_dir).map_err(io(format!(
            "cannot create the API token in {}",
            options.data_dir.display()
        )))?;
        let endpoints =
            Arc::new(Endpoints::open(options.database.clone(), options.batch, metrics).await?);
        endpoints.restore().await?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(io(format!("cannot listen on {}", options.listen)))?;
        let exposed = !options.listen.ip().is_loopback();
        if exposed {
            tracing::warn!(
                listen = %options.listen,
                "listening beyond loopback: {}",
                exposure(options.public_inference)
            );
        }
        let state = Arc::new(http::ServerState {
            endpoints,
            token,
            protect_inference: exposed && !options.public_inference,
        });
        Ok(Self {
            listener,
            state,
            management: None,
            front: None,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The endpoints, for a host process (`tread up`) that deploys itself.
    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.state.endpoints.clone()
    }

    /// Adds management routes of a host process (`tread up`'s pipelines),
    /// served behind the same bearer token as `/api/endpoints`.
    pub fn mount_management(&mut self, routes: axum::Router) {
        self.management = Some(routes);
    }

    /// Puts `front` in front of every route (the console), handing it the
    /// API's router so that it can answer from the same handlers.
    pub fn mount_front(&mut self, front: Front) {
        self.front = Some(front);
    }

    /// Answers requests until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let endpoints = self.state.endpoints.clone();
        // Other daemons on the same catalog deploy too.
        let follower = tokio::spawn(async move { endpoints.follow().await });
        let token = self.state.token.clone();
        let api = http::router(self.state, self.management);
        let app = match self.front {
            Some(front) => front(api, token),
            None => api,
        };
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        follower.abort();
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r17_the_exposure_warning_names_metrics() {
        for public in [true, false] {
            assert!(exposure(public).contains("/metrics"), "{public}");
        }
        assert!(exposure(true).contains("open to anyone"));
    }
}
