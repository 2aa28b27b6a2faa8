//! The client of `tread serve`'s and `tread up`'s HTTP API, with the token
//! from `TREAD_TOKEN` or the data dir.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
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
    data_dir: PathBuf,
    offline_reads: bool,
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
            base: server.url(data_dir).trim_end_matches('/').to_string(),
            data_dir: data_dir.to_path_buf(),
            offline_reads: true,
            token,
            http: reqwest::Client::new(),
        }
    }

    /// A client that never falls back to the data dir: for loops that wait
    /// on a daemon, which would wait forever on a record it no longer moves.
    pub fn online_only(mut self) -> Self {
        self.offline_reads = false;
        self
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
        let mut request = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e)
                if self.offline_reads
                    && e.is_connect()
                    && method == reqwest::Method::GET
                    && offline::serves(path) =>
            {
                return offline::get(&self.data_dir, &self.base, path).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot reach the server at {}: start it with `tread up` (or `tread serve`) or set --server/TREAD_SERVER",
                    self.base
                )));
            }
        };
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

/// Reads of the pipeline catalog when no daemon answers: the same routes,
/// served in-process from the data dir. Only reads, because a run started
/// here would die with this command.
mod offline {
    use anyhow::{Context, bail};
    use serde_json::Value;
    use std::path::Path;
    use std::sync::Arc;
    use tower::ServiceExt;
    use tread_pipeline::{Backends, Catalog, LocalBackend, Pipelines, Runner, RunnerSettings};
    use tread_serve::Endpoints;

    /// Whether `path` is a read this module can answer.
    pub fn serves(path: &str) -> bool {
        [
            "/api/pipelines",
            "/api/runs",
            "/api/models",
            "/api/instances",
            "/api/lineage/",
            "/api/endpoints",
        ]
        .iter()
        .any(|p| path.starts_with(p))
    }

    /// Answers GET `path` from the catalog in `data_dir`.
    pub async fn get(data_dir: &Path, base: &str, path: &str) -> anyhow::Result<Value> {
        let database = data_dir.join(tread_catalog::SQLITE_FILE);
        if !crate::cmd::uses_database_url() && !database.exists() {
            bail!(
                "tread up is not running at {base}, and {} holds no catalog: start `tread up` or set --data-dir",
                data_dir.display()
            );
        }
        eprintln!(
            "(tread up is not running at {base}: read from {} directly)",
            data_dir.display()
        );
        let db = crate::cmd::open_database(data_dir).await?;
        let catalog = Arc::new(Catalog::new(db.clone()).await?);
        let endpoints = Arc::new(Endpoints::open(db, Default::default(), Arc::default()).await?);
        if let Some(rest) = path.strip_prefix("/api/endpoints") {
            return recorded_endpoints(&endpoints, rest.trim_start_matches('/')).await;
        }
        let runner = Runner::new(
            catalog.clone(),
            endpoints,
            Backends::new(LocalBackend::new(
                std::env::temp_dir(),
                data_dir.to_path_buf(),
            )?),
            RunnerSettings {
                program: std::env::current_exe()?,
                s3_endpoint: None,
                runs_dir: data_dir.join("runs"),
                metrics: Arc::default(),
            },
        );
        let router = tread_pipeline::http::router(Pipelines::new(
            catalog,
            Arc::new(runner),
            None,
            None,
            "offline",
        ));
        let request = axum::http::Request::get(path).body(axum::body::Body::empty())?;
        let response = router.oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        let value: Value = serde_json::from_slice(&bytes).context("the catalog's answer")?;
        if !status.is_success() {
            bail!(
                "{} (HTTP {status})",
                value["error"].as_str().unwrap_or("failed")
            );
        }
        Ok(value)
    }

    /// `GET /api/endpoints[/NAME]` as the catalog records them: no model is
    /// loaded here, so each shows the model its active revision names and
    /// the status `OutOfService` (SageMaker's word for an endpoint that
    /// exists but does not answer).
    async fn recorded_endpoints(endpoints: &Endpoints, name: &str) -> anyhow::Result<Value> {
        let views = if name.is_empty() {
            endpoints.list().await?
        } else {
            vec![endpoints.describe(name).await?]
        };
        let mut recorded = Vec::new();
        for view in views {
            let active = view.history.iter().rev().find(|r| r.active).cloned();
            let mut value = serde_json::to_value(view)?;
            value["status"] = "OutOfService".into();
            if let Some(active) = active {
                value["model"] = serde_json::json!({
                    "uri": active.model_uri,
                    "version": active.model_version,
                });
            }
            recorded.push(value);
        }
        Ok(if name.is_empty() {
            Value::Array(recorded)
        } else {
            recorded.pop().unwrap_or(Value::Null)
        })
    }
}
