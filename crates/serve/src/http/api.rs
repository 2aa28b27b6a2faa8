//! The management API the CLI and the console use: deploy, describe, list,
//! roll back and delete endpoints, and read their traffic. Every route needs the bearer token.

use crate::endpoints::{DeployOptions, EndpointView, RollbackOptions};
use crate::http::ServerState;
use crate::http::error::ApiError;
use crate::metrics::Traffic;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

/// The body of `PUT /api/endpoints/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The artifact: `s3://…/model.tar.gz`, `s3://…/model.onnx`, or a path.
    pub model: String,
    /// Let the model change the classes or input the endpoint's clients
    /// rely on (refused otherwise, with both contracts in the answer).
    #[serde(default)]
    pub allow_contract_change: bool,
}

/// The body of `POST /api/endpoints/{name}/rollback`; an empty body goes
/// one step back.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The model version to return to.
    #[serde(default)]
    pub to: Option<String>,
    /// Let the older model change the classes or input.
    #[serde(default)]
    pub allow_contract_change: bool,
}

/// `GET /api/endpoints`.
pub async fn list(
    State(state): State<Arc<ServerState>>,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    Ok(Json(state.endpoints.list().await?))
}

/// `GET /api/endpoints/{name}`.
pub async fn describe(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(state.endpoints.describe(&name).await?))
}

/// `GET /api/endpoints/{name}/traffic`: requests and errors since the
/// server started, the last minute's requests, recent p50 and p99.
pub async fn traffic(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<Json<Traffic>, ApiError> {
    // An endpoint that does not exist is the describe's 404.
    state.endpoints.describe(&name).await?;
    Ok(Json(state.endpoints.metrics().traffic(&name)))
}

/// `PUT /api/endpoints/{name}`: deploy a model, creating the endpoint or
/// swapping its model.
pub async fn deploy(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<EndpointView>, ApiError> {
    let request: DeployRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "expected {{\"model\": \"s3://…/model.tar.gz\", \"allow_contract_change\"?: bool}}: {e}"
        ))
    })?;
    let options = DeployOptions {
        allow_contract_change: request.allow_contract_change,
    };
    Ok(Json(
        state
            .endpoints
            .deploy(&name, &request.model, options)
            .await?,
    ))
}

/// `POST /api/endpoints/{name}/rollback`, with an optional body
/// `{"to": version, "allow_contract_change": bool}`.
pub async fn rollback(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<EndpointView>, ApiError> {
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "expected no body or {{\"to\"?: \"VERSION\", \"allow_contract_change\"?: bool}}: {e}"
            ))
        })?
    };
    let options = RollbackOptions {
        to: request.to,
        allow_contract_change: request.allow_contract_change,
    };
    Ok(Json(state.endpoints.rollback(&name, &options).await?))
}

/// `DELETE /api/endpoints/{name}`.
pub async fn delete(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.endpoints.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
