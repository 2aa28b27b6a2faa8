//! Pipeline runs on a Slurm cluster (issue 13), through `tread up`: a full
//! run ending with a served model, a cancel mid-step, a daemon killed
//! mid-run and restarted, a step past its time limit, requests the cluster
//! refuses, and two runs competing for one node.
//!
//! They need a cluster: `.ci/slurm-tests` starts a one-node one from the
//! distribution's packages (`.ci/slurm-cluster`), exports its `SLURM_CONF`
//! and runs them one at a time (they share its two CPUs), so a plain
//! `cargo test` leaves them out.

use crate::common::World;
use crate::pipeline::{Up, run_id};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const NEEDS: &str = "needs a Slurm cluster: run .ci/slurm-tests";

/// What Slurm's client `program` prints with `args`; fails the test with
/// its error when it fails.
fn slurm_says(program: &str, args: &[&str]) -> String {
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "SLURM_CONF is not set: {NEEDS}"
    );
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster's jobs named `name`: `(id, state, reason)`.
fn jobs(name: &str) -> Vec<(String, String, String)> {
    slurm_says("squeue", &["-h", "--name", name, "-o", "%i|%T|%r"])
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|').map(str::to_string);
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect()
}

/// Waits until `check` holds of the jobs named `name`, at most `within`;
/// on failure, names every state the jobs went through.
fn wait_jobs(
    name: &str,
    within: Duration,
    what: &str,
    check: impl Fn(&[(String, String, String)]) -> bool,
) {
    let deadline = Instant::now() + within;
    let mut seen: Vec<Vec<(String, String, String)>> = Vec::new();
    loop {
        let now = jobs(name);
        if check(&now) {
            return;
        }
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {what}; its jobs went through {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CPUs of the cluster's node, as Slurm counts them (`nproc` of the
/// machine `.ci/slurm-cluster` runs on): what a job asks for to have the
/// whole node.
fn node_cpus() -> u32 {
    let text = slurm_says("sinfo", &["-h", "-N", "-o", "%c"]);
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("sinfo gave no CPU count: {text:?}: {NEEDS}"))
}

/// When Slurm says a job was submitted, started and ended
/// (`YYYY-MM-DDTHH:MM:SS`, which compare as text).
#[derive(Debug)]
struct JobTimes {
    submitted: String,
    started: String,
    ended: String,
}

/// [`JobTimes`] of the Slurm job that held `run`'s instance, from
/// `scontrol show job` (which keeps an ended job for `MinJobAge`).
fn job_times(run: &Value) -> JobTimes {
    let handle = run["instance"]["workdir"].as_str().unwrap_or_default();
    let id = handle
        .strip_prefix("slurm:")
        .unwrap_or_else(|| panic!("no Slurm job in {run}"));
    let text = slurm_says("scontrol", &["show", "job", "-o", id]);
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} for job {id}: {text}"))
            .to_string()
    };
    JobTimes {
        submitted: field("SubmitTime"),
        started: field("StartTime"),
        ended: field("EndTime"),
    }
}

/// Every job the controller knows, any state: id, name, state, reason.
fn queue() -> String {
    let out = Command::new("squeue")
        .args(["-h", "-a", "-t", "all", "-o", "%i|%j|%T|%r"])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pipeline on the cluster whose one step prints a line and sleeps.
fn sleeper(name: &str, instance: &str) -> String {
    format!(
        "name = \"{name}\"\ndata = \"s3://fsxn-ontap/none\"\n\
         [instance]\nbackend = \"slurm\"\nhourly_price = 3.6\n{instance}\n\
         [[steps]]\nkind = \"run\"\ncommand = \"echo on $(hostname) in $PWD; sleep 300\"\n"
    )
}

/// Waits until run `id`'s step printed its first line: the job runs.
fn wait_step_started(up: &Up, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = up.ok(&["run", "logs", id]);
        if logs.contains("tread-job-") {
            return;
        }
        assert!(Instant::now() < deadline, "the step never started:\n{logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_json(up: &Up, id: &str) -> Value {
    serde_json::from_str(&up.ok(&["run", "describe", id, "--json"])).expect("run JSON")
}

/// Waits until run `id` has ended; returns it.
fn wait_ended(up: &Up, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let run = run_json(up, id);
        if !matches!(run["state"].as_str(), Some("queued" | "running")) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {run}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const TRAINED: &str = r#"
name = "slurmy"
data = "s3://fsxn-ontap/dataset/tyre"

[instance]
backend = "slurm"
partition = "debug"
cpus = 1
time_limit = "10"
type = "ci-node"
hourly_price = 3.6
on_start = "echo node ready"

[[steps]]
kind = "train"
model = "resnet-small"
size = 32
epochs = 1
out = "s3://fsxn-ontap/models/slurmy/"

[[steps]]
kind = "evaluate"

[[steps]]
kind = "gate"
min_accuracy = 0.0

[[steps]]
kind = "deploy"
endpoint = "slurmy-ep"
"#;

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn a_run_on_slurm_trains_evaluates_gates_and_deploys() {
    let world = World::create();
    let up = Up::start(&world);
    let synth = world
        .tread_as_s3user(up.s3_url())
        .args(["data", "synth", "s3://fsxn-ontap/dataset/tyre"])
        .args(["--count", "48", "--seed", "3", "--size", "64"])
        .status()
        .expect("synth");
    assert!(synth.success());
    up.apply(&world, "slurmy", TRAINED);
    let done = up.ok(&["pipeline", "run", "slurmy", "--wait"]);
    assert!(done.contains("succeeded"), "{done}");
    let id = run_id(&done);
    let run = run_json(&up, &id);
    let instance = &run["instance"];
    assert_eq!(instance["backend"], "slurm", "{run}");
    let handle = instance["workdir"].as_str().expect("handle");
    assert!(
        handle.starts_with("slurm:"),
        "the job id is recorded: {handle}"
    );
    let billed = instance["billed_seconds"].as_f64().expect("billed");
    // The controller's StartTime and EndTime are whole seconds (a short
    // run may fit in one); tread's own clock would give a fraction.
    assert!(
        billed >= 0.0 && billed.fract() == 0.0 && billed < 120.0,
        "billed from Slurm's allocation times: {billed}"
    );
    assert!(instance["queued_seconds"].as_f64().is_some(), "{instance}");
    assert!(
        jobs(&format!("tread-slurmy-{id}")).is_empty(),
        "the job is gone"
    );
    let logs = up.ok(&["run", "logs", &id]);
    assert!(
        logs.contains("node ready") && logs.contains("epoch 1"),
        "{logs}"
    );
    let predicted = world
        .tread_as_s3user(up.s3_url())
        .env("TREAD_SERVER", up.api_url())
        .args(["predict", "--endpoint", "slurmy-ep"])
        .arg("s3://fsxn-ontap/dataset/tyre/good/000000.jpg")
        .output()
        .expect("predict");
    assert!(
        predicted.status.success(),
        "the model trained on the node serves: {}",
        String::from_utf8_lossy(&predicted.stderr)
    );
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn cancelling_a_run_cancels_its_job_within_5_s() {
    let world = World::create();
    let up = Up::start(&world);
    up.apply(&world, "napping", &sleeper("napping", ""));
    let id = run_id(&up.ok(&["pipeline", "run", "napping"]));
    let job = format!("tread-napping-{id}");
    wait_step_started(&up, &id);
    // This once failed with no job at all and nothing to say why: the
    // message carries the controller's whole queue and the run's log.
    assert_eq!(
        jobs(&job).len(),
        1,
        "one job per run; the queue: {:?}; the run's log:\n{}",
        queue(),
        up.ok(&["run", "logs", &id])
    );
    let asked = Instant::now();
    up.ok(&["run", "cancel", &id]);
    wait_jobs(
        &job,
        Duration::from_secs(5),
        "still there 5 s after the cancel",
        <[_]>::is_empty,
    );
    let run = wait_ended(&up, &id, Duration::from_secs(5));
    assert_eq!(run["state"], "cancelled", "{run}");
    assert_eq!(run["instance"]["state"], "stopped", "{run}");
    assert!(asked.elapsed() < Duration::from_secs(10));
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn a_daemon_killed_mid_run_cancels_the_job_when_it_restarts() {
    let world = World::create();
    let mut up = Up::start(&world);
    up.apply(&world, "orphan", &sleeper("orphan", ""));
    let id = run_id(&up.ok(&["pipeline", "run", "orphan"]));
    let job = format!("tread-orphan-{id}");
    wait_step_started(&up, &id);
    up.kill();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(jobs(&job).len(), 1, "the job outlives a killed daemon");
    let up = Up::start(&world);
    wait_jobs(
        &job,
        Duration::from_secs(10),
        "not cancelled after the restart",
        <[_]>::is_empty,
    );
    let run = wait_ended(&up, &id, Duration::from_secs(5));
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["instance"]["state"], "stopped", "{run}");
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn a_step_past_the_time_limit_fails_the_run_with_slurms_reason() {
    let world = World::create();
    let up = Up::start(&world);
    let limited = sleeper("limited", "partition = \"short\"\ntime_limit = \"1\"");
    up.apply(&world, "limited", &limited);
    let id = run_id(&up.ok(&["pipeline", "run", "limited"]));
    // Slurm checks limits about every 30 s: a 1-minute job ends by 90 s.
    let run = wait_ended(&up, &id, Duration::from_secs(150));
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("TIMEOUT"), "Slurm's reason: {reason}");
    assert!(jobs(&format!("tread-limited-{id}")).is_empty());
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn requests_the_cluster_cannot_meet_are_refused_when_applied() {
    let world = World::create();
    let up = Up::start(&world);
    for (instance, message) in [
        ("partition = \"nosuch\"", "invalid partition"),
        ("gres = \"gpu:1\"", "Invalid generic resource"),
        ("partition = \"short\"\ntime_limit = \"5\"", "time limit"),
    ] {
        let file = world.dir.path().join("refused.toml");
        std::fs::write(&file, sleeper("refused", instance)).expect("write");
        let out = up
            .cli()
            .args(["pipeline", "apply"])
            .arg(&file)
            .output()
            .expect("apply");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.to_lowercase().contains(&message.to_lowercase()),
            "{instance}: {stderr}"
        );
    }
    let listed = up.ok(&["pipeline", "list"]);
    assert!(!listed.contains("refused"), "nothing was saved: {listed}");
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn two_runs_wanting_the_whole_node_queue_and_the_wait_is_not_billed() {
    let world = World::create();
    let up = Up::start(&world);
    // Each asks for all the node's CPUs, however many the CI machine has.
    let cpus = node_cpus();
    let short = |name: &str| {
        format!(
            "name = \"{name}\"\ndata = \"s3://fsxn-ontap/none\"\n\
             [instance]\nbackend = \"slurm\"\ncpus = {cpus}\nhourly_price = 3.6\n\
             [[steps]]\nkind = \"run\"\ncommand = \"sleep 4\"\n"
        )
    };
    up.apply(&world, "first", &short("first"));
    up.apply(&world, "second", &short("second"));
    let a = run_id(&up.ok(&["pipeline", "run", "first"]));
    wait_jobs(
        &format!("tread-first-{a}"),
        Duration::from_secs(10),
        "not running",
        |j| j.iter().any(|(_, state, _)| state == "RUNNING"),
    );
    let b = run_id(&up.ok(&["pipeline", "run", "second"]));
    let (first, second) = (
        wait_ended(&up, &a, Duration::from_secs(60)),
        wait_ended(&up, &b, Duration::from_secs(60)),
    );
    assert_eq!(
        (&first["state"], &second["state"]),
        (&"succeeded".into(), &"succeeded".into()),
        "the first run: {first}\nthe second: {second}"
    );
    // Slurm's own clock: the second job was submitted while the first ran
    // and started only once it had ended.
    let (first_job, second_job) = (job_times(&first), job_times(&second));
    assert!(
        second_job.submitted < first_job.ended && second_job.started >= first_job.ended,
        "the second queued behind the first: {first_job:?}, {second_job:?}"
    );
    let queued = second["instance"]["queued_seconds"]
        .as_f64()
        .expect("queued");
    let billed = second["instance"]["billed_seconds"]
        .as_f64()
        .expect("billed");
    assert!(queued >= 1.0, "the second waited for the node: {queued}");
    assert!(billed < 15.0, "its wait is not billed: {billed}");
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm-tests"]
fn a_controller_out_of_reach_fails_the_run_and_the_daemon_serves_on() {
    let world = World::create();
    let mut up = Up::start(&world);
    up.apply(&world, "unreached", &sleeper("unreached", ""));
    up.kill();
    // The same cluster but a controller port nobody listens on.
    let conf = std::env::var("SLURM_CONF").expect(NEEDS);
    let text = std::fs::read_to_string(&conf).expect("slurm.conf");
    let wrong = world.dir.path().join("unreachable.conf");
    let port = crate::common::free_port().to_string();
    let rewired: Vec<String> = text
        .lines()
        .map(|l| match l.starts_with("SlurmctldPort=") {
            true => format!("SlurmctldPort={port}"),
            false => l.to_string(),
        })
        .collect();
    std::fs::write(&wrong, rewired.join("\n")).expect("write the conf");
    let wrong = wrong.to_str().expect("utf-8");
    let up = Up::start_with_env(&world, &world.data, &[("SLURM_CONF", wrong)]);
    let id = run_id(&up.ok(&["pipeline", "run", "unreached"]));
    let run = wait_ended(&up, &id, Duration::from_secs(90));
    assert_eq!(run["state"], "failed", "{run}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the instance did not start") && reason.to_lowercase().contains("slurm"),
        "the reason names the cluster: {reason}"
    );
    let listed = up.ok(&["pipeline", "list"]);
    assert!(
        listed.contains("unreached"),
        "the daemon still answers: {listed}"
    );
}
