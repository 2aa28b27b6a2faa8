//! The HTTP server: SageMaker-style invocations, the Open Inference
//! Protocol, the management API and `/metrics`, on one listener.

pub mod api;
pub mod binary;
pub mod error;
pub mod inputs;
pub mod invocations;
pub mod v2;

use crate::auth::ApiToken;
use crate::endpoints::{Deployment, Endpoints};
use crate::metrics::UNKNOWN_ENDPOINT;
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use error::ApiError;
use std::sync::Arc;
use std::time::Instant;

/// What every handler shares.
pub struct ServerState {
    /// The endpoints and their models.
    pub endpoints: Arc<Endpoints>,
    /// The management token.
    pub token: ApiToken,
    /// Whether inference and health routes need the token too (when the
    /// server listens beyond loopback without `--public-inference`).
    pub protect_inference: bool,
}

/// Largest request body: a big photo, or a JSON batch of them.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// Every route of the server, with a host's own management routes, if
/// any, behind the token.
pub fn router(state: Arc<ServerState>, host: Option<Router>) -> Router {
    let management = Router::new()
        .route("/api/endpoints", get(api::list))
        .route(
            "/api/endpoints/{name}",
            put(api::deploy).get(api::describe).delete(api::delete),
        )
        .route("/api/endpoints/{name}/rollback", post(api::rollback))
        .route("/api/endpoints/{name}/traffic", get(api::traffic))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut inference = Router::new()
        .route("/ping", get(invocations::ping))
        .route("/endpoints/{name}/invocations", post(invocations::invoke))
        .route("/v2", get(v2::server_metadata))
        .route("/v2/health/live", get(v2::live))
        .route("/v2/health/ready", get(v2::ready))
        .route("/v2/models/{name}", get(v2::model_metadata))
        .route("/v2/models/{name}/ready", get(v2::model_ready))
        .route("/v2/models/{name}/infer", post(v2::infer_route))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(v2::model_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(v2::model_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(v2::infer_route),
        )
        .route("/metrics", get(metrics));
    if state.protect_inference {
        inference =
            inference.route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    }
    let mut all = management
        .merge(inference)
        .fallback(not_found)
        .with_state(state.clone());
    if let Some(host) = host {
        all = all.merge(host.route_layer(middleware::from_fn_with_state(state, require_token)));
    }
    // The limit covers the host's routes too. The refusal rewriter wraps
    // the whole router as a fallback service: as a layer of `all` it would
    // run inside each route, before axum adds the `Allow` header to a 405.
    Router::new()
        .fallback_service(all.layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .layer(middleware::from_fn(json_refusals))
}

/// Most bytes of a plain-text refusal read to quote it in the JSON one.
const MAX_PLAIN_REFUSAL_BYTES: usize = 16 << 10;

/// Gives every refusal the JSON form of [`ApiError`]. Handlers answer
/// that form already; axum's own refusals come as plain text or with no
/// body: a method a route does not take (405), a body over the limit
/// (413) where an extractor read it, a path or query that does not parse.
/// Their status and headers (`Allow`) are kept.
async fn json_refusals(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_REFUSAL_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("other methods");
            ApiError::new(
                status,
                format!("{method} is not allowed on {path}: it takes {allowed}"),
            )
        }
        _ if text.is_empty() => ApiError::new(
            status,
            status
                .canonical_reason()
                .unwrap_or("refused")
                .to_ascii_lowercase(),
        ),
        _ => ApiError::new(status, text),
    };
    let mut refusal = error.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            refusal.headers_mut().append(name, value.clone());
        }
    }
    refusal
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route: see the README for the API")
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.endpoints.metrics().render(),
    )
        .into_response()
}

async fn require_token(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    match bearer(&headers) {
        Some(token) if state.token.matches(token) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "the bearer token is wrong").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this route needs `Authorization: Bearer <token>`: the token is in the server's data dir (api-token) or TREAD_TOKEN",
        )
        .into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110 §11.1), so `bearer` and `BEARER` count too.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// An inference request's body, or why the server would not read it (over
/// [`MAX_BODY_BYTES`]: 413), so that refusal is counted like any other.
pub type InferenceBody = Result<Bytes, BytesRejection>;

/// Runs an inference request on `deployment` (or answers its error),
/// counting the request, its status and its latency. Requests naming an
/// endpoint that is not defined are counted under [`UNKNOWN_ENDPOINT`], so
/// hostile names cannot grow the series.
pub async fn timed<T: IntoResponse>(
    state: &ServerState,
    name: &str,
    deployment: Result<Arc<Deployment>, ApiError>,
    work: impl AsyncFnOnce(Arc<Deployment>) -> Result<T, ApiError>,
) -> Response {
    let start = Instant::now();
    let response = match deployment {
        Ok(deployment) => work(deployment).await.into_response(),
        Err(e) => e.into_response(),
    };
    let defined =
        state.endpoints.current(name).is_some() || state.endpoints.unavailable(name).is_some();
    let label = if defined { name } else { UNKNOWN_ENDPOINT };
    let status = response.status().as_u16();
    if status >= 400 {
        tracing::debug!(endpoint = %name, status, "inference request refused");
    }
    state
        .endpoints
        .metrics()
        .observe_request(label, start.elapsed().as_secs_f64(), status);
    response
}

/// The endpoint's current model, or why there is none: 503 for an
/// endpoint whose model failed to load, 404 for no such endpoint.
pub fn deployment(state: &ServerState, name: &str) -> Result<Arc<Deployment>, ApiError> {
    if let Some(deployment) = state.endpoints.current(name) {
        return Ok(deployment);
    }
    Err(match state.endpoints.unavailable(name) {
        Some(reason) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("endpoint {name} has no model loaded: {reason}"),
        ),
        None => ApiError::not_found(format!("endpoint {name} does not exist")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r17_the_bearer_scheme_is_case_insensitive() {
        let cases = [
            ("Bearer t0k", Some("t0k")),
            ("bearer t0k", Some("t0k")),
            ("BEARER t0k", Some("t0k")),
            ("bEaReR   t0k ", Some("t0k")),
            ("Basic dXNlcjpwYXNz", None),
            ("Bearer", None),
            ("Bearert0k", None),
        ];
        for (value, want) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                header::HeaderValue::from_static(value),
            );
            assert_eq!(bearer(&headers), want, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
