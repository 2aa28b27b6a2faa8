//! Every failure of a request becomes one HTTP status and a JSON body
//! `{"error": "…"}`, the shape the Open Inference Protocol uses.

use crate::endpoints::DeployError;
use crate::model::LoadError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tread_data::ImageInputError;

/// A request that could not be answered, and why.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
    /// Fields beside `error` in the body, for callers that act on them
    /// (a refused contract change gives `contract: {current, new}`).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with the given status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such endpoint or model.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 413: the body is over [`crate::http::MAX_BODY_BYTES`].
    pub fn body_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than {} MiB: send fewer or smaller images per request",
                crate::http::MAX_BODY_BYTES >> 20
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), self.message.into());
        (self.status, Json(body)).into_response()
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        let status = match &e {
            DeployError::InvalidName(_) | DeployError::Load(LoadError::Uri(_)) => {
                StatusCode::BAD_REQUEST
            }
            DeployError::NotFound(_) | DeployError::UnknownVersion { .. } => StatusCode::NOT_FOUND,
            DeployError::NoPrevious(_)
            | DeployError::AlreadyServes { .. }
            | DeployError::ContractChange { .. } => StatusCode::CONFLICT,
            DeployError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeployError::Catalog(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            DeployError::Catalog(_) | DeployError::Thread(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut error = Self::new(status, e.to_string());
        if let DeployError::ContractChange { current, new, .. } = &e {
            error.details.insert(
                "contract".into(),
                serde_json::json!({ "current": current, "new": new }),
            );
        }
        error
    }
}

impl From<ImageInputError> for ApiError {
    fn from(e: ImageInputError) -> Self {
        let status = match e {
            ImageInputError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.to_string())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::body_too_large();
        }
        Self::new(status, format!("cannot read the body: {}", e.body_text()))
    }
}
