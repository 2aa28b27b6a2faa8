//! The pipeline file (`pipeline.toml`): the recipe's EventBridge rule,
//! notebook and lifecycle script in one declarative file, checked as a
//! whole when applied so that a mistake is reported before anything runs.
//!
//! ```toml
//! name = "tyre-quality"
//! data = "s3://fsxn-ontap/dataset/tyre"
//! schedule = "rate(1 day)"
//! retrain_on_data_change = true   # debounced: settle_seconds of quiet first
//!
//! [instance]
//! type = "local-2cpu"
//! hourly_price = 0.23             # in your currency; cost = billed seconds × price
//! max_runtime_minutes = 60
//!
//! [[steps]]
//! kind = "train"
//! model = "resnet-small"
//! epochs = 4
//! out = "s3://fsxn-ontap/models/tyre-quality/"
//!
//! [[steps]]
//! kind = "gate"
//! min_accuracy = 0.6
//! beat_production = true
//!
//! [[steps]]
//! kind = "deploy"
//! endpoint = "tyre-quality-classifier"
//! ```

use serde::Deserialize;
use std::str::FromStr;
use thiserror::Error;
use time::OffsetDateTime;
use tread_nn::Architecture;
use tread_schedule::Schedule;
use tread_serve::endpoints::valid_name;
use tread_train::RecipeOverrides;

/// The longest `max_runtime_minutes`: a week.
const MAX_RUNTIME_MINUTES: u64 = 7 * 24 * 60;
/// The longest pipeline name, so that `pipeline-<name>` is a valid S3 user.
const MAX_NAME: usize = 64 - "pipeline-".len();
/// The shortest `settle_seconds` a pipeline may be applied with. Clients
/// upload a dataset one object at a time, seconds apart; below this a
/// data-change run starts on the first objects of an upload and trains on
/// half of it.
pub const MIN_SETTLE_SECONDS: u64 = 5;

/// Why a pipeline file was refused.
#[derive(Debug, Error)]
pub enum SpecError {
    /// Not valid TOML, or a field of the wrong type or name.
    #[error("the pipeline file does not parse: {0}")]
    Toml(#[from] toml::de::Error),
    /// The schedule expression is not valid EventBridge grammar.
    #[error("schedule: {0}")]
    Schedule(#[from] tread_schedule::ScheduleError),
    /// A field's value is not allowed; the message says which and why.
    #[error("{0}")]
    Invalid(String),
}

/// A whole pipeline file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's name: letters, digits, `-` and `_`.
    pub name: String,
    /// The dataset: `s3://bucket/prefix` or a directory.
    pub data: String,
    /// When to run (`rate(1 day)`, `cron(0 3 * * ? *)`, `at(…)`); no
    /// schedule means manual and data-change runs only.
    #[serde(default, deserialize_with = "schedule")]
    pub schedule: Option<Schedule>,
    /// Run when objects under the data prefix change.
    #[serde(default)]
    pub retrain_on_data_change: bool,
    /// Quiet time after the last change before a data-change run starts,
    /// at least [`MIN_SETTLE_SECONDS`].
    #[serde(default = "default_settle")]
    pub settle_seconds: u64,
    /// The compute a run holds.
    #[serde(default)]
    pub instance: InstanceSpec,
    /// A store policy (`FullAccess`, `ReadOnlyAccess` or a custom one) for
    /// the pipeline's S3 user instead of the default: read on `data`, read
    /// and write on each train step's `out`.
    #[serde(default)]
    pub policy: Option<String>,
    /// What a run does, in order.
    pub steps: Vec<Step>,
}

fn default_settle() -> u64 {
    60
}

fn schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
    let text = String::deserialize(d)?;
    Schedule::from_str(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The instance a run starts, and what it costs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// A label for the kind of machine (`local-2cpu`, `ml.g4dn.xlarge`).
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    /// Price per hour; cost is billed seconds × price / 3600.
    #[serde(default)]
    pub hourly_price: f64,
    /// A run still going after this long is stopped and marked failed.
    #[serde(default = "default_max_runtime")]
    pub max_runtime_minutes: u64,
    /// A shell command run on the instance before the first step (the
    /// recipe's lifecycle configuration).
    #[serde(default)]
    pub on_start: Option<String>,
    /// The Unix user steps run as when tread runs as root (`nobody` when
    /// not given); never root. Local backend only.
    #[serde(default)]
    pub user: Option<String>,
    /// Where runs execute: `local` (this machine) or `slurm` (a cluster's
    /// node, one job per run).
    #[serde(default)]
    pub backend: BackendKind,
    /// Slurm partition (`--partition`); the cluster's default when absent.
    #[serde(default)]
    pub partition: Option<String>,
    /// Generic resources (`--gres`), e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// CPUs for the run (`--cpus-per-task`).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Memory for the run in Slurm's form (`--mem`), e.g. `16G`.
    #[serde(default)]
    pub memory: Option<String>,
    /// Slurm's own time limit (`--time`) in its form, e.g. `90` (minutes)
    /// or `2:00:00`; the job ends when it passes, failing the run.
    #[serde(default)]
    pub time_limit: Option<String>,
    /// Slurm account charged (`--account`).
    #[serde(default)]
    pub account: Option<String>,
    /// Slurm quality of service (`--qos`).
    #[serde(default)]
    pub qos: Option<String>,
    /// The tread binary on the nodes; the daemon's own path when absent.
    #[serde(default)]
    pub tread: Option<std::path::PathBuf>,
}

/// Where a pipeline's runs execute.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Process groups on the daemon's machine.
    #[default]
    Local,
    /// A job on a Slurm cluster.
    Slurm,
}

impl BackendKind {
    /// The name the catalog records and the file uses.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Slurm => "slurm",
        }
    }
}

impl InstanceSpec {
    /// The Slurm settings given, by their names in the file.
    fn slurm_settings(&self) -> impl Iterator<Item = &'static str> + '_ {
        [
            ("partition", self.partition.is_some()),
            ("gres", self.gres.is_some()),
            ("cpus", self.cpus.is_some()),
            ("memory", self.memory.is_some()),
            ("time_limit", self.time_limit.is_some()),
            ("account", self.account.is_some()),
            ("qos", self.qos.is_some()),
            ("tread", self.tread.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
    }

    /// Settings that do not fit the backend: Slurm's on a local instance,
    /// a step user on Slurm (the cluster decides who runs the job).
    fn check_backend(&self) -> Result<(), String> {
        match self.backend {
            BackendKind::Local => match self.slurm_settings().next() {
                Some(name) => Err(format!(
                    "instance.{name} is a Slurm setting: add backend = \"slurm\" or remove it"
                )),
                None => Ok(()),
            },
            BackendKind::Slurm if self.user.is_some() => Err(
                "instance.user applies to the local backend; on Slurm a job runs as the user who submits it"
                    .into(),
            ),
            BackendKind::Slurm if self.cpus == Some(0) => {
                Err("instance.cpus must be at least 1".into())
            }
            BackendKind::Slurm => Ok(()),
        }
    }
}

fn default_type() -> String {
    "local".to_string()
}

fn default_max_runtime() -> u64 {
    120
}

impl Default for InstanceSpec {
    fn default() -> Self {
        Self {
            kind: default_type(),
            hourly_price: 0.0,
            max_runtime_minutes: default_max_runtime(),
            on_start: None,
            user: None,
            backend: BackendKind::Local,
            partition: None,
            gres: None,
            cpus: None,
            memory: None,
            time_limit: None,
            account: None,
            qos: None,
            tread: None,
        }
    }
}

/// One step of a run.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// Train a model from the pipeline's data (the train part).
    Train(TrainStep),
    /// Score the trained model on its held-out split.
    Evaluate {},
    /// Stop the run unless the model is good enough.
    Gate(Gate),
    /// Record the model in the registry.
    Register {},
    /// Deploy the model to an endpoint (registering and promoting it).
    Deploy {
        /// The endpoint to create or update.
        endpoint: String,
        /// Let the model change the classes or input the endpoint's clients
        /// rely on; without it such a deploy fails the run and the endpoint
        /// keeps its model.
        #[serde(default)]
        allow_contract_change: bool,
    },
    /// Any shell command, with the S3 endpoint and keys in its environment.
    Run {
        /// The command, run by `sh -c`.
        command: String,
    },
}

impl Step {
    /// The step's kind as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Train(_) => "train",
            Step::Evaluate {} => "evaluate",
            Step::Gate(_) => "gate",
            Step::Register {} => "register",
            Step::Deploy { .. } => "deploy",
            Step::Run { .. } => "run",
        }
    }
}

/// The options of `tread train` a train step takes. Training settings
/// left out take the network's defaults, as on the command line.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainStep {
    /// The network.
    #[serde(default = "default_model")]
    pub model: Architecture,
    /// Most passes over the training part.
    pub epochs: Option<usize>,
    /// Images per step.
    pub batch_size: Option<usize>,
    /// Counts (`1500,356`) or fractions (`0.8,0.2`).
    #[serde(default = "default_split")]
    pub split: String,
    /// Seed of the split, shuffles, augmentation and initial weights.
    #[serde(default)]
    pub seed: u64,
    /// Peak learning rate.
    pub lr: Option<f32>,
    /// AdamW's weight decay; 0 is plain Adam.
    pub weight_decay: Option<f32>,
    /// Epochs of warm-up before the cosine decay.
    pub warmup_epochs: Option<f32>,
    /// Keep the learning rate fixed.
    #[serde(default)]
    pub constant_lr: bool,
    /// Label smoothing of the loss.
    pub label_smoothing: Option<f32>,
    /// Random crops, flips and light changes on training images.
    pub augment: Option<bool>,
    /// The smallest share of an image's area a random crop keeps.
    pub crop_scale: Option<f32>,
    /// Share of the training split held apart to pick the best epoch.
    pub val: Option<f64>,
    /// Epochs without a lower validation loss before stopping; 0 runs
    /// every epoch.
    pub patience: Option<usize>,
    /// Bit-identical weights for the same seed, data and machine.
    #[serde(default)]
    pub deterministic: bool,
    /// Input side in pixels.
    #[serde(default = "default_size")]
    pub size: u32,
    /// Where models go: `<out>/<version>/model.tar.gz`.
    pub out: String,
}

impl TrainStep {
    /// The recipe settings given, as `tread train` takes them.
    pub fn overrides(&self) -> RecipeOverrides {
        RecipeOverrides {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
            warmup_epochs: self.warmup_epochs,
            constant_lr: self.constant_lr,
            label_smoothing: self.label_smoothing,
            augment: self.augment,
            crop_scale: self.crop_scale,
            validation: self.val,
            patience: self.patience,
        }
    }

    /// The `tread train` flags of the settings given (not the data, out or
    /// result).
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec![
            "--model".to_string(),
            self.model.to_string(),
            "--split".to_string(),
            self.split.clone(),
            "--seed".to_string(),
            self.seed.to_string(),
            "--size".to_string(),
            self.size.to_string(),
        ];
        flags.extend(self.overrides().flags());
        if self.deterministic {
            flags.push("--deterministic".to_string());
        }
        flags
    }
}

fn default_model() -> Architecture {
    Architecture::ResnetSmall
}
fn default_split() -> String {
    "0.8,0.2".to_string()
}
fn default_size() -> u32 {
    224
}

/// What a model must reach to pass.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Held-out accuracy at least this (0–1).
    pub min_accuracy: Option<f64>,
    /// Held-out accuracy above the production model's on the same split.
    #[serde(default)]
    pub beat_production: bool,
}

impl FromStr for PipelineSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<Self, SpecError> {
        let spec: PipelineSpec = toml::from_str(text)?;
        spec.check()?;
        Ok(spec)
    }
}

impl PipelineSpec {
    /// Checks what only holds at the moment a file is applied, at `now`:
    /// the debounce is long enough and an `at()` schedule is still ahead.
    ///
    /// Kept apart from parsing so that a file applied under older rules (or
    /// whose `at()` has since fired) still reads back from the catalog.
    pub fn check_applicable(&self, now: OffsetDateTime) -> Result<(), SpecError> {
        if self.settle_seconds < MIN_SETTLE_SECONDS {
            return Err(SpecError::Invalid(format!(
                "settle_seconds = {} is below the minimum of {MIN_SETTLE_SECONDS}: uploads arrive one object at a time, \
                 and a shorter quiet time would start a run on the first objects of an upload",
                self.settle_seconds
            )));
        }
        if let Some(schedule @ Schedule::At(_)) = &self.schedule
            && schedule.next_after(now, now).is_none()
        {
            return Err(SpecError::Invalid(format!(
                "schedule {schedule} is in the past (now {}): it would never fire; give a later UTC time, or remove the schedule and run it by hand",
                now.replace_nanosecond(0)
                    .unwrap_or(now)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Checks what the types alone cannot: names, ranges, and that every
    /// step has the model it needs from an earlier train step.
    fn check(&self) -> Result<(), SpecError> {
        let invalid = |m: String| Err(SpecError::Invalid(m));
        if !valid_name(&self.name) {
            return invalid(format!(
                "name {:?}: use 1-63 letters, digits, '-' or '_', starting with a letter or digit",
                self.name
            ));
        }
        if self.data.trim().is_empty() {
            return invalid("data: give the dataset, s3://bucket/prefix or a directory".into());
        }
        if self.steps.is_empty() {
            return invalid("steps: a pipeline needs at least one step".into());
        }
        if !(self.instance.hourly_price.is_finite() && self.instance.hourly_price >= 0.0) {
            return invalid("instance.hourly_price must be a number ≥ 0".into());
        }
        if !(1..=MAX_RUNTIME_MINUTES).contains(&self.instance.max_runtime_minutes) {
            return invalid(format!(
                "instance.max_runtime_minutes must be between 1 and {MAX_RUNTIME_MINUTES} (a week)"
            ));
        }
        self.instance.check_backend().map_err(SpecError::Invalid)?;
        if self.name.len() > MAX_NAME {
            return invalid(format!(
                "name {:?} is longer than {MAX_NAME} characters: its S3 user pipeline-<name> must fit in 64",
                self.name
            ));
        }
        if let Some(n) = self
            .steps
            .iter()
            .position(|s| matches!(s, Step::Deploy { .. }))
            && n + 1 < self.steps.len()
        {
            return invalid(format!(
                "step {} (deploy) must be the last step: a step after it could fail a run whose model already serves",
                n + 1
            ));
        }
        let mut trained = false;
        for (n, step) in self.steps.iter().enumerate() {
            let at = format!("step {} ({})", n + 1, step.kind());
            match step {
                Step::Train(train) => {
                    check_train(train).map_err(|m| SpecError::Invalid(format!("{at}: {m}")))?;
                    trained = true;
                }
                Step::Run { command } if command.trim().is_empty() => {
                    return invalid(format!("{at}: command is empty"));
                }
                // It may hand over a model of its own ($TREAD_RESULT).
                Step::Run { .. } => trained = true,
                _ if !trained => {
                    return invalid(format!(
                        "{at}: needs a model, so a train step (or a run step that hands one over) must come first"
                    ));
                }
                Step::Gate(gate) => {
                    check_gate(gate).map_err(|m| SpecError::Invalid(format!("{at}: {m}")))?
                }
                Step::Deploy { endpoint, .. } if !valid_name(endpoint) => {
                    return invalid(format!(
                        "{at}: endpoint {endpoint:?} is not a valid endpoint name"
                    ));
                }
                Step::Evaluate {} | Step::Register {} | Step::Deploy { .. } => {}
            }
        }
        Ok(())
    }
}

fn check_train(train: &TrainStep) -> Result<(), String> {
    // The same checks as `tread train`'s, with its flags named as keys.
    train.overrides().apply(train.model).check().map_err(|e| {
        e.to_string()
            .replace("--batch-size", "batch_size")
            .replace("--weight-decay", "weight_decay")
            .replace("--warmup-epochs", "warmup_epochs")
            .replace("--label-smoothing", "label_smoothing")
            .replace("--crop-scale", "crop_scale")
            .replace("--", "")
    })?;
    if train.size < train.model.min_input_size() as u32 {
        return Err(format!(
            "size must be at least {} for {}",
            train.model.min_input_size(),
            train.model
        ));
    }
    if train.out.trim().is_empty() {
        return Err("out: give where models go, s3://bucket/prefix or a directory".into());
    }
    Ok(())
}

fn check_gate(gate: &Gate) -> Result<(), String> {
    match gate.min_accuracy {
        Some(a) if !(0.0..=1.0).contains(&a) => {
            Err(format!("min_accuracy {a} is not between 0 and 1"))
        }
        None if !gate.beat_production => {
            Err("give min_accuracy, beat_production = true, or both".into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = r#"
name = "tyre-quality"
data = "s3://fsxn-ontap/dataset/tyre"
schedule = "rate(1 day)"
retrain_on_data_change = true

[instance]
type = "local-2cpu"
hourly_price = 0.23
max_runtime_minutes = 30

[[steps]]
kind = "train"
model = "seed-cnn"
epochs = 3
split = "1500,356"
out = "s3://fsxn-ontap/models/tyre-quality/"

[[steps]]
kind = "evaluate"

[[steps]]
kind = "gate"
min_accuracy = 0.55
beat_production = true

[[steps]]
kind = "run"
command = "echo done"

[[steps]]
kind = "deploy"
endpoint = "tyre-quality-classifier"
"#;

    #[test]
    fn a_full_pipeline_file_reads_with_defaults_filled_in() -> Result<(), SpecError> {
        let spec: PipelineSpec = DEMO.parse()?;
        assert_eq!(spec.name, "tyre-quality");
        assert_eq!(
            spec.schedule.as_ref().map(ToString::to_string).as_deref(),
            Some("rate(1 day)")
        );
        assert_eq!(spec.settle_seconds, 60);
        assert_eq!(spec.instance.kind, "local-2cpu");
        let kinds: Vec<&str> = spec.steps.iter().map(Step::kind).collect();
        assert_eq!(kinds, ["train", "evaluate", "gate", "run", "deploy"]);
        let Step::Train(train) = &spec.steps[0] else {
            panic!("first step is train");
        };
        assert_eq!(
            (train.model, train.epochs, train.batch_size, train.size),
            (Architecture::SeedCnn, Some(3), None, 224)
        );
        assert_eq!(
            spec.steps[4],
            Step::Deploy {
                endpoint: "tyre-quality-classifier".into(),
                allow_contract_change: false
            }
        );
        Ok(())
    }

    #[test]
    fn a_slurm_instance_reads_its_request() -> Result<(), SpecError> {
        let text = "name = \"p\"\ndata = \"s3://b/d\"\n[instance]\nbackend = \"slurm\"\n\
                    partition = \"gpu\"\ngres = \"gpu:1\"\ncpus = 8\nmemory = \"32G\"\n\
                    time_limit = \"2:00:00\"\ntread = \"/opt/tread/bin/tread\"\n\
                    type = \"a100-node\"\nhourly_price = 3.2\n\
                    [[steps]]\nkind = \"run\"\ncommand = \"nvidia-smi\"\n";
        let spec: PipelineSpec = text.parse()?;
        let instance = &spec.instance;
        assert_eq!(instance.backend, BackendKind::Slurm);
        assert_eq!(
            (
                instance.partition.as_deref(),
                instance.gres.as_deref(),
                instance.cpus
            ),
            (Some("gpu"), Some("gpu:1"), Some(8))
        );
        assert_eq!(
            instance.tread.as_deref(),
            Some(std::path::Path::new("/opt/tread/bin/tread"))
        );
        let local: PipelineSpec =
            "name = \"p\"\ndata = \"x\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n"
                .parse()?;
        assert_eq!(
            local.instance.backend,
            BackendKind::Local,
            "local stays the default"
        );
        Ok(())
    }

    #[test]
    fn r17_a_deploy_step_may_allow_a_contract_change() -> Result<(), SpecError> {
        let text = DEMO.replace(
            "endpoint = \"tyre-quality-classifier\"",
            "endpoint = \"tyre-quality-classifier\"\nallow_contract_change = true",
        );
        let spec: PipelineSpec = text.parse()?;
        assert!(matches!(
            spec.steps.last(),
            Some(Step::Deploy {
                allow_contract_change: true,
                ..
            })
        ));
        Ok(())
    }

    #[test]
    fn a_minimal_file_needs_only_name_data_and_steps() -> Result<(), SpecError> {
        let spec: PipelineSpec =
            "name = \"p\"\ndata = \"/srv/d\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n"
                .parse()?;
        assert!(spec.schedule.is_none());
        assert_eq!(spec.instance, InstanceSpec::default());
        Ok(())
    }

    #[test]
    fn mistakes_are_refused_with_a_message_naming_them() {
        let head = "name = \"p\"\ndata = \"s3://b/d\"\n";
        let train = "[[steps]]\nkind = \"train\"\nout = \"s3://b/m/\"\n";
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{head}schedule = \"rate(1 days)\"\n{train}"),
                "schedule",
            ),
            (
                format!("{head}schedule = \"cron(0 3 * * * *)\"\n{train}"),
                "schedule",
            ),
            (head.to_string(), "steps"),
            (format!("{head}steps = []\n"), "at least one step"),
            (
                "name = \"no good\"\ndata = \"x\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n"
                    .to_string(),
                "name",
            ),
            (
                format!("{head}[[steps]]\nkind = \"deploy\"\nendpoint = \"e\"\n"),
                "needs a model, so a train step",
            ),
            (
                format!("{head}{train}[[steps]]\nkind = \"gate\"\n"),
                "min_accuracy",
            ),
            (
                format!("{head}{train}[[steps]]\nkind = \"gate\"\nmin_accuracy = 1.5\n"),
                "between 0 and 1",
            ),
            (
                format!("{head}{train}[[steps]]\nkind = \"deploy\"\nendpoint = \"a/b\"\n"),
                "endpoint",
            ),
            (
                format!(
                    "{head}[[steps]]\nkind = \"train\"\nout = \"s3://b/m/\"\nmodel = \"vgg\"\n"
                ),
                "vgg",
            ),
            (
                format!("{head}[[steps]]\nkind = \"train\"\nout = \"s3://b/m/\"\nepochs = 0\n"),
                "epochs",
            ),
            (
                format!("{head}[[steps]]\nkind = \"train\"\nout = \"s3://b/m/\"\nepoch = 3\n"),
                "epoch",
            ),
            (
                format!("{head}[[steps]]\nkind = \"teleport\"\n"),
                "teleport",
            ),
            (
                format!("{head}[[steps]]\nkind = \"run\"\ncommand = \" \"\n"),
                "command is empty",
            ),
            (
                format!("{head}[instance]\nhourly_price = -1.0\n{train}"),
                "hourly_price",
            ),
            (format!("{head}colour = \"red\"\n{train}"), "colour"),
            (
                format!(
                    "{head}{train}[[steps]]\nkind = \"deploy\"\nendpoint = \"e\"\n[[steps]]\nkind = \"run\"\ncommand = \"true\"\n"
                ),
                "must be the last step",
            ),
            (
                format!("{head}[instance]\nmax_runtime_minutes = 99999999999\n{train}"),
                "max_runtime_minutes",
            ),
            (
                format!("name = \"{}\"\ndata = \"x\"\n{train}", "n".repeat(60)),
                "S3 user",
            ),
            (
                format!("{head}[instance]\npartition = \"gpu\"\n{train}"),
                "instance.partition is a Slurm setting: add backend = \"slurm\"",
            ),
            (
                format!("{head}[instance]\nbackend = \"slurm\"\nuser = \"bob\"\n{train}"),
                "instance.user applies to the local backend",
            ),
            (
                format!("{head}[instance]\nbackend = \"kubernetes\"\n{train}"),
                "kubernetes",
            ),
        ];
        for (text, fragment) in cases {
            match text.parse::<PipelineSpec>() {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => assert!(
                    e.to_string().contains(fragment),
                    "{e} lacks {fragment:?} for:\n{text}"
                ),
            }
        }
    }

    const RUN_STEP: &str = "[[steps]]\nkind = \"run\"\ncommand = \"true\"\n";

    /// Issue 17: `settle_seconds = 0` started a data-change run on the
    /// first object of an upload.
    #[test]
    fn r17_settle_seconds_below_minimum_refused() -> Result<(), SpecError> {
        let now = OffsetDateTime::now_utc();
        let with = |settle: u64| -> Result<PipelineSpec, SpecError> {
            format!("name = \"p\"\ndata = \"s3://b/d\"\nretrain_on_data_change = true\nsettle_seconds = {settle}\n{RUN_STEP}")
                .parse()
        };
        for settle in [0, MIN_SETTLE_SECONDS - 1] {
            let refused = with(settle)?.check_applicable(now);
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("minimum of 5")
                        && e.to_string().contains("first objects of an upload")),
                "{settle}: {refused:?}"
            );
        }
        with(MIN_SETTLE_SECONDS)?.check_applicable(now)?;
        Ok(())
    }

    /// Issue 17: an `at()` time in the past was applied and never fired.
    #[test]
    fn r17_at_schedule_in_the_past_refused() -> Result<(), SpecError> {
        let now = time::macros::datetime!(2026-12-04 12:00:00.123456789 UTC);
        let at = |when: &str| -> Result<PipelineSpec, SpecError> {
            format!("name = \"p\"\ndata = \"/d\"\nschedule = \"at({when})\"\n{RUN_STEP}").parse()
        };
        let refused = at("2026-12-04T11:59:59")?.check_applicable(now);
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("never fire")
                    && e.to_string().contains("now 2026-12-04T12:00:00Z")),
            "{refused:?}"
        );
        at("2026-12-04T12:00:01")?.check_applicable(now)?;
        // Parsing alone still reads it: the catalog holds at() schedules
        // that have fired.
        assert!(at("2020-01-01T00:00:00").is_ok());
        Ok(())
    }
}
