//! The management API, asked in process: the same router, handlers and
//! token check as a request from the CLI.

use crate::error::ConsoleError;
use axum::Router;
use axum::body::Body;
pub use http::Method;
use http::{Request, header};
use serde_json::Value;
use tower::ServiceExt;
use tread_serve::auth::ApiToken;

/// Largest API answer a page reads (a run's log is paged well below it).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// A client of the management API that holds its token.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: ApiToken,
}

impl Api {
    /// A client of `router`, presenting `token`.
    pub fn new(router: Router, token: ApiToken) -> Self {
        Self { router, token }
    }

    /// Whether `candidate` is the API token this client presents: the
    /// one a person signs in with.
    pub fn is_token(&self, candidate: &str) -> bool {
        self.token.matches(candidate)
    }

    /// `GET path` (with its query), as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ConsoleError> {
        self.call(Method::GET, path, None, Body::empty()).await
    }

    /// `POST path` with a text body (a pipeline file) or none, as JSON.
    pub async fn post(&self, path: &str, body: impl Into<Body>) -> Result<Value, ConsoleError> {
        self.call(Method::POST, path, None, body.into()).await
    }

    /// `method path` with a JSON body, as JSON.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ConsoleError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ConsoleError::Internal(format!("encoding a request for {path}: {e}")))?;
        self.call(method, path, Some("application/json"), body.into())
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value, ConsoleError> {
        self.call(Method::DELETE, path, None, Body::empty()).await
    }

    /// `POST path` with a body of `content_type` (an image), as JSON.
    pub async fn post_typed(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, ConsoleError> {
        self.call(Method::POST, path, Some(content_type), body.into())
            .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<Value, ConsoleError> {
        let mut request = Request::builder().method(method).uri(path).header(
            header::AUTHORIZATION,
            format!("Bearer {}", self.token.secret()),
        );
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(body)
            .map_err(|e| ConsoleError::Internal(format!("building a request for {path}: {e}")))?;
        // The router's service is infallible: every failure is a response.
        let Ok(response) = self.router.clone().oneshot(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ConsoleError::Internal(format!("reading the answer to {path}: {e}")))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("failed").to_owned());
        Err(ConsoleError::Api { status, message })
    }
}
