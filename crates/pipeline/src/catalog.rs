//! The pipeline part's tables in the data dir's SQLite file: pipelines,
//! runs and their steps, instances, and the model registry. Every view is
//! `Serialize`, so the HTTP API answers with these types directly.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pipeline_pipelines (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    last_fire TEXT,
    data_digest TEXT,
    s3_user TEXT,
    access_key_id TEXT,
    secret_access_key TEXT);
CREATE TABLE IF NOT EXISTS pipeline_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    trigger TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    dataset_digest TEXT,
    model_version INTEGER);
CREATE TABLE IF NOT EXISTS pipeline_run_steps (
    run_id INTEGER NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    message TEXT,
    PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS pipeline_instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    backend TEXT NOT NULL,
    type TEXT NOT NULL,
    hourly_price REAL NOT NULL,
    state TEXT NOT NULL,
    workdir TEXT NOT NULL,
    started TEXT NOT NULL,
    stopped TEXT,
    billed_seconds REAL,
    cost REAL,
    idle_seconds REAL);
CREATE TABLE IF NOT EXISTS pipeline_models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    pipeline TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    uri TEXT NOT NULL,
    artifact_version TEXT NOT NULL,
    accuracy REAL NOT NULL,
    metrics TEXT NOT NULL,
    dataset_digest TEXT NOT NULL,
    production INTEGER NOT NULL DEFAULT 0,
    endpoint TEXT,
    created TEXT NOT NULL,
    PRIMARY KEY (name, version));
";

/// A pipeline as stored: its file and its scheduling state.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineRecord {
    /// The pipeline's name.
    pub name: String,
    /// The pipeline file as applied.
    pub source: String,
    /// Paused pipelines run only when triggered by hand.
    pub paused: bool,
    /// RFC 3339 time of the first apply; a `rate()` schedule counts from it.
    pub created: String,
    /// RFC 3339 time of the last apply.
    pub updated: String,
    /// The last time the schedule fired.
    pub last_fire: Option<String>,
    /// The data prefix's digest the last data-triggered decision saw.
    pub data_digest: Option<String>,
    /// The S3 user the pipeline's steps run as.
    pub s3_user: Option<String>,
}

/// The keys of a pipeline's S3 user; never serialised, never logged.
#[derive(Clone)]
pub struct StepKeys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Triggered, waiting for the pipeline's previous run.
    Queued,
    /// Holding an instance, running steps.
    Running,
    /// Every step passed.
    Succeeded,
    /// A step failed, the run timed out, or tread stopped under it.
    Failed,
    /// The gate held the model back; nothing was deployed.
    Gated,
    /// Cancelled by a user.
    Cancelled,
}

impl RunState {
    /// The state as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Gated => "gated",
            RunState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "queued" => RunState::Queued,
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "gated" => RunState::Gated,
            "cancelled" => RunState::Cancelled,
            _ => RunState::Failed,
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

/// One step of a run.
#[derive(Clone, Debug, Serialize)]
pub struct StepView {
    /// Position in the pipeline, from 1.
    pub index: i64,
    /// `train`, `evaluate`, `gate`, `register`, `deploy` or `run`.
    pub kind: String,
    /// `pending`, `running`, `succeeded`, `failed`, `gated` or `skipped`.
    pub state: String,
    /// RFC 3339 start time.
    pub started: Option<String>,
    /// RFC 3339 end time.
    pub finished: Option<String>,
    /// One line on the outcome.
    pub message: Option<String>,
}

/// A run with its steps and instance.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    /// Run id.
    pub id: i64,
    /// The pipeline it ran.
    pub pipeline: String,
    /// `schedule`, `data-change`, `manual`, `catch-up` or `api`.
    pub trigger: String,
    /// Where the run is.
    pub state: RunState,
    /// Why it failed or was gated.
    pub reason: Option<String>,
    /// RFC 3339 trigger time.
    pub created: String,
    /// RFC 3339 time the instance was asked for.
    pub started: Option<String>,
    /// RFC 3339 end time.
    pub finished: Option<String>,
    /// Digest of the dataset the model was trained on.
    pub dataset_digest: Option<String>,
    /// The registry version the run produced.
    pub model_version: Option<i64>,
    /// Steps in order.
    pub steps: Vec<StepView>,
    /// The instance the run held.
    pub instance: Option<InstanceView>,
}

/// An instance: compute held by one run.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceView {
    /// Instance id.
    pub id: i64,
    /// The run that held it.
    pub run_id: i64,
    /// The backend (`local`).
    pub backend: String,
    /// The instance type from the pipeline file.
    #[serde(rename = "type")]
    pub kind: String,
    /// `running` or `stopped`.
    pub state: String,
    /// RFC 3339 start.
    pub started: String,
    /// RFC 3339 stop.
    pub stopped: Option<String>,
    /// Seconds from start to stop.
    pub billed_seconds: Option<f64>,
    /// billed seconds × hourly price / 3600.
    pub cost: Option<f64>,
    /// Seconds from the last step's end to the stop.
    pub idle_seconds: Option<f64>,
    /// The instance's working directory.
    pub workdir: String,
}

/// One version in the model registry.
#[derive(Clone, Debug, Serialize)]
pub struct ModelVersion {
    /// Model name (the pipeline's name).
    pub name: String,
    /// 1, 2, 3… per name.
    pub version: i64,
    /// The pipeline that made it.
    pub pipeline: String,
    /// The run that made it.
    pub run_id: i64,
    /// The artifact.
    pub uri: String,
    /// The artifact's own version id.
    pub artifact_version: String,
    /// Held-out accuracy.
    pub accuracy: f64,
    /// The held-out evaluation, as the train part reports it.
    pub metrics: serde_json::Value,
    /// Digest of the training data.
    pub dataset_digest: String,
    /// Whether this is the version production endpoints serve.
    pub production: bool,
    /// The endpoint it was deployed to.
    pub endpoint: Option<String>,
    /// RFC 3339 registration time.
    pub created: String,
}

/// What the registry needs to record a version.
pub struct NewModel<'a> {
    /// Model name.
    pub name: &'a str,
    /// Run id.
    pub run_id: i64,
    /// Artifact URI.
    pub uri: &'a str,
    /// Artifact version id.
    pub artifact_version: &'a str,
    /// Held-out accuracy.
    pub accuracy: f64,
    /// The evaluation as JSON.
    pub metrics: &'a serde_json::Value,
    /// Dataset digest.
    pub dataset_digest: &'a str,
}

/// The pipeline tables, behind one connection.
pub struct Catalog {
    conn: Mutex<Connection>,
}

type Result<T> = std::result::Result<T, rusqlite::Error>;

const RUN_COLUMNS: &str = "id, pipeline, trigger, state, reason, created, started, finished, dataset_digest, model_version";
const INSTANCE_COLUMNS: &str = "id, run_id, backend, type, state, started, stopped, billed_seconds, cost, idle_seconds, workdir";
const MODEL_COLUMNS: &str = "name, version, pipeline, run_id, uri, artifact_version, accuracy, metrics, dataset_digest, production, endpoint, created";

impl Catalog {
    /// Opens (creating if needed) the database file and the pipeline tables.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut conn)
    }

    /// Creates or replaces a pipeline's file, keeping its history, schedule
    /// state and S3 user.
    pub fn pipeline_put(&self, name: &str, source: &str, now: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO pipeline_pipelines (name, source, created, updated) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(name) DO UPDATE SET source = excluded.source, updated = excluded.updated",
                params![name, source, now],
            )
            .map(drop)
        })
    }

    /// Records the S3 user a pipeline's steps run as.
    pub fn pipeline_set_user(&self, name: &str, user: &str, keys: &StepKeys) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_pipelines SET s3_user = ?2, access_key_id = ?3, secret_access_key = ?4 WHERE name = ?1",
                params![name, user, keys.access_key_id, keys.secret_access_key],
            )
            .map(drop)
        })
    }

    /// The keys of a pipeline's S3 user, if it has one.
    pub fn pipeline_keys(&self, name: &str) -> Result<Option<StepKeys>> {
        self.with(|c| {
            c.query_row(
                "SELECT access_key_id, secret_access_key FROM pipeline_pipelines
                 WHERE name = ?1 AND access_key_id IS NOT NULL",
                [name],
                |r| {
                    Ok(StepKeys {
                        access_key_id: r.get(0)?,
                        secret_access_key: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    /// One pipeline.
    pub fn pipeline(&self, name: &str) -> Result<Option<PipelineRecord>> {
        self.with(|c| {
            c.query_row(
                "SELECT name, source, paused, created, updated, last_fire, data_digest, s3_user
                 FROM pipeline_pipelines WHERE name = ?1",
                [name],
                pipeline_row,
            )
            .optional()
        })
    }

    /// Every pipeline, by name.
    pub fn pipelines(&self) -> Result<Vec<PipelineRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT name, source, paused, created, updated, last_fire, data_digest, s3_user
                 FROM pipeline_pipelines ORDER BY name",
            )?;
            stmt.query_map([], pipeline_row)?.collect()
        })
    }

    /// Pauses or resumes a pipeline; false when there is no such pipeline.
    pub fn pipeline_set_paused(&self, name: &str, paused: bool) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_pipelines SET paused = ?2 WHERE name = ?1",
                params![name, paused],
            )
            .map(|n| n > 0)
        })
    }

    /// Records that the schedule fired at `at`.
    pub fn pipeline_fired(&self, name: &str, at: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_pipelines SET last_fire = ?2 WHERE name = ?1",
                params![name, at],
            )
            .map(drop)
        })
    }

    /// Records the data digest the last data-change decision was made on.
    pub fn pipeline_set_data_digest(&self, name: &str, digest: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_pipelines SET data_digest = ?2 WHERE name = ?1",
                params![name, digest],
            )
            .map(drop)
        })
    }

    /// Creates a queued run with one pending row per step.
    pub fn run_create(
        &self,
        pipeline: &str,
        trigger: &str,
        steps: &[&str],
        now: &str,
    ) -> Result<i64> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO pipeline_runs (pipeline, trigger, state, created) VALUES (?1, ?2, 'queued', ?3)",
                params![pipeline, trigger, now],
            )?;
            let id = tx.last_insert_rowid();
            for (n, kind) in steps.iter().enumerate() {
                tx.execute(
                    "INSERT INTO pipeline_run_steps (run_id, idx, kind, state) VALUES (?1, ?2, ?3, 'pending')",
                    params![id, n as i64 + 1, kind],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    /// Marks a run running.
    pub fn run_started(&self, id: i64, now: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_runs SET state = 'running', started = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map(drop)
        })
    }

    /// Ends a run; pending steps become skipped.
    pub fn run_finished(
        &self,
        id: i64,
        state: RunState,
        reason: Option<&str>,
        now: &str,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE pipeline_runs SET state = ?2, reason = ?3, finished = ?4 WHERE id = ?1",
                params![id, state.as_str(), reason, now],
            )?;
            tx.execute(
                "UPDATE pipeline_run_steps SET state = 'skipped' WHERE run_id = ?1 AND state = 'pending'",
                [id],
            )?;
            tx.execute(
                "UPDATE pipeline_run_steps SET state = 'failed', finished = ?2 WHERE run_id = ?1 AND state = 'running'",
                params![id, now],
            )?;
            tx.commit()
        })
    }

    /// Records the dataset digest and registry version of a run's model.
    pub fn run_set_model(&self, id: i64, digest: &str, version: Option<i64>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_runs SET dataset_digest = ?2, model_version = COALESCE(?3, model_version) WHERE id = ?1",
                params![id, digest, version],
            )
            .map(drop)
        })
    }

    /// Marks step `index` (from 1) started.
    pub fn step_started(&self, run: i64, index: i64, now: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_run_steps SET state = 'running', started = ?3 WHERE run_id = ?1 AND idx = ?2",
                params![run, index, now],
            )
            .map(drop)
        })
    }

    /// Ends step `index` with `state` and a one-line message.
    pub fn step_finished(
        &self,
        run: i64,
        index: i64,
        state: &str,
        message: &str,
        now: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_run_steps SET state = ?3, message = ?4, finished = ?5 WHERE run_id = ?1 AND idx = ?2",
                params![run, index, state, message, now],
            )
            .map(drop)
        })
    }

    /// One run with its steps and instance.
    pub fn run(&self, id: i64) -> Result<Option<RunView>> {
        let run = self.with(|c| {
            c.query_row(
                &format!("SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()
        })?;
        run.map(|r| self.complete(r)).transpose()
    }

    /// Runs, newest first, of one pipeline or all.
    pub fn runs(&self, pipeline: Option<&str>, limit: i64) -> Result<Vec<RunView>> {
        let runs = self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            stmt.query_map(params![pipeline, limit], run_row)?.collect::<Result<Vec<_>>>()
        })?;
        runs.into_iter().map(|r| self.complete(r)).collect()
    }

    /// Runs that were queued or running, for recovery after a restart.
    pub fn runs_in_flight(&self) -> Result<Vec<i64>> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT id FROM pipeline_runs WHERE state IN ('queued', 'running')")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
    }

    fn complete(&self, mut run: RunView) -> Result<RunView> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT idx, kind, state, started, finished, message FROM pipeline_run_steps WHERE run_id = ?1 ORDER BY idx",
            )?;
            run.steps = stmt
                .query_map([run.id], |r| {
                    Ok(StepView {
                        index: r.get(0)?,
                        kind: r.get(1)?,
                        state: r.get(2)?,
                        started: r.get(3)?,
                        finished: r.get(4)?,
                        message: r.get(5)?,
                    })
                })?
                .collect::<Result<_>>()?;
            run.instance = c
                .query_row(
                    &format!("SELECT {INSTANCE_COLUMNS} FROM pipeline_instances WHERE run_id = ?1"),
                    [run.id],
                    instance_row,
                )
                .optional()?;
            Ok(run)
        })
    }

    /// Records a started instance; returns its id.
    pub fn instance_started(
        &self,
        run: i64,
        backend: &str,
        kind: &str,
        hourly_price: f64,
        workdir: &str,
        now: &str,
    ) -> Result<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO pipeline_instances (run_id, backend, type, hourly_price, state, workdir, started)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
                params![run, backend, kind, hourly_price, workdir, now],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records an instance's stop, its billed seconds, cost and idle time.
    pub fn instance_stopped(
        &self,
        id: i64,
        now: &str,
        billed_seconds: f64,
        idle_seconds: Option<f64>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE pipeline_instances SET state = 'stopped', stopped = ?2, billed_seconds = ?3,
                 cost = ?3 * hourly_price / 3600.0, idle_seconds = ?4 WHERE id = ?1",
                params![id, now, billed_seconds, idle_seconds],
            )
            .map(drop)
        })
    }

    /// Every instance, newest first.
    pub fn instances(&self) -> Result<Vec<InstanceView>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM pipeline_instances ORDER BY id DESC"
            ))?;
            stmt.query_map([], instance_row)?.collect()
        })
    }

    /// Records a model version; returns its number.
    pub fn model_register(&self, model: &NewModel<'_>, pipeline: &str, now: &str) -> Result<i64> {
        self.with(|c| {
            let tx = c.transaction()?;
            let version: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM pipeline_models WHERE name = ?1",
                [model.name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO pipeline_models (name, version, pipeline, run_id, uri, artifact_version, accuracy, metrics, dataset_digest, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    model.name,
                    version,
                    pipeline,
                    model.run_id,
                    model.uri,
                    model.artifact_version,
                    model.accuracy,
                    model.metrics.to_string(),
                    model.dataset_digest,
                    now
                ],
            )?;
            tx.commit()?;
            Ok(version)
        })
    }

    /// Makes `version` the production version of `name`, served by `endpoint`.
    pub fn model_promote(&self, name: &str, version: i64, endpoint: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("UPDATE pipeline_models SET production = 0 WHERE name = ?1", [name])?;
            tx.execute(
                "UPDATE pipeline_models SET production = 1, endpoint = ?3 WHERE name = ?1 AND version = ?2",
                params![name, version, endpoint],
            )?;
            tx.commit()
        })
    }

    /// One version.
    pub fn model(&self, name: &str, version: i64) -> Result<Option<ModelVersion>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {MODEL_COLUMNS} FROM pipeline_models WHERE name = ?1 AND version = ?2"
                ),
                params![name, version],
                model_row,
            )
            .optional()
        })
    }

    /// The production version of `name`.
    pub fn model_production(&self, name: &str) -> Result<Option<ModelVersion>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {MODEL_COLUMNS} FROM pipeline_models WHERE name = ?1 AND production = 1"
                ),
                [name],
                model_row,
            )
            .optional()
        })
    }

    /// Versions of one model or all, newest first.
    pub fn models(&self, name: Option<&str>) -> Result<Vec<ModelVersion>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {MODEL_COLUMNS} FROM pipeline_models WHERE ?1 IS NULL OR name = ?1 ORDER BY name, version DESC"
            ))?;
            stmt.query_map([name], model_row)?.collect()
        })
    }

    /// The registry version whose artifact an endpoint serves.
    pub fn model_by_uri(&self, uri: &str) -> Result<Option<ModelVersion>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {MODEL_COLUMNS} FROM pipeline_models WHERE uri = ?1 ORDER BY version DESC LIMIT 1"),
                [uri],
                model_row,
            )
            .optional()
        })
    }
}

fn pipeline_row(r: &Row<'_>) -> Result<PipelineRecord> {
    Ok(PipelineRecord {
        name: r.get(0)?,
        source: r.get(1)?,
        paused: r.get(2)?,
        created: r.get(3)?,
        updated: r.get(4)?,
        last_fire: r.get(5)?,
        data_digest: r.get(6)?,
        s3_user: r.get(7)?,
    })
}

fn run_row(r: &Row<'_>) -> Result<RunView> {
    Ok(RunView {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        trigger: r.get(2)?,
        state: RunState::parse(&r.get::<_, String>(3)?),
        reason: r.get(4)?,
        created: r.get(5)?,
        started: r.get(6)?,
        finished: r.get(7)?,
        dataset_digest: r.get(8)?,
        model_version: r.get(9)?,
        steps: Vec::new(),
        instance: None,
    })
}

fn instance_row(r: &Row<'_>) -> Result<InstanceView> {
    Ok(InstanceView {
        id: r.get(0)?,
        run_id: r.get(1)?,
        backend: r.get(2)?,
        kind: r.get(3)?,
        state: r.get(4)?,
        started: r.get(5)?,
        stopped: r.get(6)?,
        billed_seconds: r.get(7)?,
        cost: r.get(8)?,
        idle_seconds: r.get(9)?,
        workdir: r.get(10)?,
    })
}

fn model_row(r: &Row<'_>) -> Result<ModelVersion> {
    let metrics: String = r.get(7)?;
    Ok(ModelVersion {
        name: r.get(0)?,
        version: r.get(1)?,
        pipeline: r.get(2)?,
        run_id: r.get(3)?,
        uri: r.get(4)?,
        artifact_version: r.get(5)?,
        accuracy: r.get(6)?,
        metrics: serde_json::from_str(&metrics).unwrap_or(serde_json::Value::Null),
        dataset_digest: r.get(8)?,
        production: r.get(9)?,
        endpoint: r.get(10)?,
        created: r.get(11)?,
    })
}
