//! One run: start an instance, run the steps in order, stop the instance
//! the moment the run ends, however it ends. `train`, `evaluate` and `run`
//! execute on the instance (the train part runs there as `tread train`);
//! `gate`, `register` and `deploy` are decisions the daemon makes itself, so
//! a gated-out or failed run never reaches the endpoint.

use crate::catalog::StartedInstance;
use crate::catalog::{Catalog, ModelVersion, NewModel, RunState, StepKeys};
use crate::instance::{Backends, Command, Instance};
use crate::log::{KeptLog, StepLog, step_log_path};
use crate::metrics::PipelineMetrics;
use crate::spec::{Gate, PipelineSpec, Step, TrainStep};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tread_catalog::persist;
use tread_serve::{DeployOptions, Endpoints};

/// How often a running step's log, when it grew, is copied into the
/// catalog for the other daemons' `--follow`: their view lags by this.
const LOG_SHARE_INTERVAL: Duration = Duration::from_secs(1);

/// What the runner needs from the daemon around it.
pub struct RunnerSettings {
    /// The `tread` binary, run on instances for `train` and `evaluate`.
    pub program: PathBuf,
    /// The S3 endpoint steps talk to (`AWS_ENDPOINT_URL`).
    pub s3_endpoint: Option<String>,
    /// Where step logs go.
    pub runs_dir: PathBuf,
    /// Where runs and instance time are counted.
    pub metrics: Arc<PipelineMetrics>,
}

/// Runs pipelines' runs.
pub struct Runner {
    catalog: Arc<Catalog>,
    endpoints: Arc<Endpoints>,
    backends: Backends,
    settings: RunnerSettings,
}

/// What `tread train --result` and `tread eval --result` write, and what a
/// `run` step writes to `$TREAD_RESULT` to hand over its own model: the
/// contract between the instance and the runner.
#[derive(Debug, Deserialize)]
pub struct StepResult {
    /// The model's URI (train).
    pub model: Option<String>,
    /// The model's artifact version (train).
    pub version: Option<String>,
    /// Digest of the dataset trained on (train).
    pub dataset_digest: Option<String>,
    /// The held-out evaluation: `accuracy`, `images`, per-class figures.
    /// Checked, not parsed: absent, it is refused with what to give.
    #[serde(default)]
    pub evaluation: serde_json::Value,
    /// How the model was made (network, recipe), kept in the registry for
    /// comparing versions; null when the step reports none.
    #[serde(default)]
    pub settings: serde_json::Value,
}

impl StepResult {
    fn accuracy(&self) -> f64 {
        self.evaluation["accuracy"].as_f64().unwrap_or(0.0)
    }
}

/// Why a step that needs a model found none.
const NO_MODEL: &str =
    "no model: no train step ran, and no run step before wrote a result to $TREAD_RESULT";

/// The dataset digest recorded for a handed-over model that gives none.
const UNREPORTED_DIGEST: &str = "unreported";

/// Why a run stopped before its end.
enum Stop {
    Failed(String),
    Gated(String),
}

type StepOutcome = Result<String, Stop>;

/// The trained model a run carries from step to step.
struct Candidate {
    uri: String,
    version: String,
    dataset_digest: String,
    evaluation: serde_json::Value,
    settings: serde_json::Value,
    accuracy: f64,
    registered: Option<i64>,
}

/// One run in progress.
struct RunContext<'a> {
    id: i64,
    spec: &'a PipelineSpec,
    instance: &'a dyn Instance,
    env: Vec<(String, String)>,
    secrets: Vec<String>,
    candidate: Option<Candidate>,
    production: Option<(ModelVersion, Option<f64>)>,
}

impl Runner {
    /// A runner deploying to `endpoints` on instances from `backends`.
    pub fn new(
        catalog: Arc<Catalog>,
        endpoints: Arc<Endpoints>,
        backends: Backends,
        settings: RunnerSettings,
    ) -> Self {
        Self {
            catalog,
            endpoints,
            backends,
            settings,
        }
    }

    /// The directory of step logs.
    pub fn runs_dir(&self) -> &std::path::Path {
        &self.settings.runs_dir
    }

    /// The endpoints deploys go to.
    pub fn endpoints(&self) -> &Arc<Endpoints> {
        &self.endpoints
    }

    /// The instance backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Runs run `id` of `spec` to its end and records how it ended. A
    /// catalog write that fails after [`persist`]'s retries fails the run,
    /// and an instance whose start cannot be recorded is stopped at once, so
    /// no compute runs unaccounted for.
    pub async fn execute(
        &self,
        id: i64,
        spec: &PipelineSpec,
        keys: Option<StepKeys>,
        cancel: CancellationToken,
    ) -> RunState {
        let catalog = &self.catalog;
        let at = now();
        if let Err(e) = persist("the start of a run", || catalog.run_started(id, &at)).await {
            let reason = format!("cannot record the run's start: {e}");
            return self
                .finish(id, &spec.name, RunState::Failed, Some(reason))
                .await;
        }
        let backend = self.backends.of(spec.instance.backend);
        // A cancel while a cluster queues the instance drops the start,
        // which withdraws the request.
        let start = tokio::select! {
            start = backend.start(&spec.name, id, &spec.instance) => start,
            () = cancel.cancelled() => {
                let reason = "cancelled before its instance started".to_string();
                return self.finish(id, &spec.name, RunState::Cancelled, Some(reason)).await;
            }
        };
        let instance = match start {
            Ok(instance) => instance,
            Err(e) => {
                let reason = format!("the instance did not start: {e}");
                return self
                    .finish(id, &spec.name, RunState::Failed, Some(reason))
                    .await;
            }
        };
        let started = Instant::now();
        self.settings.metrics.started();
        let (handle, at) = (instance.handle(), now());
        let record = StartedInstance {
            backend: backend.name(),
            kind: &spec.instance.kind,
            hourly_price: spec.instance.hourly_price,
            handle: &handle,
            queued_seconds: instance.queued_seconds(),
            at: &at,
        };
        let recorded = persist("a started instance", || {
            catalog.instance_started(id, &record)
        })
        .await;
        let instance_id = match recorded {
            Ok(instance_id) => instance_id,
            Err(e) => {
                let billed = instance
                    .stop()
                    .await
                    .unwrap_or_else(|| started.elapsed().as_secs_f64());
                self.settings.metrics.stopped(&spec.name, billed, None);
                let reason = format!(
                    "cannot record the instance, so it was stopped after {billed:.1} s: {e}"
                );
                return self
                    .finish(id, &spec.name, RunState::Failed, Some(reason))
                    .await;
            }
        };
        tracing::info!(run = id, pipeline = %spec.name, instance = instance_id, "instance started");
        let last_step_end = Mutex::new(None);
        let outcome = match self.context(id, spec, instance.as_ref(), keys).await {
            Ok(mut context) => {
                let limit =
                    Duration::from_secs(spec.instance.max_runtime_minutes.saturating_mul(60));
                // An interrupted run's last step ends when the interruption comes.
                tokio::select! {
                    result = tokio::time::timeout(limit, self.steps(&mut context, &last_step_end)) => match result {
                        Ok(result) => result,
                        Err(_) => interrupted(&last_step_end, RunState::Failed, format!("the run exceeded max_runtime_minutes = {}", spec.instance.max_runtime_minutes)),
                    },
                    () = cancel.cancelled() => interrupted(&last_step_end, RunState::Cancelled, "cancelled".to_string()),
                }
            }
            Err(reason) => Err((RunState::Failed, reason)),
        };
        let ended = *last_step_end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reported = instance.stop().await;
        let stopped = Instant::now();
        let idle = ended.map(|end: Instant| stopped.saturating_duration_since(end).as_secs_f64());
        let billed = reported.unwrap_or_else(|| stopped.duration_since(started).as_secs_f64());
        self.settings.metrics.stopped(&spec.name, billed, idle);
        tracing::info!(
            run = id,
            instance = instance_id,
            billed_seconds = billed,
            idle_seconds = idle,
            "instance stopped"
        );
        let at = now();
        let billing = persist("an instance's billed time", || {
            catalog.instance_stopped(instance_id, &at, billed, idle)
        })
        .await;
        match (outcome, billing) {
            (Ok(()), Ok(())) => self.finish(id, &spec.name, RunState::Succeeded, None).await,
            (Ok(()), Err(e)) => {
                let reason =
                    format!("cannot record the instance's {billed:.1} billed seconds: {e}");
                self.finish(id, &spec.name, RunState::Failed, Some(reason))
                    .await
            }
            (Err((state, reason)), _) => self.finish(id, &spec.name, state, Some(reason)).await,
        }
    }

    async fn finish(
        &self,
        id: i64,
        pipeline: &str,
        state: RunState,
        reason: Option<String>,
    ) -> RunState {
        self.settings.metrics.ended(pipeline, state.as_str());
        // Unrecorded (logged by persist), the run stays `running` in the
        // catalog until this daemon's next start marks it failed.
        let at = now();
        let _logged = persist("the end of a run", || {
            self.catalog.run_finished(id, state, reason.as_deref(), &at)
        })
        .await;
        tracing::info!(
            run = id,
            state = state.as_str(),
            reason = reason.as_deref().unwrap_or(""),
            "run ended"
        );
        state
    }

    async fn context<'a>(
        &self,
        id: i64,
        spec: &'a PipelineSpec,
        instance: &'a dyn Instance,
        keys: Option<StepKeys>,
    ) -> Result<RunContext<'a>, String> {
        let mut env = vec![
            ("TREAD_RUN_ID".to_string(), id.to_string()),
            ("TREAD_PIPELINE".to_string(), spec.name.clone()),
            ("TREAD_DATA".to_string(), spec.data.clone()),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
            // Nothing of the host's AWS setup: the step is the pipeline's
            // user. Empty files, not missing ones, which the AWS SDK warns of.
            ("AWS_CONFIG_FILE".to_string(), "/dev/null".to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                "/dev/null".to_string(),
            ),
        ];
        if let Some(endpoint) = &self.settings.s3_endpoint {
            env.push(("AWS_ENDPOINT_URL".to_string(), endpoint.clone()));
        }
        let mut secrets = Vec::new();
        if let Some(keys) = keys {
            env.push(("AWS_ACCESS_KEY_ID".to_string(), keys.access_key_id.clone()));
            env.push((
                "AWS_SECRET_ACCESS_KEY".to_string(),
                keys.secret_access_key.clone(),
            ));
            secrets = vec![keys.secret_access_key, keys.access_key_id];
        }
        // Unknown, the production model would let any candidate pass a
        // beat-production gate.
        let production = persist("reading the production model", || {
            self.catalog.model_production(&spec.name)
        })
        .await
        .map_err(|e| format!("cannot read the production model: {e}"))?
        .map(|p| (p, None));
        Ok(RunContext {
            id,
            spec,
            instance,
            env,
            secrets,
            candidate: None,
            production,
        })
    }

    async fn steps(
        &self,
        run: &mut RunContext<'_>,
        last_step_end: &Mutex<Option<Instant>>,
    ) -> Result<(), (RunState, String)> {
        if let Some(script) = &run.spec.instance.on_start {
            self.on_start(run, script).await?;
        }
        for (n, step) in run.spec.steps.iter().enumerate() {
            let index = n as i64 + 1;
            let at = now();
            persist("the start of a step", || {
                self.catalog.step_started(run.id, index, &at)
            })
            .await
            .map_err(|e| {
                (
                    RunState::Failed,
                    format!("cannot record the start of step {index}: {e}"),
                )
            })?;
            let path = step_log_path(&self.settings.runs_dir, run.id, index, step.kind());
            let log = StepLog::create(&path, run.secrets.clone());
            let run_id = run.id;
            let outcome = match &log {
                Ok(log) => {
                    self.sharing_log(run_id, index, &path, self.step(run, index, step, log))
                        .await
                }
                Err(e) => Err(Stop::Failed(format!("cannot write the step log: {e}"))),
            };
            *last_step_end
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
            let (state, message) = match &outcome {
                Ok(message) => ("succeeded", message.as_str()),
                Err(Stop::Failed(m)) => ("failed", m.as_str()),
                Err(Stop::Gated(m)) => ("gated", m.as_str()),
            };
            if let Ok(log) = &log {
                log.line(&format!("[tread] step {state}: {message}"));
            }
            self.keep_log(run.id, index, &path).await?;
            let at = now();
            persist("the end of a step", || {
                self.catalog
                    .step_finished(run.id, index, state, message, &at)
            })
            .await
            .map_err(|e| {
                (
                    RunState::Failed,
                    format!("cannot record the end of step {index}: {e}"),
                )
            })?;
            match outcome {
                Ok(_) => {}
                Err(Stop::Failed(m)) => {
                    return Err((
                        RunState::Failed,
                        format!("step {index} ({}): {m}", step.kind()),
                    ));
                }
                Err(Stop::Gated(m)) => return Err((RunState::Gated, m)),
            }
        }
        Ok(())
    }

    /// Runs `work`, a step writing its log at `path`, while that log is
    /// shared with the other daemons.
    async fn sharing_log<T>(
        &self,
        run: i64,
        index: i64,
        path: &std::path::Path,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::select! {
            outcome = work => outcome,
            never = self.share_log(run, index, path) => match never {},
        }
    }

    /// Copies a running step's log into the catalog each time it grew, at
    /// most every [`LOG_SHARE_INTERVAL`], so that `--follow` on another
    /// daemon sees it; never ends (the step's end stops it). A copy that
    /// fails is left for the next: the step's end keeps the whole log.
    async fn share_log(
        &self,
        run: i64,
        index: i64,
        path: &std::path::Path,
    ) -> std::convert::Infallible {
        let mut shared = 0;
        loop {
            tokio::time::sleep(LOG_SHARE_INTERVAL).await;
            let length = std::fs::metadata(path).map_or(0, |m| m.len());
            if length == shared {
                continue;
            }
            let copied = match KeptLog::read(path, true) {
                Ok(kept) => self
                    .catalog
                    .step_log_put(run, index, &kept)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match copied {
                Ok(()) => shared = length,
                Err(e) => {
                    tracing::debug!(run, step = index, error = %e, "a running step's log was not shared; the next look tries again")
                }
            }
        }
    }

    /// Copies a finished step's log into the catalog, before its end is
    /// recorded: a step seen finished has its whole log there for every
    /// daemon.
    async fn keep_log(
        &self,
        run: i64,
        index: i64,
        path: &std::path::Path,
    ) -> Result<(), (RunState, String)> {
        let kept = KeptLog::read(path, false).unwrap_or_else(|e| KeptLog {
            skipped: 0,
            text: format!("[tread] the step's log could not be read: {e}\n"),
        });
        persist("a step's log", || {
            self.catalog.step_log_put(run, index, &kept)
        })
        .await
        .map_err(|e| {
            (
                RunState::Failed,
                format!("cannot keep the log of step {index}: {e}"),
            )
        })
    }

    /// The instance's on-start script, logged as step 0.
    async fn on_start(&self, run: &RunContext<'_>, script: &str) -> Result<(), (RunState, String)> {
        let path = step_log_path(&self.settings.runs_dir, run.id, 0, "on-start");
        let log = StepLog::create(&path, run.secrets.clone())
            .map_err(|e| (RunState::Failed, format!("cannot write the step log: {e}")))?;
        let command = Command {
            program: "sh".into(),
            args: vec!["-c".into(), script.to_string()],
            env: run.env.clone(),
        };
        let outcome = self
            .sharing_log(run.id, 0, &path, exec(run.instance, &command, &log))
            .await;
        self.keep_log(run.id, 0, &path).await?;
        outcome.map_err(|(Stop::Failed(m) | Stop::Gated(m))| {
            (
                RunState::Failed,
                format!("the instance's on_start script: {m}"),
            )
        })
    }

    async fn step(
        &self,
        run: &mut RunContext<'_>,
        index: i64,
        step: &Step,
        log: &StepLog,
    ) -> StepOutcome {
        match step {
            Step::Train(train) => self.train(run, index, train, log).await,
            Step::Evaluate {} => self.evaluate(run, log).await,
            Step::Gate(gate) => self.gate(run, gate, log).await,
            Step::Register {} => self
                .register(run)
                .await
                .map(|v| format!("registered {} version {v}", run.spec.name)),
            Step::Deploy {
                endpoint,
                allow_contract_change,
            } => {
                let options = DeployOptions {
                    allow_contract_change: *allow_contract_change,
                };
                self.deploy(run, endpoint, options, log).await
            }
            Step::Run { command } => {
                let mut env = run.env.clone();
                if let Some(candidate) = &run.candidate {
                    env.push(("TREAD_MODEL_URI".to_string(), candidate.uri.clone()));
                }
                // One name per step: a later run step must not find an
                // earlier one's result and hand its model over again.
                let handed = format!("tread-result-{index}.json");
                env.push(("TREAD_RESULT".to_string(), handed.clone()));
                let command = Command {
                    program: "sh".into(),
                    args: vec!["-c".into(), command.clone()],
                    env,
                };
                exec(run.instance, &command, log).await?;
                match read_result(run.instance, &handed).await? {
                    Some(result) => self.hand_over(run, result).await,
                    None => Ok("exited 0".to_string()),
                }
            }
        }
    }

    async fn train(
        &self,
        run: &mut RunContext<'_>,
        index: i64,
        train: &TrainStep,
        log: &StepLog,
    ) -> StepOutcome {
        // The runner names the version, so the step's metrics can be
        // followed from the first epoch on, wherever the step runs.
        let version = tread_train::clock::new_version_id();
        let metrics = format!(
            "{}/{version}/{}",
            train.out.trim_end_matches('/'),
            tread_train::job::METRICS_FILE
        );
        persist("where a step's metrics grow", || {
            self.catalog.step_set_metrics(run.id, index, &metrics)
        })
        .await
        .map_err(|e| Stop::Failed(format!("cannot record where the metrics grow: {e}")))?;
        let mut args = vec![
            "train".to_string(),
            run.spec.data.clone(),
            "--out".into(),
            train.out.clone(),
            "--version".into(),
            version,
        ];
        args.extend(train.flags());
        args.extend(["--result".to_string(), "train-result.json".to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = self.tread(run, &args, "train-result.json", log).await?;
        if result.version.is_none() || result.dataset_digest.is_none() {
            return Err(Stop::Failed(
                "tread train wrote no model in its result".into(),
            ));
        }
        let (uri, accuracy) = self.adopt(run, result).await?;
        Ok(format!("trained {uri}: held-out accuracy {accuracy:.4}"))
    }

    /// A `run` step's own model, written as the train step writes its
    /// result: the steps after it evaluate, gate, register and deploy it.
    async fn hand_over(&self, run: &mut RunContext<'_>, result: StepResult) -> StepOutcome {
        let (uri, accuracy) = self.adopt(run, result).await?;
        Ok(format!(
            "exited 0, handing over {uri}: held-out accuracy {accuracy:.4}"
        ))
    }

    /// Makes `result`'s model the run's candidate; returns its URI and
    /// held-out accuracy. A model without a version is the run's; one
    /// without a dataset digest is recorded as unreported.
    async fn adopt(
        &self,
        run: &mut RunContext<'_>,
        result: StepResult,
    ) -> Result<(String, f64), Stop> {
        let Some(uri) = result.model.clone() else {
            return Err(Stop::Failed(
                "the result names no model: give \"model\" (a model.tar.gz, or a model.onnx with its .json) and \"evaluation\"".into(),
            ));
        };
        if !result.evaluation["accuracy"]
            .as_f64()
            .is_some_and(|a| (0.0..=1.0).contains(&a))
        {
            return Err(Stop::Failed(format!(
                "the result for {uri} gives no held-out \"evaluation\": {{\"accuracy\": 0-1, …}}"
            )));
        }
        let version = result
            .version
            .clone()
            .unwrap_or_else(|| format!("run-{}", run.id));
        let digest = result
            .dataset_digest
            .clone()
            .unwrap_or_else(|| UNREPORTED_DIGEST.to_string());
        persist("the run's dataset digest", || {
            self.catalog.run_set_model(run.id, &digest, None)
        })
        .await
        .map_err(|e| Stop::Failed(format!("cannot record the dataset digest: {e}")))?;
        let accuracy = result.accuracy();
        run.candidate = Some(Candidate {
            uri: uri.clone(),
            version,
            dataset_digest: digest,
            evaluation: result.evaluation,
            settings: result.settings,
            accuracy,
            registered: None,
        });
        Ok((uri, accuracy))
    }

    async fn evaluate(&self, run: &mut RunContext<'_>, log: &StepLog) -> StepOutcome {
        let uri = candidate(run)?.uri.clone();
        let data = run.spec.data.clone();
        let result = self
            .tread(
                run,
                &["eval", &uri, &data, "--result", "eval-result.json"],
                "eval-result.json",
                log,
            )
            .await?;
        let accuracy = result.accuracy();
        if let Some(c) = run.candidate.as_mut() {
            c.accuracy = accuracy;
            c.evaluation = result.evaluation;
        }
        let mut message = format!("held-out accuracy {accuracy:.4}");
        if let Some(production) = self.production_accuracy(run, log).await? {
            message.push_str(&format!("; production on the same images {production:.4}"));
        }
        Ok(message)
    }

    /// The production model's accuracy on the candidate's held-out split,
    /// measured once per run.
    async fn production_accuracy(
        &self,
        run: &mut RunContext<'_>,
        log: &StepLog,
    ) -> Result<Option<f64>, Stop> {
        let Some((production, measured)) = &run.production else {
            return Ok(None);
        };
        if let Some(accuracy) = measured {
            return Ok(Some(*accuracy));
        }
        let (prod_uri, cand_uri, data) = (
            production.uri.clone(),
            candidate(run)?.uri.clone(),
            run.spec.data.clone(),
        );
        log.line(&format!(
            "[tread] scoring production version {} on the same images",
            production.version
        ));
        // A model trained elsewhere has no held-out split: it was scored
        // on every image, and so is production.
        let same_images: &[&str] = if tread_serve::model::is_onnx(&cand_uri) {
            &["--all"]
        } else {
            &["--split-of", &cand_uri]
        };
        let args = [
            &["eval", &prod_uri, &data][..],
            same_images,
            &["--result", "production-result.json"],
        ]
        .concat();
        let result = self
            .tread(run, &args, "production-result.json", log)
            .await?;
        let accuracy = result.accuracy();
        if let Some((_, measured)) = run.production.as_mut() {
            *measured = Some(accuracy);
        }
        Ok(Some(accuracy))
    }

    async fn gate(&self, run: &mut RunContext<'_>, gate: &Gate, log: &StepLog) -> StepOutcome {
        let accuracy = candidate(run)?.accuracy;
        if let Some(min) = gate.min_accuracy
            && accuracy < min
        {
            return Err(Stop::Gated(format!(
                "held-out accuracy {accuracy:.4} is below min_accuracy {min}"
            )));
        }
        let mut message = format!("accuracy {accuracy:.4}");
        if gate.beat_production {
            match self.production_accuracy(run, log).await? {
                Some(production) if accuracy <= production => {
                    return Err(Stop::Gated(format!(
                        "held-out accuracy {accuracy:.4} does not beat the production model's {production:.4} on the same images"
                    )));
                }
                Some(production) => {
                    message.push_str(&format!(" beats production's {production:.4}"))
                }
                None => message.push_str(", no production model yet"),
            }
        }
        Ok(format!("passed: {message}"))
    }

    async fn register(&self, run: &mut RunContext<'_>) -> Result<i64, Stop> {
        let (id, name) = (run.id, run.spec.name.clone());
        let c = run
            .candidate
            .as_mut()
            .ok_or_else(|| Stop::Failed(NO_MODEL.into()))?;
        if let Some(version) = c.registered {
            return Ok(version);
        }
        let version = self
            .catalog
            .model_register(
                &NewModel {
                    name: &name,
                    run_id: id,
                    uri: &c.uri,
                    artifact_version: &c.version,
                    accuracy: c.accuracy,
                    metrics: &c.evaluation,
                    settings: &c.settings,
                    dataset_digest: &c.dataset_digest,
                },
                &name,
                &now(),
            )
            .await
            .map_err(|e| Stop::Failed(format!("the registry: {e}")))?;
        c.registered = Some(version);
        persist("the run's model version", || {
            self.catalog
                .run_set_model(id, &c.dataset_digest, Some(version))
        })
        .await
        .map_err(|e| Stop::Failed(format!("cannot record the registered version: {e}")))?;
        Ok(version)
    }

    async fn deploy(
        &self,
        run: &mut RunContext<'_>,
        endpoint: &str,
        options: DeployOptions,
        log: &StepLog,
    ) -> StepOutcome {
        let version = self.register(run).await?;
        let uri = candidate(run)?.uri.clone();
        log.line(&format!("[tread] deploying {uri} to endpoint {endpoint}"));
        self.endpoints
            .deploy_recording(
                endpoint,
                &uri,
                options,
                Some(promotion(&run.spec.name, version, endpoint)),
            )
            .await
            .map_err(|e| Stop::Failed(format!("deploy to {endpoint}: {e}")))?;
        Ok(format!(
            "endpoint {endpoint} serves {} version {version} (production)",
            run.spec.name
        ))
    }

    /// Runs `tread args…` on the instance and reads the result file it wrote.
    async fn tread(
        &self,
        run: &RunContext<'_>,
        args: &[&str],
        result: &str,
        log: &StepLog,
    ) -> Result<StepResult, Stop> {
        let program = run.spec.instance.tread.as_ref();
        let command = Command {
            program: program.unwrap_or(&self.settings.program).clone(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: run.env.clone(),
        };
        exec(run.instance, &command, log).await?;
        read_result(run.instance, result)
            .await?
            .ok_or_else(|| Stop::Failed(format!("tread {} wrote no {result}", args[0])))
    }
}

/// The result file a step wrote in its working directory, if it wrote one.
async fn read_result(instance: &dyn Instance, name: &str) -> Result<Option<StepResult>, Stop> {
    let bytes = instance
        .read_file(name)
        .await
        .map_err(|e| Stop::Failed(e.to_string()))?;
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(|e| Stop::Failed(format!("{name}: {e}"))))
        .transpose()
}

/// The registry's side of a deploy: `version` of `name` is production on
/// `endpoint`, recorded in the deploy's transaction.
pub fn promotion(name: &str, version: i64, endpoint: &str) -> tread_serve::AlsoRecord {
    let (name, endpoint) = (name.to_string(), endpoint.to_string());
    Box::new(move |tx| crate::catalog::promote_in(tx, &name, version, &endpoint))
}

/// The outcome of a run cut short now: its last step ends at this moment.
fn interrupted(
    last_step_end: &Mutex<Option<Instant>>,
    state: RunState,
    reason: String,
) -> Result<(), (RunState, String)> {
    *last_step_end
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    Err((state, reason))
}

fn candidate<'r>(run: &'r RunContext<'_>) -> Result<&'r Candidate, Stop> {
    run.candidate
        .as_ref()
        .ok_or_else(|| Stop::Failed(NO_MODEL.into()))
}

async fn exec(instance: &dyn Instance, command: &Command, log: &StepLog) -> Result<(), Stop> {
    log.line(&format!(
        "$ {} {}",
        command.program.display(),
        command.args.join(" ")
    ));
    match instance.exec(command, log).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err(Stop::Failed(log.last_error().unwrap_or_else(|| {
                "the command exited with an error".into()
            })))
        }
        Err(e) => Err(Stop::Failed(e.to_string())),
    }
}

/// Now as RFC 3339.
pub fn now() -> String {
    tread_train::clock::now_rfc3339()
}
