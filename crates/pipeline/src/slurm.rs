//! Instances as Slurm jobs: a run is one job whose allocation is held by a
//! batch script that only waits, each step is a job step (`srun --jobid
//! --overlap`) in a working directory on the node, and the job is cancelled
//! the moment the run ends. The controller is reached through Slurm's own
//! commands (`sbatch`, `squeue`, `scontrol`, `scancel`, `srun` on the PATH,
//! `SLURM_CONF` as the daemon's environment gives it): they speak every
//! Slurm version's protocol and its authentication, which no crate does.
//! Nothing is shared with the node but what the step's environment carries:
//! steps reach data and models over S3.

use crate::instance::{Command, Instance, InstanceBackend, InstanceError, copy_lines, env_of};
use crate::log::StepLog;
use crate::spec::InstanceSpec;
use async_trait::async_trait;
use std::time::{Duration, Instant};

/// How often a queued job's state is asked for.
const POLL: Duration = Duration::from_millis(250);
/// Longest wait for one Slurm command; the controller's own timeout is 10 s.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a cancelled job to leave the node.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// The batch script: makes the job's working directory on the node, holds
/// the allocation until cancelled, and removes the directory on the way out.
const HOLD_SCRIPT: &str = r#"#!/bin/sh
dir="${TMPDIR:-/tmp}/tread-job-$SLURM_JOB_ID"
mkdir -p "$dir" || exit 1
trap 'rm -rf "$dir"; exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"#;

/// Prints file `$1` of the job's directory, or exits [`ABSENT`] when there
/// is none (srun passes the exit status on).
const READ_IF_THERE: &str = r#"test -e "$1" || exit 3; exec cat -- "$1""#;
/// [`READ_IF_THERE`]'s status for a file that is not there.
const ABSENT: i32 = 3;

/// Runs a step's program in the job's working directory on the node.
const STEP_WRAPPER: &str = r#"cd "${TMPDIR:-/tmp}/tread-job-$SLURM_JOB_ID" && exec "$@""#;

/// Starts instances as jobs of the Slurm cluster `SLURM_CONF` names.
pub struct SlurmBackend;

/// A job as tread names it: `tread-<pipeline>-<run>`, the run id in its
/// comment too, so a restarted daemon finds it either way.
pub fn job_name(pipeline: &str, run: i64) -> String {
    format!("tread-{pipeline}-{run}")
}

#[async_trait]
impl InstanceBackend for SlurmBackend {
    fn name(&self) -> &'static str {
        "slurm"
    }

    /// Asks the controller whether the job could run (`sbatch --test-only`):
    /// an unknown partition, gres or account is refused now, with Slurm's
    /// message.
    async fn check(&self, spec: &InstanceSpec) -> Result<(), InstanceError> {
        let mut args = vec!["--test-only".to_string()];
        args.extend(request_args(spec));
        args.push("--wrap=true".into());
        let out = slurm("sbatch", &args).await?;
        if out.status.success() {
            return Ok(());
        }
        Err(refused("the cluster refuses the instance", &out))
    }

    async fn start(
        &self,
        pipeline: &str,
        run: i64,
        spec: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, InstanceError> {
        let name = job_name(pipeline, run);
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={name}"),
            format!("--comment=tread-run={run}"),
            "--output=/dev/null".into(),
            "--chdir=/tmp".into(),
        ];
        args.extend(request_args(spec));
        let submitted = Instant::now();
        let out = slurm_with_input("sbatch", &args, HOLD_SCRIPT).await?;
        if !out.status.success() {
            return Err(refused("sbatch refused the run's job", &out));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        // `--parsable` prints `id` or `id;cluster`.
        let id = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(lost(format!("sbatch answered {stdout:?}, not a job id")));
        }
        let job = SlurmJob {
            id,
            queued_seconds: 0.0,
        };
        // Until the job runs, dropping this (a cancelled run) cancels it.
        let mut guard = CancelOnDrop(Some(job.id.clone()));
        let job = job.wait_running(submitted).await?;
        guard.0 = None;
        Ok(Box::new(job))
    }

    fn cluster_wide(&self) -> bool {
        true
    }

    async fn reclaim(&self, handle: &str) {
        if let Some(id) = handle.strip_prefix(HANDLE_PREFIX) {
            cancel(id).await;
        }
    }

    async fn reclaim_run(&self, pipeline: &str, run: i64) {
        let name = format!("--name={}", job_name(pipeline, run));
        match slurm("scancel", &[name]).await {
            // No Slurm on this machine: no job of any run to cancel.
            Err(InstanceError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(run, "cancelling the run's Slurm job: {e}"),
            Ok(_) => {}
        }
    }
}

/// How an instance's handle reads in the catalog: `slurm:<job id>`.
const HANDLE_PREFIX: &str = "slurm:";

/// The `sbatch` options a pipeline's `[instance]` asks for.
fn request_args(spec: &InstanceSpec) -> Vec<String> {
    let option =
        |flag: &str, value: &Option<String>| value.as_ref().map(|v| format!("--{flag}={v}"));
    [
        option("partition", &spec.partition),
        option("gres", &spec.gres),
        spec.cpus.map(|n| format!("--cpus-per-task={n}")),
        option("mem", &spec.memory),
        option("time", &spec.time_limit),
        option("account", &spec.account),
        option("qos", &spec.qos),
    ]
    .into_iter()
    .flatten()
    .collect()
}

struct SlurmJob {
    id: String,
    queued_seconds: f64,
}

impl SlurmJob {
    /// Waits while the job is queued; fails with Slurm's reason when it
    /// ends before it runs.
    async fn wait_running(mut self, submitted: Instant) -> Result<Self, InstanceError> {
        loop {
            let job = self.describe().await?;
            match job.state.as_str() {
                "RUNNING" => {
                    self.queued_seconds = submitted.elapsed().as_secs_f64();
                    return Ok(self);
                }
                "PENDING" | "CONFIGURING" | "REQUEUED" | "RESIZING" => {}
                _ => return Err(lost(format!("Slurm job {} {}", self.id, job.why()))),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn describe(&self) -> Result<JobInfo, InstanceError> {
        let out = slurm(
            "scontrol",
            &["show".into(), "job".into(), "-o".into(), self.id.clone()],
        )
        .await?;
        if !out.status.success() {
            return Err(refused(&format!("scontrol show job {}", self.id), &out));
        }
        Ok(JobInfo::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    /// [`SlurmJob::describe`] once the job is past COMPLETING, the state it
    /// shows while its processes are killed, to read how it ended (TIMEOUT,
    /// NODE_FAIL) rather than that it is ending.
    async fn describe_settled(&self) -> Result<JobInfo, InstanceError> {
        let deadline = Instant::now() + CANCEL_WAIT;
        loop {
            let job = self.describe().await?;
            if job.state != "COMPLETING" || Instant::now() >= deadline {
                return Ok(job);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `srun` into the job's allocation, the program and its arguments
    /// run by [`STEP_WRAPPER`] in the job's directory.
    fn step(
        &self,
        program: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
    ) -> tokio::process::Command {
        let mut srun = tokio::process::Command::new("srun");
        srun.args([
            format!("--jobid={}", self.id),
            "--overlap".into(),
            "--ntasks=1".into(),
            "--export=ALL".into(),
            "--quiet".into(),
            "sh".into(),
            "-c".into(),
            STEP_WRAPPER.into(),
            "tread-step".into(),
        ])
        .arg(program)
        .args(args)
        // The step's environment reaches the node through srun's own
        // (`--export=ALL`), never its command line, where keys would show.
        .env_clear()
        .envs(slurm_env())
        .envs(env.iter().cloned())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
        srun
    }
}

#[async_trait]
impl Instance for SlurmJob {
    fn handle(&self) -> String {
        format!("{HANDLE_PREFIX}{}", self.id)
    }

    fn queued_seconds(&self) -> f64 {
        self.queued_seconds
    }

    async fn exec(&self, command: &Command, log: &StepLog) -> Result<bool, InstanceError> {
        let mut child = self
            .step(&command.program, &command.args, &command.env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| InstanceError::Io {
                context: "starting srun (is Slurm's client installed on this machine?)".into(),
                source,
            })?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        tokio::join!(
            copy_lines(stdout, log, |_| false),
            copy_lines(stderr, log, srun_exit_notice)
        );
        let status = child.wait().await.map_err(|source| InstanceError::Io {
            context: "waiting for srun".into(),
            source,
        })?;
        if status.success() {
            return Ok(true);
        }
        // A step that failed because its job ended (time limit, a lost
        // node) fails the run with Slurm's reason, not the step's last line.
        let job = self.describe_settled().await?;
        if job.state != "RUNNING" {
            return Err(lost(format!("Slurm job {} {}", self.id, job.why())));
        }
        Ok(false)
    }

    async fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, InstanceError> {
        if name.contains('/') || name.starts_with('.') {
            return Err(lost(format!(
                "{name:?} is not a file name in the job's directory"
            )));
        }
        let script = [
            "-c".to_string(),
            READ_IF_THERE.into(),
            "read".into(),
            name.into(),
        ];
        let out = self
            .step("sh".as_ref(), &script, &[])
            .output()
            .await
            .map_err(|source| InstanceError::Io {
                context: format!("reading {name} on the node"),
                source,
            })?;
        match out.status.code() {
            Some(0) => Ok(Some(out.stdout)),
            Some(ABSENT) => Ok(None),
            _ => Err(refused(
                &format!("reading {name} in Slurm job {}", self.id),
                &out,
            )),
        }
    }

    async fn stop(&self) -> Option<f64> {
        cancel(&self.id).await;
        let job = self.describe_settled().await.ok()?;
        job.billed_seconds()
    }
}

/// srun's own `srun: error: NODE: task 0: Exited with exit code N`: it says
/// no more than the exit status, and as the step log's last line with
/// "error" in it, it would stand in for the step's own message.
fn srun_exit_notice(line: &str) -> bool {
    line.starts_with("srun: error: ") && line.contains(": Exited with exit code ")
}

/// Cancels job `id` and waits until it has left the node.
async fn cancel(id: &str) {
    if let Err(e) = slurm("scancel", &[id.to_string()]).await {
        tracing::warn!(job = id, "scancel: {e}");
        return;
    }
    let deadline = Instant::now() + CANCEL_WAIT;
    while Instant::now() < deadline {
        let out = slurm(
            "squeue",
            &[
                "-h".into(),
                "-j".into(),
                id.to_string(),
                "-o".into(),
                "%T".into(),
            ],
        )
        .await;
        match out {
            Ok(out) if String::from_utf8_lossy(&out.stdout).trim().is_empty() => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(job = id, "squeue: {e}");
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(
        job = id,
        "the cancelled Slurm job is still listed after {CANCEL_WAIT:?}"
    );
}

/// Cancels a submitted job when the start that submitted it is dropped.
struct CancelOnDrop(Option<String>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let (Some(id), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { cancel(&id).await });
        }
    }
}

/// What `scontrol show job -o` says of a job, the fields tread reads.
#[derive(Debug, Default)]
struct JobInfo {
    state: String,
    reason: String,
    start: Option<time::PrimitiveDateTime>,
    end: Option<time::PrimitiveDateTime>,
}

impl JobInfo {
    /// Parses `Key=Value Key=Value …` (one line per job with `-o`).
    fn parse(text: &str) -> Self {
        let mut job = JobInfo::default();
        for (key, value) in text.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            match key {
                "JobState" => job.state = value.to_string(),
                "Reason" => job.reason = value.to_string(),
                "StartTime" => job.start = slurm_time(value),
                "EndTime" => job.end = slurm_time(value),
                _ => {}
            }
        }
        job
    }

    /// The job's state, with Slurm's reason when it gives one.
    fn why(&self) -> String {
        match self.reason.as_str() {
            "" | "None" => format!("ended {}", self.state),
            reason => format!("ended {} ({reason})", self.state),
        }
    }

    /// From the allocation's start to its end, as the controller recorded.
    fn billed_seconds(&self) -> Option<f64> {
        let seconds = (self.end? - self.start?).as_seconds_f64();
        (seconds >= 0.0).then_some(seconds)
    }
}

/// Slurm prints times as `2026-12-05T21:30:00` in the controller's zone;
/// only differences are taken, so the zone does not matter.
fn slurm_time(text: &str) -> Option<time::PrimitiveDateTime> {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(text, format).ok()
}

/// The daemon's variables Slurm's commands need, and nothing else.
fn slurm_env() -> impl Iterator<Item = (String, String)> {
    env_of(&["PATH", "HOME", "LANG", "SLURM_CONF", "TMPDIR", "TREAD_LOG"])
}

async fn slurm(program: &str, args: &[String]) -> Result<std::process::Output, InstanceError> {
    slurm_with_input(program, args, "").await
}

/// Runs one of Slurm's commands to its end, `input` on its stdin.
async fn slurm_with_input(
    program: &str,
    args: &[String],
    input: &str,
) -> Result<std::process::Output, InstanceError> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(slurm_env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| InstanceError::Io {
            context: format!("starting {program} (is Slurm's client installed on this machine?)"),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|source| InstanceError::Io {
                context: format!("writing to {program}"),
                source,
            })?;
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.map_err(|source| InstanceError::Io {
            context: format!("running {program}"),
            source,
        }),
        Err(_) => Err(lost(format!(
            "{program} did not answer within {COMMAND_TIMEOUT:?}: is the Slurm controller reachable?"
        ))),
    }
}

/// A refusal with Slurm's own message.
fn refused(what: &str, out: &std::process::Output) -> InstanceError {
    let message = String::from_utf8_lossy(&out.stderr);
    let message = message.trim();
    lost(format!(
        "{what}: {}",
        if message.is_empty() {
            "no message"
        } else {
            message
        }
    ))
}

fn lost(message: String) -> InstanceError {
    InstanceError::Cluster(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_reason_and_allocation_times() {
        let line = "JobId=7 JobName=tread-p-3 JobState=TIMEOUT Reason=TimeLimit Dependency=(null) \
                    SubmitTime=2026-12-05T21:00:00 StartTime=2026-12-05T21:00:02 EndTime=2026-12-05T21:01:03";
        let job = JobInfo::parse(line);
        assert_eq!(job.state, "TIMEOUT");
        assert_eq!(job.why(), "ended TIMEOUT (TimeLimit)");
        assert_eq!(job.billed_seconds(), Some(61.0));
        assert_eq!(
            JobInfo::parse("JobState=RUNNING EndTime=Unknown").billed_seconds(),
            None
        );
    }

    #[test]
    fn asks_for_what_the_file_gives_and_nothing_else() {
        let spec = InstanceSpec {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            cpus: Some(8),
            time_limit: Some("90".into()),
            ..InstanceSpec::default()
        };
        assert_eq!(
            request_args(&spec),
            [
                "--partition=gpu",
                "--gres=gpu:1",
                "--cpus-per-task=8",
                "--time=90"
            ]
        );
        assert!(request_args(&InstanceSpec::default()).is_empty());
    }

    #[test]
    fn sruns_exit_notice_is_left_out_and_nothing_else() {
        assert!(srun_exit_notice(
            "srun: error: vm: task 0: Exited with exit code 3\n"
        ));
        assert!(!srun_exit_notice("error: my own failure"));
        assert!(!srun_exit_notice(
            "srun: error: Unable to confirm allocation for job 1"
        ));
    }
}
