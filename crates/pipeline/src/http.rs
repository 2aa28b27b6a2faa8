//! The pipeline part of the management API (`/api/pipelines`, `/api/runs`,
//! `/api/models`, `/api/instances`, `/api/lineage`, `/api/schedules`). The
//! host mounts it
//! behind the same bearer token as the endpoint routes.

use crate::catalog::{InstanceView, ModelVersion, RunState, RunView};
use crate::log::{read_from, step_log_path};
use crate::preview::{DEFAULT_FIRES, SchedulePreview, after_or_now, preview};
use crate::service::{Lineage, PipelineError, PipelineView, Pipelines};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tread_serve::http::error::ApiError;
use tread_train::EpochMetrics;

/// A pipeline API error as HTTP.
pub struct Failure(ApiError);

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Self {
        let e = match e {
            PipelineError::Deploy(e) => return Self(ApiError::from(e)),
            other => other,
        };
        let status = match &e {
            PipelineError::Spec(_) | PipelineError::Invalid(_) => StatusCode::BAD_REQUEST,
            PipelineError::NotFound(_) => StatusCode::NOT_FOUND,
            PipelineError::Conflict(_) => StatusCode::CONFLICT,
            PipelineError::Deploy(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PipelineError::Catalog(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            PipelineError::Catalog(_) | PipelineError::Identity(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self(ApiError::new(status, e.to_string()))
    }
}

impl From<tread_catalog::DbError> for Failure {
    fn from(e: tread_catalog::DbError) -> Self {
        PipelineError::Catalog(e).into()
    }
}

impl axum::response::IntoResponse for Failure {
    fn into_response(self) -> axum::response::Response {
        self.0.into_response()
    }
}

type Answer<T> = Result<Json<T>, Failure>;

/// Every pipeline route.
pub fn router(pipelines: Arc<Pipelines>) -> Router {
    Router::new()
        .route("/api/pipelines", get(list).post(apply))
        .route("/api/pipelines/{name}", get(describe))
        .route("/api/pipelines/{name}/runs", post(trigger))
        .route("/api/pipelines/{name}/pause", post(pause))
        .route("/api/pipelines/{name}/resume", post(resume))
        .route("/api/runs", get(runs))
        .route("/api/runs/{id}", get(run))
        .route("/api/runs/{id}/logs", get(logs))
        .route("/api/runs/{id}/metrics", get(metrics))
        .route("/api/runs/{id}/cancel", post(cancel))
        .route("/api/models", get(models))
        .route("/api/models/{name}/{version}", get(model))
        .route("/api/models/{name}/{version}/promote", post(promote))
        .route("/api/instances", get(instances))
        .route("/api/lineage/{endpoint}", get(lineage))
        .route("/api/schedules/next", get(schedule_next))
        .with_state(pipelines)
}

type S = State<Arc<Pipelines>>;

async fn list(State(p): S) -> Answer<Vec<PipelineView>> {
    Ok(Json(p.list().await?))
}

/// `POST /api/pipelines` with the pipeline file (TOML) as the body.
async fn apply(State(p): S, body: String) -> Answer<PipelineView> {
    Ok(Json(p.apply(&body).await?))
}

async fn describe(State(p): S, Path(name): Path<String>) -> Answer<PipelineView> {
    Ok(Json(p.describe(&name).await?))
}

#[derive(Deserialize)]
struct TriggerQuery {
    via: Option<String>,
}

async fn trigger(
    State(p): S,
    Path(name): Path<String>,
    Query(q): Query<TriggerQuery>,
) -> Result<(StatusCode, Json<RunView>), Failure> {
    let trigger = if q.via.as_deref() == Some("cli") {
        "manual"
    } else {
        "api"
    };
    Ok((StatusCode::CREATED, Json(p.trigger(&name, trigger).await?)))
}

async fn pause(State(p): S, Path(name): Path<String>) -> Answer<PipelineView> {
    Ok(Json(p.set_paused(&name, true).await?))
}

async fn resume(State(p): S, Path(name): Path<String>) -> Answer<PipelineView> {
    Ok(Json(p.set_paused(&name, false).await?))
}

#[derive(Deserialize)]
struct RunsQuery {
    pipeline: Option<String>,
    state: Option<String>,
    limit: Option<i64>,
}

async fn runs(State(p): S, Query(q): Query<RunsQuery>) -> Answer<Vec<RunView>> {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(RunState::named(text).ok_or_else(|| {
            PipelineError::Invalid(format!(
                "state {text:?} is not a run state: use queued, running, succeeded, failed, gated or cancelled"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50);
    Ok(Json(
        p.catalog()
            .runs(q.pipeline.as_deref(), state, limit)
            .await?,
    ))
}

async fn find_run(p: &Pipelines, id: i64) -> Result<RunView, Failure> {
    p.catalog()
        .run(id)
        .await?
        .ok_or_else(|| PipelineError::NotFound(format!("run {id} does not exist")).into())
}

async fn run(State(p): S, Path(id): Path<i64>) -> Answer<RunView> {
    Ok(Json(find_run(&p, id).await?))
}

async fn cancel(State(p): S, Path(id): Path<i64>) -> Answer<RunView> {
    Ok(Json(p.cancel(id).await?))
}

#[derive(Deserialize)]
struct LogsQuery {
    step: i64,
    offset: Option<u64>,
}

/// A piece of one step's log.
#[derive(Serialize)]
struct LogChunk {
    text: String,
    next_offset: u64,
    /// The step's state: when it is no longer pending or running, the
    /// text up to `next_offset` is the whole log.
    step_state: String,
}

async fn logs(State(p): S, Path(id): Path<i64>, Query(q): Query<LogsQuery>) -> Answer<LogChunk> {
    let run = find_run(&p, id).await?;
    let step = run
        .steps
        .iter()
        .find(|s| s.index == q.step)
        .map(|s| (s.kind.clone(), s.state.clone()))
        .or_else(|| (q.step == 0).then(|| ("on-start".to_string(), on_start_state(&run))))
        .ok_or_else(|| PipelineError::NotFound(format!("run {id} has no step {}", q.step)))?;
    // The state is read before the file, so a finished state means the
    // file already holds everything.
    let path = step_log_path(p.runs_dir(), id, q.step, &step.0);
    let offset = q.offset.unwrap_or(0);
    let (text, next_offset) = if path.exists() {
        read_from(&path, offset).map_err(|e| {
            Failure(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ))
        })?
    } else {
        // Run by another daemon on the catalog: its log as last kept there.
        let kept = p.catalog().step_log(id, q.step).await?.unwrap_or_default();
        kept.from_offset(offset)
    };
    Ok(Json(LogChunk {
        text,
        next_offset,
        step_state: step.1,
    }))
}

#[derive(Deserialize)]
struct MetricsQuery {
    step: i64,
}

/// A training step's curves so far.
#[derive(Serialize)]
struct StepMetrics {
    step: i64,
    /// Where they grow; none for a step that does not train.
    uri: Option<String>,
    /// One entry per finished epoch.
    epochs: Vec<EpochMetrics>,
    /// The held-out evaluation, once training ended.
    evaluation: Option<serde_json::Value>,
    /// Why nothing could be read yet (before the first epoch, the file
    /// does not exist).
    unavailable: Option<String>,
}

/// `GET /api/runs/{id}/metrics?step=N`: a training step's per-epoch
/// metrics as they grow, read from the store as the step writes them.
async fn metrics(
    State(p): S,
    Path(id): Path<i64>,
    Query(q): Query<MetricsQuery>,
) -> Answer<StepMetrics> {
    let run = find_run(&p, id).await?;
    let step = run
        .steps
        .iter()
        .find(|s| s.index == q.step)
        .ok_or_else(|| PipelineError::NotFound(format!("run {id} has no step {}", q.step)))?;
    let mut answer = StepMetrics {
        step: q.step,
        uri: step.metrics_uri.clone(),
        epochs: Vec::new(),
        evaluation: None,
        unavailable: None,
    };
    if let Some(uri) = &step.metrics_uri {
        match tread_data::read_uri(uri).await {
            Ok(bytes) => read_metrics(&bytes, &mut answer),
            Err(e) => answer.unavailable = Some(e.to_string()),
        }
    }
    Ok(Json(answer))
}

/// Reads `metrics.jsonl`: an epoch per line, then the evaluation's line.
fn read_metrics(bytes: &[u8], into: &mut StepMetrics) {
    for (number, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(line);
        let epoch = parsed.and_then(|value| match value.get("evaluation") {
            Some(evaluation) => {
                into.evaluation = Some(evaluation.clone());
                Ok(None)
            }
            None => serde_json::from_value::<EpochMetrics>(value).map(Some),
        });
        match epoch {
            Ok(Some(epoch)) => into.epochs.push(epoch),
            Ok(None) => {}
            Err(e) => {
                into.unavailable = Some(format!("line {} does not read: {e}", number + 1));
                return;
            }
        }
    }
}

/// The on-start script runs before step 1: it is over once step 1 began.
fn on_start_state(run: &RunView) -> String {
    let step_one_began = run.steps.first().is_some_and(|s| s.state != "pending");
    if step_one_began || run.state.is_final() {
        "succeeded".to_string()
    } else {
        "running".to_string()
    }
}

#[derive(Deserialize)]
struct ModelsQuery {
    name: Option<String>,
}

async fn models(State(p): S, Query(q): Query<ModelsQuery>) -> Answer<Vec<ModelVersion>> {
    Ok(Json(p.catalog().models(q.name.as_deref()).await?))
}

async fn model(State(p): S, Path((name, version)): Path<(String, i64)>) -> Answer<ModelVersion> {
    p.catalog()
        .model(&name, version)
        .await?
        .map(Json)
        .ok_or_else(|| {
            PipelineError::NotFound(format!("model {name} has no version {version}")).into()
        })
}

async fn promote(State(p): S, Path((name, version)): Path<(String, i64)>) -> Answer<ModelVersion> {
    Ok(Json(p.promote(&name, version).await?))
}

async fn instances(State(p): S) -> Answer<Vec<InstanceView>> {
    Ok(Json(p.catalog().instances().await?))
}

async fn lineage(State(p): S, Path(endpoint): Path<String>) -> Answer<Lineage> {
    Ok(Json(p.lineage(&endpoint).await?))
}

#[derive(Deserialize)]
struct ScheduleQuery {
    expr: String,
    n: Option<usize>,
    /// RFC 3339; now when absent.
    after: Option<String>,
}

/// `GET /api/schedules/next?expr=…&n=…&after=…`: the next fire times of any
/// expression; 400 with the parser's message when it is invalid.
async fn schedule_next(Query(q): Query<ScheduleQuery>) -> Answer<SchedulePreview> {
    let after = after_or_now(q.after.as_deref())?;
    Ok(Json(preview(&q.expr, after, q.n.unwrap_or(DEFAULT_FIRES))?))
}
