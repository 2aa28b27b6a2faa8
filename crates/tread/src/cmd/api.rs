//! The client of `tread serve`'s and `tread up`'s HTTP API, with the token
//! from `TREAD_TOKEN` or the data dir.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::Path;
use tread_serve::ApiToken;

use crate::cmd::serve::ServerArgs;

/// Runs one future on a fresh single-threaded runtime.
pub fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

/// The endpoint server's HTTP API, with the token from `TREAD_TOKEN` or
/// the data dir.
pub struct ApiClient {
    /// The server's base URL.
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the server named by `server`.
    pub fn new(server: &ServerArgs, data_dir: &Path) -> Self {
        let token = std::env::var("TREAD_TOKEN").ok().or_else(|| {
            ApiToken::read(data_dir)
                .ok()
                .map(|t| t.secret().to_string())
        });
        Self {
            base: server.server.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// A management call with a JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        self.send(method, path, body.map(|b| ("application/json", b)))
            .await
    }

    /// A call with a body of any content type.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = request.send().await.with_context(|| {
            format!("cannot reach the endpoint server at {}: start it with `tread up` (or `tread serve`) or set --server/TREAD_SERVER", self.base)
        })?;
        let status = response.status();
        let text = response.text().await?;
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value["error"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
                bail!(
                    "{message} (no token found: set TREAD_TOKEN or --data-dir to the server's data dir)"
                );
            }
            bail!("{message} (HTTP {status})");
        }
        Ok(value)
    }
}
