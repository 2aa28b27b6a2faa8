//! Every failure of a store route as one HTTP status and `{"error": "…"}`,
//! the shape of the rest of the management API.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tread_data::objects::error_text;
use tread_serve::http::error::ApiError;
use tread_store::catalog::CatalogError;

/// A store route's failure.
pub struct Failure(ApiError);

impl Failure {
    /// 400: the request cannot be acted on; `message` says what to change.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(ApiError::bad_request(message))
    }

    /// 409: the request contradicts what exists; `message` says what.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self(ApiError::new(StatusCode::CONFLICT, message))
    }

    /// 500: the server failed (a bug, or a thread that died).
    pub fn internal(message: impl Into<String>) -> Self {
        Self(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message))
    }

    /// An S3 operation's failure, with the store's own status, code and
    /// message (a full volume, a missing key), so the caller sees what the
    /// store said; 502 when the store could not be reached at all.
    pub fn s3<E: ProvideErrorMetadata + std::error::Error + 'static>(
        what: &str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Self {
        let status = e
            .raw_response()
            .and_then(|r| StatusCode::from_u16(r.status().as_u16()).ok())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        let said = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => match e.raw_response() {
                // A HEAD's error has no body: the status says it.
                Some(_) => status.canonical_reason().unwrap_or("failed").to_string(),
                None => format!("the store did not answer: {}", error_text(&e)),
            },
        };
        Self(ApiError::new(status, format!("{what}: {said}")))
    }
}

impl From<CatalogError> for Failure {
    fn from(e: CatalogError) -> Self {
        let status = match &e {
            CatalogError::NotFound { .. } => StatusCode::NOT_FOUND,
            CatalogError::AlreadyExists { .. } => StatusCode::CONFLICT,
            CatalogError::Invalid(_) | CatalogError::Policy { .. } => StatusCode::BAD_REQUEST,
            CatalogError::Db(db) if db.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            CatalogError::Db(_) | CatalogError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self(ApiError::new(status, e.to_string()))
    }
}

impl From<tread_data::ObjectsError> for Failure {
    fn from(e: tread_data::ObjectsError) -> Self {
        let status = match &e {
            tread_data::ObjectsError::BadUri(_) => StatusCode::BAD_REQUEST,
            tread_data::ObjectsError::S3 { .. } | tread_data::ObjectsError::Io { .. } => {
                StatusCode::BAD_GATEWAY
            }
        };
        Self(ApiError::new(status, e.to_string()))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}
