//! The management API the CLI uses: deploy, describe, list, roll back and
//! delete endpoints. Every route needs the bearer token.

use crate::endpoints::EndpointView;
use crate::http::ServerState;
use crate::http::error::ApiError;
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
}

/// `GET /api/endpoints`.
pub async fn list(
    State(state): State<Arc<ServerState>>,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    Ok(Json(state.endpoints.list()?))
}

/// `GET /api/endpoints/{name}`.
pub async fn describe(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(state.endpoints.describe(&name)?))
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
            "expected {{\"model\": \"s3://…/model.tar.gz\"}}: {e}"
        ))
    })?;
    Ok(Json(state.endpoints.deploy(&name, &request.model).await?))
}

/// `POST /api/endpoints/{name}/rollback`.
pub async fn rollback(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(state.endpoints.rollback(&name).await?))
}

/// `DELETE /api/endpoints/{name}`.
pub async fn delete(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.endpoints.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
