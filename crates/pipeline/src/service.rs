//! The daemon's pipeline service: applies pipeline files, turns triggers
//! (schedule, data change, hand, API) into runs, runs one run at a time per
//! pipeline, and after a restart fails what was in flight and stops its
//! instances.

use crate::catalog::{
    Catalog, Cause, InstanceView, ModelVersion, PipelineRecord, RunState, RunView,
};
use crate::identity::Identities;
use crate::runner::{Runner, now};
use crate::spec::{MIN_SETTLE_SECONDS, PipelineSpec, SpecError, Step};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;
use tread_catalog::{Lease, persist};
use tread_data::{ObjectDir, ObjectsError, S3Access};
use tread_serve::DeployOptions;

/// How often the scheduler looks at the schedules: a fire waits at most
/// this long, and a look is a read of the pipelines table.
const SCHEDULER_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// How long the scheduler's lease lasts unrenewed: when the daemon holding
/// it dies, another fires the schedules at most this (plus a renewal) later.
pub const SCHEDULER_LEASE_TERM: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the holder renews the lease, and the others ask for it.
const SCHEDULER_LEASE_RENEWAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a daemon's heartbeat lasts unrenewed (it renews every
/// [`SCHEDULER_LEASE_RENEWAL`]): the runs of a daemon silent for longer are
/// failed by the scheduling daemon.
const DAEMON_HEARTBEAT_TERM: std::time::Duration = std::time::Duration::from_secs(15);

/// The heartbeat lease of daemon `NAME` is `pipeline-daemon:NAME`.
const DAEMON_LEASE_PREFIX: &str = "pipeline-daemon:";

/// How often the scheduling daemon looks for runs of daemons that died.
const ORPHAN_SWEEP: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest wait between looks at a data prefix that cannot be listed.
const LISTING_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a pipeline request was refused.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The pipeline file is wrong.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// No such pipeline, run or model version.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in the current state.
    #[error("{0}")]
    Conflict(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] tread_catalog::DbError),
    /// The pipeline file asks for something that cannot be: a policy that
    /// does not exist.
    #[error("{0}")]
    Invalid(String),
    /// The pipeline's S3 user could not be set up in the store.
    #[error("the pipeline's S3 user: {0}")]
    Identity(String),
    /// A deploy for a promotion failed.
    #[error(transparent)]
    Deploy(#[from] tread_serve::DeployError),
}

/// A pipeline as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineView {
    /// Name.
    pub name: String,
    /// The dataset.
    pub data: String,
    /// The schedule expression.
    pub schedule: Option<String>,
    /// RFC 3339 time of the next scheduled run.
    pub next_run: Option<String>,
    /// Paused pipelines only run by hand.
    pub paused: bool,
    /// Whether new data starts a run.
    pub retrain_on_data_change: bool,
    /// The instance type.
    pub instance_type: String,
    /// Step kinds in order.
    pub steps: Vec<String>,
    /// The S3 user its steps run as.
    pub s3_user: Option<String>,
    /// RFC 3339 creation time.
    pub created: String,
    /// RFC 3339 time of the last apply.
    pub updated: String,
    /// The newest run.
    pub last_run: Option<RunView>,
    /// The pipeline file.
    pub source: String,
}

/// Where an endpoint's model came from.
#[derive(Clone, Debug, Serialize)]
pub struct Lineage {
    /// The endpoint.
    pub endpoint: String,
    /// The artifact it serves.
    pub model_uri: Option<String>,
    /// The registry version of that artifact, if a pipeline made it.
    pub model: Option<ModelVersion>,
    /// The run that made it.
    pub run: Option<RunView>,
    /// The digest of the data it was trained on.
    pub dataset_digest: Option<String>,
}

#[derive(Default)]
struct Watch {
    /// Failed listings in a row.
    failures: u32,
    seen: Option<String>,
    since: Option<std::time::Instant>,
    next_poll: Option<std::time::Instant>,
    /// A listing is under way (off the scheduler's path).
    listing: bool,
}

#[derive(Default)]
struct State {
    active: HashMap<i64, CancellationToken>,
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    busy: HashMap<String, usize>,
    watches: HashMap<String, Watch>,
}

/// The pipeline service of `tread up`.
pub struct Pipelines {
    catalog: Arc<Catalog>,
    runner: Arc<Runner>,
    identities: Option<Identities>,
    s3_endpoint: Option<String>,
    daemon: String,
    state: Mutex<State>,
}

impl Pipelines {
    /// A service over `catalog`, running with `runner`; `identities`
    /// creates each pipeline's S3 user in the store at `s3_endpoint`.
    /// `daemon` names this daemon among those sharing the catalog, the same
    /// across its restarts: the runs it starts are its own to recover.
    pub fn new(
        catalog: Arc<Catalog>,
        runner: Arc<Runner>,
        identities: Option<Identities>,
        s3_endpoint: Option<String>,
        daemon: &str,
    ) -> Arc<Self> {
        Arc::new(Self {
            catalog,
            runner,
            identities,
            s3_endpoint,
            daemon: daemon.to_string(),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory of step logs.
    pub fn runs_dir(&self) -> &std::path::Path {
        self.runner.runs_dir()
    }

    /// The catalog, for reads.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Creates or updates a pipeline from its file.
    pub async fn apply(&self, source: &str) -> Result<PipelineView, PipelineError> {
        let spec: PipelineSpec = source.parse()?;
        spec.check_applicable(OffsetDateTime::now_utc())?;
        self.runner
            .backends()
            .of(spec.instance.backend)
            .check(&spec.instance)
            .await
            .map_err(|e| PipelineError::Invalid(format!("[instance]: {e}")))?;
        if let Some(identities) = &self.identities {
            identities.check_buckets(&spec).await?;
        }
        let record = self.catalog.pipeline(&spec.name).await?;
        let previous: Option<PipelineSpec> = record.as_ref().and_then(|r| r.source.parse().ok());
        if let Some(identities) = &self.identities
            && let Some((user, keys)) = identities
                .ensure(&spec, self.catalog.pipeline_keys(&spec.name).await?)
                .await?
        {
            self.catalog
                .pipeline_put(&spec.name, source, &now())
                .await?;
            self.catalog
                .pipeline_set_user(&spec.name, &user, &keys)
                .await?;
        } else {
            self.catalog
                .pipeline_put(&spec.name, source, &now())
                .await?;
        }
        if previous
            .as_ref()
            .is_some_and(|old| old.schedule != spec.schedule)
        {
            // A new schedule counts from now, not from fires of the old one.
            self.catalog.pipeline_fired(&spec.name, &now()).await?;
        }
        let same_data = previous
            .as_ref()
            .is_some_and(|old| old.data == spec.data && old.retrain_on_data_change);
        let has_baseline = record.is_some_and(|r| r.data_digest.is_some());
        if spec.retrain_on_data_change
            && !(same_data && has_baseline)
            && let Some(digest) = self.data_digest_or_warn(&spec).await
        {
            // The data as it is when the trigger is applied is the
            // baseline; only changes after it start runs.
            self.catalog
                .pipeline_set_data_digest(&spec.name, &digest)
                .await?;
        }
        self.state().watches.remove(&spec.name);
        tracing::info!(pipeline = %spec.name, "pipeline applied");
        self.describe(&spec.name).await
    }

    /// One pipeline.
    pub async fn describe(&self, name: &str) -> Result<PipelineView, PipelineError> {
        let record =
            self.catalog.pipeline(name).await?.ok_or_else(|| {
                PipelineError::NotFound(format!("pipeline {name} does not exist"))
            })?;
        self.view(record).await
    }

    /// Every pipeline.
    pub async fn list(&self) -> Result<Vec<PipelineView>, PipelineError> {
        let mut views = Vec::new();
        for record in self.catalog.pipelines().await? {
            views.push(self.view(record).await?);
        }
        Ok(views)
    }

    async fn view(&self, record: PipelineRecord) -> Result<PipelineView, PipelineError> {
        let spec: PipelineSpec = record.source.parse()?;
        let next_run = next_fire(&record, &spec)
            .filter(|_| !record.paused)
            .and_then(|t| t.format(&Rfc3339).ok());
        Ok(PipelineView {
            data: spec.data.clone(),
            schedule: spec.schedule.as_ref().map(ToString::to_string),
            next_run,
            paused: record.paused,
            retrain_on_data_change: spec.retrain_on_data_change,
            instance_type: spec.instance.kind.clone(),
            steps: spec.steps.iter().map(|s| s.kind().to_string()).collect(),
            s3_user: record.s3_user.clone(),
            created: record.created.clone(),
            updated: record.updated.clone(),
            last_run: self
                .catalog
                .runs(Some(&record.name), None, 1)
                .await?
                .into_iter()
                .next(),
            source: record.source,
            name: record.name,
        })
    }

    /// Pauses or resumes a pipeline's schedule and data trigger.
    pub async fn set_paused(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<PipelineView, PipelineError> {
        if !paused {
            // Fires missed while paused were meant to be skipped. Recorded
            // before the pipeline is unpaused: the other way round, a
            // scheduler tick in between saw it unpaused with a missed fire
            // still due, and ran it.
            self.catalog.pipeline_fired(name, &now()).await?;
        }
        if !self.catalog.pipeline_set_paused(name, paused).await? {
            return Err(PipelineError::NotFound(format!(
                "pipeline {name} does not exist"
            )));
        }
        self.describe(name).await
    }

    /// Starts a run of pipeline `name`; it waits for the pipeline's
    /// previous run if one is going.
    pub async fn trigger(
        self: &Arc<Self>,
        name: &str,
        trigger: &str,
    ) -> Result<RunView, PipelineError> {
        let record =
            self.catalog.pipeline(name).await?.ok_or_else(|| {
                PipelineError::NotFound(format!("pipeline {name} does not exist"))
            })?;
        let spec: PipelineSpec = record.source.parse()?;
        let id = self
            .create_run(&spec, Cause::Asked(trigger))
            .await?
            .ok_or_else(|| PipelineError::Conflict(format!("pipeline {name} did not start")))?;
        self.catalog
            .run(id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("run {id} vanished")))
    }

    /// Records a run of `spec` for `cause` and starts it; `None` when
    /// another daemon recorded the same fire or data change first.
    async fn create_run(
        self: &Arc<Self>,
        spec: &PipelineSpec,
        cause: Cause<'_>,
    ) -> Result<Option<i64>, PipelineError> {
        let kinds: Vec<&str> = spec.steps.iter().map(Step::kind).collect();
        let trigger = cause.trigger();
        let Some(id) = self
            .catalog
            .run_create(&spec.name, cause, &kinds, &self.daemon, &now())
            .await?
        else {
            return Ok(None);
        };
        tracing::info!(run = id, pipeline = %spec.name, trigger, "run triggered");
        self.start(id, spec.clone());
        Ok(Some(id))
    }

    /// Runs run `id` once the pipeline's previous run has ended.
    fn start(self: &Arc<Self>, id: i64, spec: PipelineSpec) {
        let cancel = CancellationToken::new();
        let lock = {
            let mut state = self.state();
            state.active.insert(id, cancel.clone());
            *state.busy.entry(spec.name.clone()).or_default() += 1;
            state.locks.entry(spec.name.clone()).or_default().clone()
        };
        let service = self.clone();
        tokio::spawn(async move {
            let turn = tokio::select! {
                guard = lock.lock() => Some(guard),
                () = cancel.cancelled() => None,
            };
            if turn.is_none() {
                service
                    .end_unstarted(id, RunState::Cancelled, "cancelled before it started")
                    .await;
            } else {
                match service.prepare(&spec).await {
                    Ok(keys) => {
                        service.runner.execute(id, &spec, keys, cancel).await;
                    }
                    Err(reason) => service.end_unstarted(id, RunState::Failed, &reason).await,
                }
            }
            let mut state = service.state();
            state.active.remove(&id);
            if let Some(n) = state.busy.get_mut(&spec.name) {
                *n = n.saturating_sub(1);
            }
        });
    }

    /// What a run needs before its instance starts: the data's digest
    /// recorded as the data-change baseline (else the same data would start
    /// the next run again) and the pipeline user's keys.
    async fn prepare(
        &self,
        spec: &PipelineSpec,
    ) -> Result<Option<crate::catalog::StepKeys>, String> {
        if spec.retrain_on_data_change
            && let Some(digest) = self.data_digest_or_warn(spec).await
        {
            // This run trains on the data as it is now.
            persist("the data-change baseline", || {
                self.catalog.pipeline_set_data_digest(&spec.name, &digest)
            })
            .await
            .map_err(|e| format!("cannot record the data-change baseline: {e}"))?;
        }
        persist("reading the pipeline's keys", || {
            self.catalog.pipeline_keys(&spec.name)
        })
        .await
        .map_err(|e| format!("cannot read the pipeline user's keys: {e}"))
    }

    /// Ends a run that never reached an instance.
    async fn end_unstarted(&self, id: i64, state: RunState, reason: &str) {
        let at = now();
        let recorded = persist("the end of a run", || {
            self.catalog.run_finished(id, state, Some(reason), &at)
        })
        .await;
        if recorded.is_ok() {
            tracing::info!(run = id, state = state.as_str(), reason, "run ended");
        }
    }

    /// Cancels a queued or running run.
    pub async fn cancel(&self, id: i64) -> Result<RunView, PipelineError> {
        if self.catalog.run(id).await?.is_none() {
            return Err(PipelineError::NotFound(format!("run {id} does not exist")));
        }
        let token = self.state().active.get(&id).cloned();
        match token {
            Some(token) => token.cancel(),
            None => {
                return Err(PipelineError::Conflict(format!(
                    "run {id} is not queued or running"
                )));
            }
        }
        self.catalog
            .run(id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("run {id} does not exist")))
    }

    /// Makes `version` of model `name` production: deploys it to the
    /// endpoint the model serves on, then records the promotion.
    pub async fn promote(&self, name: &str, version: i64) -> Result<ModelVersion, PipelineError> {
        let model = self.catalog.model(name, version).await?.ok_or_else(|| {
            PipelineError::NotFound(format!("model {name} has no version {version}"))
        })?;
        let (endpoint, options) = self.endpoint_of(name).await?.ok_or_else(|| {
            PipelineError::Conflict(format!(
                "model {name} has no endpoint: its pipeline needs a deploy step, or use `tread deploy {} --endpoint NAME`",
                model.uri
            ))
        })?;
        let promotion = crate::runner::promotion(name, version, &endpoint);
        self.runner
            .endpoints()
            .deploy_recording(&endpoint, &model.uri, options, Some(promotion))
            .await?;
        tracing::info!(model = %name, version, endpoint = %endpoint, "model promoted");
        self.catalog.model(name, version).await?.ok_or_else(|| {
            PipelineError::NotFound(format!("model {name} has no version {version}"))
        })
    }

    /// The endpoint model `name` is deployed to: the production version's,
    /// else the pipeline's deploy step's; with the step's leave to change
    /// the endpoint's contract when the step deploys to that endpoint.
    async fn endpoint_of(
        &self,
        name: &str,
    ) -> Result<Option<(String, DeployOptions)>, PipelineError> {
        let step = match self.catalog.pipeline(name).await? {
            Some(record) => {
                let spec: PipelineSpec = record.source.parse()?;
                spec.steps.iter().find_map(|s| match s {
                    Step::Deploy {
                        endpoint,
                        allow_contract_change,
                    } => Some((
                        endpoint.clone(),
                        DeployOptions {
                            allow_contract_change: *allow_contract_change,
                        },
                    )),
                    _ => None,
                })
            }
            None => None,
        };
        let production = self
            .catalog
            .model_production(name)
            .await?
            .and_then(|m| m.endpoint);
        Ok(match (production, step) {
            (Some(endpoint), Some((stepped, options))) if endpoint == stepped => {
                Some((endpoint, options))
            }
            (Some(endpoint), _) => Some((endpoint, DeployOptions::default())),
            (None, step) => step,
        })
    }

    /// Where what an endpoint serves came from: endpoint → model version →
    /// run → dataset digest.
    pub async fn lineage(&self, endpoint: &str) -> Result<Lineage, PipelineError> {
        let view = self.runner.endpoints().describe(endpoint).await?;
        // Where the model is not loaded (it failed to load, or this is a
        // read of the data dir with no daemon), the active revision names it.
        let uri = view.model.as_ref().map(|m| m.uri.clone()).or_else(|| {
            view.history
                .iter()
                .rev()
                .find(|r| r.active)
                .map(|r| r.model_uri.clone())
        });
        let model = match &uri {
            Some(uri) => self.catalog.model_by_uri(uri).await?,
            None => None,
        };
        let run = match &model {
            Some(m) => self.catalog.run(m.run_id).await?,
            None => None,
        };
        Ok(Lineage {
            endpoint: endpoint.to_string(),
            model_uri: uri,
            dataset_digest: model.as_ref().map(|m| m.dataset_digest.clone()),
            model,
            run,
        })
    }

    /// Cancels every queued and running run and waits (at most 30 s) until
    /// their instances are stopped: what `tread up` does before it exits.
    pub async fn stop_all(&self) {
        let tokens: Vec<CancellationToken> = self.state().active.values().cloned().collect();
        if tokens.is_empty() {
            return;
        }
        tracing::info!(runs = tokens.len(), "cancelling the runs in flight");
        for token in tokens {
            token.cancel();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.state().active.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// After a restart: runs that were in flight failed, and their instances
    /// are stopped; the time until now is billed, as a cloud would.
    pub async fn recover(&self) -> Result<(), PipelineError> {
        for (id, pipeline) in self.catalog.runs_in_flight(&self.daemon).await? {
            // A job still queued when tread stopped has no instance yet. Only
            // the pipeline's own backend is asked: a cluster that does not
            // answer would hold up the restart for nothing.
            let record = self.catalog.pipeline(&pipeline).await?;
            let spec = record.and_then(|r| r.source.parse::<PipelineSpec>().ok());
            let backends = self.runner.backends();
            match spec {
                Some(spec) => {
                    backends
                        .of(spec.instance.backend)
                        .reclaim_run(&pipeline, id)
                        .await
                }
                None => {
                    for backend in backends.all() {
                        backend.reclaim_run(&pipeline, id).await;
                    }
                }
            }
            self.catalog
                .run_finished(
                    id,
                    RunState::Failed,
                    Some("tread up stopped while the run was in flight"),
                    &now(),
                )
                .await?;
            tracing::warn!(
                run = id,
                "run was in flight when tread up stopped: marked failed"
            );
        }
        for instance in self.catalog.instances_running(&self.daemon).await? {
            match self.runner.backends().named(&instance.backend) {
                Some(backend) => backend.reclaim(&instance.workdir).await,
                None => tracing::warn!(
                    instance = instance.id,
                    backend = %instance.backend,
                    "instance of a backend this tread does not know: left alone"
                ),
            }
            self.stop_unattended(&instance).await?;
            tracing::warn!(
                instance = instance.id,
                run = instance.run_id,
                "instance left running by a stopped tread up: stopped"
            );
        }
        Ok(())
    }

    /// Fires schedules and data-change triggers until `shutdown`, while this
    /// daemon holds `lease` (one scheduler among daemons sharing a catalog;
    /// a fire is recorded with its run, so even two never fire one twice).
    pub async fn run_scheduler(self: Arc<Self>, lease: Lease, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SCHEDULER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut holding = LeaseHolding::default();
        let mut specs = SpecCache::default();
        let heartbeat = Lease::new(
            self.catalog.database().clone(),
            &format!("{DAEMON_LEASE_PREFIX}{}", self.daemon),
            &self.daemon,
            DAEMON_HEARTBEAT_TERM,
        );
        let (mut beaten, mut swept) = (None::<std::time::Instant>, std::time::Instant::now());
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            if beaten.is_none_or(|t| t.elapsed() >= SCHEDULER_LEASE_RENEWAL) {
                beaten = Some(std::time::Instant::now());
                if let Err(e) = heartbeat.hold().await {
                    tracing::debug!(error = %e, "the daemon's heartbeat was not renewed");
                }
            }
            if !holding.check(&lease).await {
                continue;
            }
            if swept.elapsed() >= ORPHAN_SWEEP {
                swept = std::time::Instant::now();
                self.fail_orphans().await;
            }
            let records = match self.catalog.pipelines().await {
                Ok(records) => records,
                Err(e) => {
                    tracing::debug!(error = %e, "the scheduler cannot read the pipelines");
                    continue;
                }
            };
            specs.keep_only(&records);
            for record in records.into_iter().filter(|r| !r.paused) {
                let Some(spec) = specs.parse(&record) else {
                    continue;
                };
                self.fire_schedule(&record, &spec).await;
                if spec.retrain_on_data_change {
                    self.watch_data(record, spec);
                }
            }
        }
        if holding.held()
            && let Err(e) = lease.release().await
        {
            tracing::warn!(error = %e, "the scheduler's lease was not released; another daemon takes it when its term ends");
        }
    }

    /// Fails the runs of daemons whose heartbeat stopped (the machine or
    /// the process died and did not come back) and records their instances
    /// as stopped, billed until now. Their processes cannot be reached from
    /// here: they died with their daemon, or that daemon stops them when it
    /// starts again.
    async fn fail_orphans(&self) {
        let db = self.catalog.database();
        let alive = match Lease::held_with_prefix(db, DAEMON_LEASE_PREFIX).await {
            Ok(alive) => alive,
            Err(e) => return tracing::debug!(error = %e, "cannot read the daemons' heartbeats"),
        };
        let in_flight = match self.catalog.runs_in_flight_elsewhere(&self.daemon).await {
            Ok(runs) => runs,
            Err(e) => return tracing::debug!(error = %e, "cannot read the runs in flight"),
        };
        for (id, daemon) in in_flight.into_iter().filter(|(_, d)| !alive.contains(d)) {
            let reason = format!("daemon {daemon} stopped while the run was in flight");
            if let Err(e) = self.end_orphan(id, &reason).await {
                tracing::error!(run = id, error = %e, "cannot fail the run of a daemon that died");
                continue;
            }
            tracing::warn!(run = id, daemon = %daemon, "the run's daemon stopped: run marked failed");
        }
    }

    /// Records an instance nobody stopped as stopped now, billed from its
    /// start, as a cloud bills it.
    async fn stop_unattended(&self, instance: &InstanceView) -> Result<(), PipelineError> {
        let billed = OffsetDateTime::parse(&instance.started, &Rfc3339)
            .map(|s| (OffsetDateTime::now_utc() - s).as_seconds_f64())
            .unwrap_or(0.0);
        self.catalog
            .instance_stopped(instance.id, &now(), billed, None)
            .await?;
        Ok(())
    }

    /// The instance first: a run seen failed has its instance stopped.
    async fn end_orphan(&self, id: i64, reason: &str) -> Result<(), PipelineError> {
        let instance = self.catalog.run(id).await?.and_then(|r| r.instance);
        if let Some(instance) = instance.filter(|i| i.state != "stopped") {
            let backend = self.runner.backends().named(&instance.backend);
            if let Some(cluster) = backend.filter(|b| b.cluster_wide()) {
                cluster.reclaim(&instance.workdir).await;
            }
            self.stop_unattended(&instance).await?;
        }
        self.catalog
            .run_finished(id, RunState::Failed, Some(reason), &now())
            .await?;
        Ok(())
    }

    async fn fire_schedule(self: &Arc<Self>, record: &PipelineRecord, spec: &PipelineSpec) {
        let Some(trigger) = due(record, spec, OffsetDateTime::now_utc()) else {
            return;
        };
        let at = now();
        let cause = Cause::Schedule {
            trigger,
            seen: record.last_fire.as_deref(),
            at: &at,
        };
        if let Err(e) = self.create_run(spec, cause).await {
            tracing::error!(pipeline = %record.name, error = %e, "the scheduled run could not start; the scheduler tries again");
        }
    }

    /// Looks at the pipeline's data prefix when it is due a look, in a task
    /// of its own, so a slow store never holds up the other schedules.
    fn watch_data(self: &Arc<Self>, record: PipelineRecord, spec: Arc<PipelineSpec>) {
        let poll_every = std::time::Duration::from_secs((spec.settle_seconds / 4).clamp(1, 10));
        if !self.poll_due(&record.name, poll_every) {
            return;
        }
        let service = self.clone();
        tokio::spawn(async move {
            let digest = service.data_digest(&spec).await;
            match digest {
                Ok(digest) if service.settled_change(&record, &spec, &digest) => {
                    let cause = Cause::DataChange {
                        seen: record.data_digest.as_deref(),
                        digest: &digest,
                    };
                    if let Err(e) = service.create_run(&spec, cause).await {
                        tracing::error!(pipeline = %record.name, error = %e, "the data-change run could not start; the next look tries again");
                    }
                }
                Ok(_) => {}
                Err(e) => service.listing_failed(&record.name, &e, poll_every),
            }
            if let Some(watch) = service.state().watches.get_mut(&record.name) {
                watch.listing = false;
            }
        });
    }

    /// Whether the pipeline's data prefix is due a look now and none is
    /// under way; if so, the look starts and the next is `poll_every` later.
    fn poll_due(&self, name: &str, poll_every: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let mut state = self.state();
        let watch = state.watches.entry(name.to_string()).or_default();
        if watch.listing || watch.next_poll.is_some_and(|t| t > now) {
            return false;
        }
        watch.next_poll = Some(now + poll_every);
        watch.listing = true;
        true
    }

    /// A failed listing (the bucket was deleted, the keys revoked) is said
    /// once, not at every look, and the looks back off, doubling up to
    /// [`LISTING_BACKOFF_MAX`]; the first listing that works again says so.
    fn listing_failed(&self, name: &str, error: &ObjectsError, poll_every: std::time::Duration) {
        let mut state = self.state();
        let watch = state.watches.entry(name.to_string()).or_default();
        watch.failures = watch.failures.saturating_add(1);
        let backoff = poll_every
            .saturating_mul(1 << watch.failures.min(16))
            .min(LISTING_BACKOFF_MAX);
        watch.next_poll = Some(std::time::Instant::now() + backoff);
        if watch.failures == 1 {
            tracing::warn!(
                pipeline = %name, error = %error,
                "cannot list the data prefix for the data-change trigger; retrying less and less often (up to every {} s), said again only once it lists",
                LISTING_BACKOFF_MAX.as_secs()
            );
        }
    }

    /// Records `digest` as seen; true when it differs from the last run's
    /// and has been quiet for the settle time while no run is going.
    fn settled_change(&self, record: &PipelineRecord, spec: &PipelineSpec, digest: &str) -> bool {
        let mut state = self.state();
        let busy = state.busy.get(&record.name).copied().unwrap_or(0) > 0;
        let watch = state.watches.entry(record.name.clone()).or_default();
        if watch.failures > 0 {
            tracing::info!(pipeline = %record.name, "the data prefix lists again");
            watch.failures = 0;
        }
        if watch.seen.as_deref() != Some(digest) {
            watch.seen = Some(digest.to_string());
            watch.since = Some(std::time::Instant::now());
        }
        // Older files may hold a shorter quiet time than the minimum now.
        let settle = spec.settle_seconds.max(MIN_SETTLE_SECONDS);
        let settled = watch.since.is_some_and(|t| t.elapsed().as_secs() >= settle);
        settled && !busy && record.data_digest.as_deref() != Some(digest)
    }

    /// A digest of every object's key, size and ETag under the data
    /// prefix, listed as the pipeline's S3 user when it has one.
    async fn data_digest(&self, spec: &PipelineSpec) -> Result<String, ObjectsError> {
        let keys = self.catalog.pipeline_keys(&spec.name).await.ok().flatten();
        let dir = match (&self.s3_endpoint, keys) {
            (Some(endpoint), Some(keys)) => {
                let access = S3Access {
                    endpoint: endpoint.clone(),
                    access_key_id: keys.access_key_id,
                    secret_access_key: keys.secret_access_key,
                };
                ObjectDir::open_as(&spec.data, &access).await?
            }
            _ => ObjectDir::open(&spec.data).await?,
        };
        // A slow store must not hold up the other pipelines' schedules.
        let objects = tokio::time::timeout(std::time::Duration::from_secs(30), dir.list())
            .await
            .map_err(|_| {
                ObjectsError::BadUri(format!("{}: listing took over 30 s", spec.data))
            })??;
        Ok(listing_digest(&objects))
    }

    /// The data digest for a baseline or a run; a failure is logged, and
    /// the trigger keeps its previous baseline.
    async fn data_digest_or_warn(&self, spec: &PipelineSpec) -> Option<String> {
        self.data_digest(spec)
            .await
            .inspect_err(|e| tracing::warn!(pipeline = %spec.name, error = %e, "cannot list the data prefix for the data-change trigger"))
            .ok()
    }
}

/// The name of the daemon whose data dir is `data_dir` on this host: the
/// same across its restarts (its runs are its own to recover), different
/// from every other daemon sharing the catalog (each has its data dir).
pub fn daemon_name(data_dir: &std::path::Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    format!("{host}:{}", dir.display())
}

/// Whether this daemon holds the scheduler's lease, asked again every
/// [`SCHEDULER_LEASE_RENEWAL`].
#[derive(Default)]
struct LeaseHolding {
    /// Until when the lease is surely this daemon's: a term from before the
    /// last successful renewal.
    until: Option<std::time::Instant>,
    asked: Option<std::time::Instant>,
    /// The last failure, said once.
    failing: bool,
}

impl LeaseHolding {
    fn held(&self) -> bool {
        self.until.is_some_and(|t| std::time::Instant::now() < t)
    }

    /// Renews or asks for the lease when due; whether it is held now.
    async fn check(&mut self, lease: &Lease) -> bool {
        let now = std::time::Instant::now();
        if self
            .asked
            .is_some_and(|t| now < t + SCHEDULER_LEASE_RENEWAL)
        {
            return self.held();
        }
        self.asked = Some(now);
        let was_held = self.held();
        match lease.hold().await {
            Ok(true) => {
                self.until = Some(now + lease.term());
                if !was_held {
                    tracing::info!("this daemon fires the schedules and data-change triggers");
                }
            }
            Ok(false) => {
                self.until = None;
                if was_held {
                    tracing::warn!("another daemon took the scheduler's lease");
                }
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "cannot renew the scheduler's lease; schedules fire again once the catalog answers");
                }
                self.failing = true;
                return self.held();
            }
        }
        self.failing = false;
        self.held()
    }
}

/// Pipeline files parsed once per change, not at every tick.
#[derive(Default)]
struct SpecCache {
    parsed: HashMap<String, (String, Option<Arc<PipelineSpec>>)>,
}

impl SpecCache {
    /// The spec of `record`'s file; `None` (said once) when it does not
    /// parse, as a file applied by a newer tread might not.
    fn parse(&mut self, record: &PipelineRecord) -> Option<Arc<PipelineSpec>> {
        if let Some((source, spec)) = self.parsed.get(&record.name)
            && *source == record.source
        {
            return spec.clone();
        }
        let spec = match record.source.parse::<PipelineSpec>() {
            Ok(spec) => Some(Arc::new(spec)),
            Err(e) => {
                tracing::error!(pipeline = %record.name, error = %e, "the stored pipeline file does not parse; it is not scheduled");
                None
            }
        };
        self.parsed
            .insert(record.name.clone(), (record.source.clone(), spec.clone()));
        spec
    }

    /// Forgets pipelines that were deleted.
    fn keep_only(&mut self, records: &[PipelineRecord]) {
        self.parsed
            .retain(|name, _| records.iter().any(|r| &r.name == name));
    }
}

/// The first schedule fire after the last one (or after the pipeline was
/// created); `rate()` counts from the creation time.
fn next_fire(record: &PipelineRecord, spec: &PipelineSpec) -> Option<OffsetDateTime> {
    let schedule = spec.schedule.as_ref()?;
    let created = OffsetDateTime::parse(&record.created, &Rfc3339).ok()?;
    let last = record
        .last_fire
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or(created);
    schedule.next_after(created, last)
}

/// Whether the schedule is due at `now`, and as what: `schedule` when on
/// time, `catch-up` when a fire was missed (tread was down). However many
/// fires were missed, recording this one as the last fire makes it one run.
fn due(record: &PipelineRecord, spec: &PipelineSpec, now: OffsetDateTime) -> Option<&'static str> {
    let fire = next_fire(record, spec)?;
    if fire > now {
        return None;
    }
    Some(if (now - fire).whole_seconds() > 60 {
        "catch-up"
    } else {
        "schedule"
    })
}

fn listing_digest(objects: &[tread_data::ObjectInfo]) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    for o in objects {
        hash.update(format!("{}\t{}\t{}\n", o.key, o.size, o.etag));
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StepKeys;
    use crate::instance::{Backends, LocalBackend};
    use crate::metrics::PipelineMetrics;
    use crate::runner::RunnerSettings;
    use std::sync::atomic::{AtomicBool, Ordering};
    use time::macros::datetime;
    use tread_catalog::testing::TestDb;
    use tread_serve::{BatchOptions, Endpoints};

    fn record(created: &str, last_fire: Option<&str>) -> PipelineRecord {
        PipelineRecord {
            name: "p".into(),
            source: String::new(),
            paused: false,
            created: created.into(),
            updated: created.into(),
            last_fire: last_fire.map(Into::into),
            data_digest: None,
            s3_user: None,
        }
    }

    fn spec(schedule: &str) -> PipelineSpec {
        format!("name = \"p\"\ndata = \"/d\"\nschedule = \"{schedule}\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n")
            .parse()
            .expect("valid pipeline")
    }

    #[test]
    fn a_rate_fires_on_time_from_creation() {
        let daily = spec("rate(1 day)");
        let fresh = record("2026-11-20T10:00:00Z", None);
        assert_eq!(
            due(&fresh, &daily, datetime!(2026-11-21 09:59:59 UTC)),
            None
        );
        assert_eq!(
            due(&fresh, &daily, datetime!(2026-11-21 10:00:01 UTC)),
            Some("schedule")
        );
        let fired = record("2026-11-20T10:00:00Z", Some("2026-11-21T10:00:01Z"));
        assert_eq!(
            due(&fired, &daily, datetime!(2026-11-21 10:00:02 UTC)),
            None
        );
        assert_eq!(
            due(&fired, &daily, datetime!(2026-11-22 10:00:00 UTC)),
            Some("schedule")
        );
    }

    #[test]
    fn fires_missed_while_down_run_once_as_a_catch_up() {
        let daily = spec("rate(1 day)");
        let down_three_days = record("2026-11-20T10:00:00Z", Some("2026-11-21T10:00:00Z"));
        let back = datetime!(2026-11-24 18:00:00 UTC);
        assert_eq!(due(&down_three_days, &daily, back), Some("catch-up"));
        let caught_up = record("2026-11-20T10:00:00Z", Some("2026-11-24T18:00:00Z"));
        assert_eq!(due(&caught_up, &daily, back), None, "one run, not three");
        assert_eq!(
            due(&caught_up, &daily, datetime!(2026-11-25 10:00:00 UTC)),
            Some("schedule")
        );
    }

    #[test]
    fn a_cron_schedule_is_due_at_its_time_and_an_at_schedule_only_once() {
        let nightly = spec("cron(0 3 * * ? *)");
        let r = record("2026-11-20T10:00:00Z", None);
        assert_eq!(due(&r, &nightly, datetime!(2026-11-21 02:59:00 UTC)), None);
        assert_eq!(
            due(&r, &nightly, datetime!(2026-11-21 03:00:30 UTC)),
            Some("schedule")
        );
        let once = spec("at(2026-11-22T00:00:00)");
        assert_eq!(
            due(&r, &once, datetime!(2026-11-22 00:00:10 UTC)),
            Some("schedule")
        );
        let fired = record("2026-11-20T10:00:00Z", Some("2026-11-22T00:00:10Z"));
        assert_eq!(due(&fired, &once, datetime!(2026-12-22 00:00:00 UTC)), None);
    }

    /// An S3 endpoint that takes connections and never answers: a store
    /// whose listing hangs (an NFS server gone away, a bucket of millions).
    struct SilentStore {
        url: String,
        reached: Arc<AtomicBool>,
    }

    impl SilentStore {
        fn start() -> std::io::Result<Self> {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let url = format!("http://{}", listener.local_addr()?);
            let reached = Arc::new(AtomicBool::new(false));
            let flag = reached.clone();
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for stream in listener.incoming().flatten() {
                    flag.store(true, Ordering::SeqCst);
                    held.push(stream);
                }
            });
            Ok(Self { url, reached })
        }
    }

    async fn service(
        dir: &std::path::Path,
        db: &tread_catalog::Database,
        s3: &str,
    ) -> anyhow::Result<Arc<Pipelines>> {
        let catalog = Arc::new(Catalog::new(db.clone()).await?);
        let endpoints =
            Endpoints::open(db.clone(), BatchOptions::default(), Arc::default()).await?;
        let runner = Runner::new(
            catalog.clone(),
            Arc::new(endpoints),
            Backends::new(LocalBackend::new(dir.join("instances"), dir.join("data"))?),
            RunnerSettings {
                program: std::path::PathBuf::from("/bin/false"),
                s3_endpoint: None,
                runs_dir: dir.join("runs"),
                metrics: Arc::new(PipelineMetrics::default()),
            },
        );
        Ok(Pipelines::new(
            catalog,
            Arc::new(runner),
            None,
            Some(s3.to_string()),
            "test",
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_data_listing_does_not_hold_up_another_schedule() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let test_db = TestDb::new(dir.path());
        let db = test_db.open().await;
        let store = SilentStore::start()?;
        let pipelines = service(dir.path(), &db, &store.url).await?;
        pipelines
            .apply("name = \"watching\"\ndata = \"s3://b/p\"\nretrain_on_data_change = true\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n")
            .await?;
        let keys = StepKeys {
            access_key_id: "AKWATCHING".into(),
            secret_access_key: "secret".into(),
        };
        pipelines
            .catalog
            .pipeline_set_user("watching", "u", &keys)
            .await?;
        let at = OffsetDateTime::now_utc() + time::Duration::seconds(3);
        let at = at.format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))?;
        pipelines
            .apply(&format!("name = \"timely\"\ndata = \"s3://b/q\"\nschedule = \"at({at})\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n"))
            .await?;

        let lease = Lease::new(
            db.clone(),
            "pipeline-scheduler",
            "test",
            SCHEDULER_LEASE_TERM,
        );
        let shutdown = CancellationToken::new();
        let scheduler = tokio::spawn(pipelines.clone().run_scheduler(lease, shutdown.clone()));
        // The stalled listing gives up after 30 s; the schedule may not wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(12);
        let fired = loop {
            let runs = pipelines.catalog.runs(Some("timely"), None, 10).await?;
            if !runs.is_empty() || std::time::Instant::now() > deadline {
                break runs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        shutdown.cancel();
        scheduler.await?;
        pipelines.stop_all().await;
        assert!(
            store.reached.load(Ordering::SeqCst),
            "the watching pipeline's listing went to the silent store"
        );
        assert_eq!(
            fired.len(),
            1,
            "the schedule fired while the listing hung: {fired:?}"
        );
        assert_eq!(fired[0].trigger, "schedule");
        Ok(())
    }
}
