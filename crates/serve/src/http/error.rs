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
}

impl ApiError {
    /// An error with the given status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        let status = match &e {
            DeployError::InvalidName(_) | DeployError::Load(LoadError::Uri(_)) => {
                StatusCode::BAD_REQUEST
            }
            DeployError::NotFound(_) => StatusCode::NOT_FOUND,
            DeployError::NoPrevious(_) => StatusCode::CONFLICT,
            DeployError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeployError::Catalog(_) | DeployError::Thread(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
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
