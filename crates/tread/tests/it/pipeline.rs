//! The pipeline part through `tread up`: a full run (train → evaluate →
//! gate → deploy → run) and a predict; a gated-out run that leaves the
//! endpoint alone; a failing step fired by the scheduler; the data-change
//! trigger firing once per change; a restart in the middle of a run; and
//! `tread demo` itself.

use crate::common::{World, block_on, free_port, ok, tread, wait_started};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `tread up` child process; killed when dropped.
pub(crate) struct Up {
    child: Child,
    api: String,
    s3: String,
    data: PathBuf,
    log: PathBuf,
}

impl Up {
    pub(crate) fn start(world: &World) -> Self {
        Self::start_in(world, &world.data)
    }

    /// `tread up` with data dir `data` (the world's, or one of
    /// [`World::shared_data_dir`]).
    pub(crate) fn start_in(world: &World, data: &Path) -> Self {
        Self::start_with_env(world, data, &[])
    }

    /// [`Up::start_in`] with `env` added to the daemon's environment.
    pub(crate) fn start_with_env(world: &World, data: &Path, env: &[(&str, &str)]) -> Self {
        // A port free when free_port looked can be taken before the daemon
        // binds it (other tests bind port 0 all the time): then again, on
        // new ports.
        for _ in 0..3 {
            if let Some(up) = Self::try_start(world, data, env) {
                return up;
            }
        }
        panic!("tread up lost a port to another process three times over");
    }

    /// Starts the daemon on fresh ports; `None` if it found one of them
    /// taken. Any other failure to start fails the test with its log.
    fn try_start(world: &World, data: &Path, env: &[(&str, &str)]) -> Option<Self> {
        let (api, s3) = (free_port(), free_port());
        let log_path = world.dir.path().join(format!("up-{api}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = tread(data)
            .env("TREAD_LOG", "info,s3s=off")
            .envs(env.iter().copied())
            .args([
                "up",
                "--listen",
                &format!("127.0.0.1:{api}"),
                "--s3-listen",
                &format!("127.0.0.1:{s3}"),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tread up");
        let mut child = child;
        let said = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if !wait_started(
            &mut child,
            &[s3, api],
            Duration::from_secs(30),
            "tread up",
            said,
        ) {
            return None;
        }
        Some(Self {
            child,
            api: format!("http://127.0.0.1:{api}"),
            s3: format!("http://127.0.0.1:{s3}"),
            data: data.to_path_buf(),
            log: log_path,
        })
    }

    /// What the daemon logged so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).expect("the daemon's log")
    }

    /// The API's URL.
    pub(crate) fn api_url(&self) -> &str {
        &self.api
    }

    /// The S3 endpoint's URL.
    pub(crate) fn s3_url(&self) -> &str {
        &self.s3
    }

    /// `tread` with no TREAD_SERVER: it must find this daemon by itself.
    fn cli_unaimed(&self) -> Command {
        let mut cmd = tread(&self.data);
        cmd.env_remove("TREAD_SERVER");
        cmd
    }

    /// `tread args…` against this daemon; returns stdout, asserting success.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        ok(self.cli(), args)
    }

    pub(crate) fn cli(&self) -> Command {
        let mut cmd = tread(&self.data);
        cmd.env("TREAD_SERVER", &self.api);
        cmd
    }

    /// A GET of the API with the token from the data dir: the body's text.
    fn text(&self, path: &str) -> String {
        let token = std::fs::read_to_string(self.data.join("api-token")).expect("token");
        block_on(async {
            let response = reqwest::Client::new()
                .get(format!("{}{path}", self.api))
                .bearer_auth(token.trim())
                .send()
                .await
                .expect("request");
            assert!(
                response.status().is_success(),
                "GET {path}: {}",
                response.status()
            );
            response.text().await.expect("body")
        })
    }

    /// A GET of the management API, parsed.
    pub(crate) fn get(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path)).expect("JSON")
    }

    pub(crate) fn runs(&self, pipeline: &str) -> Vec<Value> {
        self.get(&format!("/api/runs?pipeline={pipeline}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `check` holds of the pipeline's runs.
    pub(crate) fn wait_runs(
        &self,
        pipeline: &str,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let runs = self.runs(pipeline);
            if check(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "{pipeline}: {what} did not happen: {runs:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs pipeline `name` by hand, asserts it succeeded, and describes the
    /// run (`run describe --json`).
    pub(crate) fn run_to_success(&self, name: &str) -> Value {
        let done = self.ok(&["pipeline", "run", name, "--wait"]);
        assert!(done.contains("succeeded"), "{done}");
        let described = self.ok(&["run", "describe", &run_id(&done), "--json"]);
        serde_json::from_str(&described).expect("run JSON")
    }

    /// Writes 48 synthetic tyres (64 px, seed 3) to
    /// `s3://fsxn-ontap/dataset/tyre` as the world's S3 user.
    pub(crate) fn synth_tyres(&self, world: &World) {
        let synth = world
            .tread_as_s3user(&self.s3)
            .args([
                "data",
                "synth",
                "s3://fsxn-ontap/dataset/tyre",
                "--count",
                "48",
            ])
            .args(["--seed", "3", "--size", "64"])
            .status()
            .expect("synth");
        assert!(synth.success());
    }

    pub(crate) fn apply(&self, world: &World, name: &str, toml: &str) -> String {
        let file = world.dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, toml).expect("write pipeline file");
        self.ok(&["pipeline", "apply", file.to_str().expect("utf-8")])
    }
}

impl Up {
    /// SIGKILLs the daemon and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn run_id(started: &str) -> String {
    started
        .split_whitespace()
        .nth(1)
        .expect("`run N of … started`")
        .to_string()
}

const TINY: &str = r#"
name = "tiny"
data = "s3://fsxn-ontap/dataset/tyre"

[instance]
type = "test-1cpu"
hourly_price = 3.6
on_start = "echo instance ready"

[[steps]]
kind = "train"
model = "resnet-small"
size = 32
epochs = 1
out = "s3://fsxn-ontap/models/tiny/"

[[steps]]
kind = "evaluate"

[[steps]]
kind = "gate"
min_accuracy = MIN

[[steps]]
kind = "run"
command = "echo key=$AWS_ACCESS_KEY_ID secret=$AWS_SECRET_ACCESS_KEY model=$TREAD_MODEL_URI"

[[steps]]
kind = "deploy"
endpoint = "tiny-ep"
"#;

#[test]
fn a_run_trains_gates_deploys_and_a_gated_out_run_leaves_the_endpoint_alone() {
    let world = World::create();
    let up = Up::start(&world);
    up.synth_tyres(&world);

    let applied = up.apply(&world, "tiny", &TINY.replace("MIN", "0.0"));
    assert!(applied.contains("pipeline-tiny"), "{applied}");
    let done = up.ok(&["pipeline", "run", "tiny", "--wait"]);
    assert!(done.contains("succeeded"), "{done}");
    let id = run_id(&done);
    let run: Value =
        serde_json::from_str(&up.ok(&["run", "describe", &id, "--json"])).expect("run JSON");
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["model_version"], 1);
    let instance = &run["instance"];
    assert_eq!(instance["state"], "stopped");
    let billed = instance["billed_seconds"].as_f64().expect("billed seconds");
    assert!((instance["cost"].as_f64().expect("cost") - billed * 3.6 / 3600.0).abs() < 1e-9);
    assert!(
        instance["idle_seconds"].as_f64().expect("idle") < 50.0,
        "sanity bound, 10× the floor"
    );

    let metrics = up.text("/metrics");
    assert!(
        metrics.contains(r#"tread_pipeline_runs_total{pipeline="tiny",state="succeeded"} 1"#)
            && metrics.contains(r#"tread_instance_billed_seconds_total{pipeline="tiny"}"#),
        "{metrics}"
    );

    let logs = up.ok(&["run", "logs", &id]);
    assert!(
        logs.contains("instance ready"),
        "the on-start script ran:\n{logs}"
    );
    assert!(
        logs.contains("epoch 1"),
        "the train step's output is in the log:\n{logs}"
    );
    assert!(
        logs.contains("key=[redacted] secret=[redacted] model=s3://fsxn-ontap/models/tiny/"),
        "{logs}"
    );
    let step_log = up.ok(&["run", "logs", &id, "--step", "4", "--follow"]);
    assert!(
        step_log.contains("key=[redacted]") && !step_log.contains("epoch 1"),
        "{step_log}"
    );

    let predicted = world
        .tread_as_s3user(&up.s3)
        .env("TREAD_SERVER", &up.api)
        .args([
            "predict",
            "--endpoint",
            "tiny-ep",
            "s3://fsxn-ontap/dataset/tyre/good/000000.jpg",
        ])
        .output()
        .expect("predict");
    assert!(
        predicted.status.success(),
        "{}",
        String::from_utf8_lossy(&predicted.stderr)
    );
    let lineage: Value = serde_json::from_str(&up.ok(&["model", "lineage", "tiny-ep", "--json"]))
        .expect("lineage JSON");
    assert_eq!(lineage["model"]["version"], 1);
    assert_eq!(lineage["run"]["id"].to_string(), id);
    assert!(
        lineage["dataset_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    let served = lineage["model_uri"]
        .as_str()
        .expect("served URI")
        .to_string();

    up.apply(&world, "tiny", &TINY.replace("MIN", "1.0"));
    let gated = up
        .cli()
        .args(["pipeline", "run", "tiny", "--wait"])
        .output()
        .expect("run");
    assert!(!gated.status.success());
    let gated_out = String::from_utf8_lossy(&gated.stdout);
    assert!(gated_out.contains("gated"), "{gated_out}");
    let endpoint = up.get("/api/endpoints/tiny-ep");
    assert_eq!(
        endpoint["model"]["uri"],
        served.as_str(),
        "the endpoint kept version 1"
    );
    let models = up.get("/api/models?name=tiny");
    assert_eq!(
        models.as_array().map(Vec::len),
        Some(1),
        "a gated-out model is not registered: {models}"
    );
    assert_eq!(models[0]["production"], true);
    let settings = &models[0]["settings"];
    assert_eq!(
        (
            &settings["architecture"],
            &settings["size"],
            &settings["epochs"]
        ),
        (
            &Value::from("resnet-small"),
            &Value::from(32),
            &Value::from(1)
        ),
        "the registry keeps how the train step made the model: {settings}"
    );
    let listed = up.ok(&["instance", "list"]);
    assert_eq!(
        listed.lines().filter(|l| l.contains("stopped")).count(),
        2,
        "{listed}"
    );

    up.apply(&world, "tiny", &TINY.replace("MIN", "0.0"));
    up.ok(&["pipeline", "run", "tiny", "--wait"]);
    let second = up.get("/api/endpoints/tiny-ep")["model"]["uri"].clone();
    assert_ne!(second, served.as_str(), "version 2 was deployed");
    let promoted = up.ok(&["model", "promote", "tiny", "1"]);
    assert!(promoted.contains("tiny-ep"), "{promoted}");
    assert_eq!(
        up.get("/api/endpoints/tiny-ep")["model"]["uri"],
        served.as_str()
    );
    assert_eq!(up.get("/api/models/tiny/1")["production"], true);
    assert_eq!(up.get("/api/models/tiny/2")["production"], false);

    // Issue 17: with the daemon gone (killed, so its address file is
    // stale), `endpoint list` and `model lineage` read the data dir as the
    // other reads do.
    let cli = up.cli_unaimed();
    drop(up);
    let offline = cli_output(cli, &["endpoint", "list"]);
    assert!(
        offline.stdout.contains("tiny-ep")
            && offline.stdout.contains(&served)
            && offline.stderr.contains("read from"),
        "{offline:?}"
    );
    let offline = cli_output(
        world_cli(&world),
        &["model", "lineage", "tiny-ep", "--json"],
    );
    let lineage: Value = serde_json::from_str(&offline.stdout).expect("lineage JSON");
    assert_eq!(lineage["model"]["version"], 1, "{offline:?}");
    let up = Up::start(&world);
    assert_eq!(
        up.get("/api/endpoints/tiny-ep")["model"]["uri"],
        served.as_str(),
        "after a restart the endpoint serves the production version"
    );
    let answer = up
        .cli()
        .args(["predict", "--endpoint", "tiny-ep", "--json"])
        .arg(world.volume.join("dataset/tyre/good/000000.jpg"))
        .output()
        .expect("predict");
    assert!(
        answer.status.success(),
        "{}",
        String::from_utf8_lossy(&answer.stderr)
    );
}

/// Issue 13: a `run` step that trains by itself (here `tread train` called
/// by the step's own script, as a PyTorch script would be) hands its model
/// to the gate and the deploy by writing the train step's result to
/// `$TREAD_RESULT`.
#[test]
fn a_run_step_hands_its_own_model_to_the_gate_and_the_deploy() {
    let world = World::create();
    let up = Up::start(&world);
    let synth = world
        .tread_as_s3user(&up.s3)
        .args(["data", "synth", "s3://fsxn-ontap/dataset/tyre"])
        .args(["--count", "48", "--seed", "5", "--size", "48"])
        .status()
        .expect("synth");
    assert!(synth.success());
    // A copy the step's user reaches wherever the checkout lies.
    let own_trainer = world.step_dir().join("trainer");
    std::fs::copy(env!("CARGO_BIN_EXE_tread"), &own_trainer).expect("copy the trainer");
    let trainer = format!(
        "{} train s3://fsxn-ontap/dataset/tyre --out s3://fsxn-ontap/models/byo/ \
         --size 32 --epochs 1 --result \"$TREAD_RESULT\"",
        own_trainer.display()
    );
    let file = format!(
        "name = \"byo\"\ndata = \"s3://fsxn-ontap/dataset/tyre\"\npolicy = \"FullAccess\"\n\
         [[steps]]\nkind = \"run\"\ncommand = {trainer:?}\n\
         [[steps]]\nkind = \"gate\"\nmin_accuracy = 0.0\n\
         [[steps]]\nkind = \"deploy\"\nendpoint = \"byo-ep\"\n"
    );
    up.apply(&world, "byo", &file);
    let run = up.run_to_success("byo");
    let handed = run["steps"][0]["message"].as_str().unwrap_or_default();
    assert!(
        handed.contains("handing over s3://fsxn-ontap/models/byo/"),
        "{run}"
    );
    let served = up.get("/api/endpoints/byo-ep");
    assert!(
        served["model"]["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("s3://fsxn-ontap/models/byo/")),
        "the handed model serves: {served}"
    );
    assert_eq!(up.get("/api/models/byo/1")["production"], true);

    // The same with a classifier trained elsewhere, as torch.onnx.export
    // writes one: the step writes the graph, its JSON and the result.
    let staged = world.step_dir().join("exported");
    std::fs::create_dir_all(&staged).expect("stage");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../serve/tests/fixtures");
    for (from, to) in [("tiny.onnx", "model.onnx"), ("tiny.json", "model.json")] {
        std::fs::copy(fixtures.join(from), staged.join(to)).expect("stage the export");
    }
    let models = world.step_dir().join("onnx-models");
    let script = format!(
        "mkdir -p {models} && cp {staged}/model.onnx {staged}/model.json {models}/ && \
         printf '{{\"model\": \"%s\", \"version\": \"tiny-onnx-1\", \"evaluation\": {{\"accuracy\": 0.5}}}}' \
         {models}/model.onnx > \"$TREAD_RESULT\"",
        models = models.display(),
        staged = staged.display()
    );
    let file = format!(
        "name = \"exported\"\ndata = \"s3://fsxn-ontap/dataset/tyre\"\n\
         [[steps]]\nkind = \"run\"\ncommand = {script:?}\n\
         [[steps]]\nkind = \"evaluate\"\n\
         [[steps]]\nkind = \"gate\"\nmin_accuracy = 0.0\n\
         [[steps]]\nkind = \"deploy\"\nendpoint = \"exported-ep\"\n"
    );
    up.apply(&world, "exported", &file);
    let run = up.run_to_success("exported");
    let evaluated = run["steps"][1]["message"].as_str().unwrap_or_default();
    assert!(
        evaluated.starts_with("held-out accuracy"),
        "tread eval scored the ONNX model: {run}"
    );
    let served = up.get("/api/endpoints/exported-ep");
    assert_eq!(served["model"]["architecture"], "onnx", "{served}");
    assert_eq!(
        up.get("/api/models/exported/1")["artifact_version"],
        "tiny-onnx-1"
    );

    let bad = "name = \"noeval\"\ndata = \"s3://fsxn-ontap/none\"\n[[steps]]\nkind = \"run\"\n\
               command = \"echo '{\\\"model\\\": \\\"s3://b/m.onnx\\\"}' > $TREAD_RESULT\"\n";
    up.apply(&world, "noeval", bad);
    let failed = up
        .cli()
        .args(["pipeline", "run", "noeval", "--wait"])
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&failed.stdout);
    assert!(
        !failed.status.success() && said.contains("no held-out \"evaluation\""),
        "a result without its evaluation is refused: {said}"
    );
}

#[test]
fn a_failing_step_fails_the_run_and_stops_its_instance() {
    let world = World::create();
    let up = Up::start(&world);
    let at = utc_in(5);
    up.apply(
        &world,
        "broken",
        &format!(
            "name = \"broken\"\ndata = \"s3://fsxn-ontap/none\"\nschedule = \"at({at})\"\n\
             [[steps]]\nkind = \"run\"\ncommand = \"echo going; echo 'error: the notebook failed' >&2; exit 3\"\n\
             [[steps]]\nkind = \"run\"\ncommand = \"echo never\"\n"
        ),
    );
    let runs = up.wait_runs("broken", "the at() schedule's run", |r| {
        r.first().is_some_and(|r| r["state"] == "failed")
    });
    let run = &runs[0];
    assert_eq!(run["trigger"], "schedule");
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the notebook failed")),
        "{run}"
    );
    assert_eq!(run["steps"][0]["state"], "failed");
    assert_eq!(run["steps"][1]["state"], "skipped");
    assert_eq!(run["instance"]["state"], "stopped");
    assert!(run["instance"]["idle_seconds"].as_f64().is_some());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(up.runs("broken").len(), 1, "at() fires once");

    for (file, fragment) in [
        ("schedule = \"rate(1 days)\"\n", "rate(1 days)"),
        ("policy = \"NoSuchPolicy\"\n", "NoSuchPolicy"),
    ] {
        let path = world.dir.path().join("bad.toml");
        std::fs::write(
            &path,
            format!("name = \"bad\"\ndata = \"s3://fsxn-ontap/none\"\n{file}[[steps]]\nkind = \"run\"\ncommand = \"true\"\n"),
        )
        .expect("write");
        let out = up
            .cli()
            .args(["pipeline", "apply", path.to_str().expect("utf-8")])
            .output()
            .expect("apply");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(fragment) && stderr.contains("HTTP 400"),
            "{stderr}"
        );
    }
    assert!(
        up.get("/api/pipelines")
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["name"] != "bad"))
    );
}

#[test]
fn a_paused_pipeline_skips_its_schedule_but_runs_by_hand() {
    let world = World::create();
    let up = Up::start(&world);
    let at = utc_in(3);
    up.apply(
        &world,
        "napper",
        &format!(
            "name = \"napper\"\ndata = \"s3://fsxn-ontap/none\"\nschedule = \"at({at})\"\n\
             [[steps]]\nkind = \"run\"\ncommand = \"true\"\n"
        ),
    );
    up.ok(&["pipeline", "pause", "napper"]);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        up.runs("napper").is_empty(),
        "a paused schedule does not fire"
    );
    let resumed = up.ok(&["pipeline", "resume", "napper"]);
    assert!(
        resumed.contains("next run -"),
        "the missed at() is skipped: {resumed}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(up.runs("napper").is_empty());
    up.ok(&["pipeline", "pause", "napper"]);
    let by_hand = up.ok(&["pipeline", "run", "napper", "--wait"]);
    assert!(by_hand.contains("succeeded"), "{by_hand}");
    let listed = up.ok(&["pipeline", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("napper") && l.contains("true") && l.contains("succeeded")),
        "{listed}"
    );
}

#[test]
fn new_data_starts_one_run_per_settled_change() {
    let world = World::create();
    let up = Up::start(&world);
    up.apply(
        &world,
        "watcher",
        "name = \"watcher\"\ndata = \"s3://fsxn-ontap/incoming\"\nretrain_on_data_change = true\nsettle_seconds = 5\n\
         [[steps]]\nkind = \"run\"\ncommand = \"echo seen\"\n",
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        up.runs("watcher").is_empty(),
        "the data as applied is the baseline"
    );
    // A client per call: its connections belong to the runtime it ran on.
    let put = |key: &str| {
        block_on(
            world
                .client(&up.s3)
                .put_object()
                .bucket("fsxn-ontap")
                .key(key)
                .body(key.as_bytes().to_vec().into())
                .send(),
        )
        .expect("put");
    };
    for key in ["incoming/a.txt", "incoming/b.txt", "incoming/c.txt"] {
        put(key);
    }
    up.wait_runs("watcher", "a data-change run", |r| {
        r.len() == 1 && r[0]["state"] == "succeeded"
    });
    std::thread::sleep(Duration::from_secs(4));
    let runs = up.runs("watcher");
    assert_eq!(runs.len(), 1, "three objects, one change, one run");
    assert_eq!(runs[0]["trigger"], "data-change");
    put("incoming/d.txt");
    up.wait_runs("watcher", "a second data-change run", |r| r.len() == 2);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(up.runs("watcher").len(), 2);
}

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    stdout: String,
    stderr: String,
    success: bool,
}

/// Runs `cmd args…` to its end, whatever its exit status.
fn cli_output(mut cmd: Command, args: &[&str]) -> Output {
    let out = cmd.args(args).output().expect("run tread");
    Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
    }
}

/// `tread` on the world's data dir with no TREAD_SERVER.
fn world_cli(world: &World) -> Command {
    let mut cmd = tread(&world.data);
    cmd.env_remove("TREAD_SERVER");
    cmd
}

/// Whether `text` holds a time with a fraction of a second (`:29.123`).
fn has_subsecond_time(text: &str) -> bool {
    text.as_bytes().windows(5).any(|w| {
        w[0] == b':'
            && w[1].is_ascii_digit()
            && w[2].is_ascii_digit()
            && w[3] == b'.'
            && w[4].is_ascii_digit()
    })
}

/// Issue 15: the next fire times of any expression, the same from the CLI
/// (no daemon needed) and from the API; the parser's message when invalid.
#[test]
fn schedule_next_answers_alike_on_the_cli_and_the_api() {
    let world = World::create();
    let up = Up::start(&world);
    let after = "2026-12-04T10:00:00Z";
    let args = [
        "schedule",
        "next",
        "cron(0 9 ? * mon-fri *)",
        "-n",
        "3",
        "--after",
        after,
    ];
    let mut in_paris = world_cli(&world);
    in_paris.env("TZ", "Europe/Paris");
    let cli = cli_output(in_paris, &args);
    assert!(cli.success, "{}", cli.stderr);
    assert_eq!(
        cli.stdout.lines().skip(2).collect::<Vec<_>>(),
        [
            "2026-12-07T09:00:00Z    2026-12-07T10:00:00+01:00",
            "2026-12-08T09:00:00Z    2026-12-08T10:00:00+01:00",
            "2026-12-09T09:00:00Z    2026-12-09T10:00:00+01:00",
        ],
        "UTC with the local time beside: {}",
        cli.stdout
    );
    let json: Value =
        serde_json::from_str(&ok(world_cli(&world), &[&args[..], &["--json"]].concat()))
            .expect("JSON");
    let api = up.get(
        "/api/schedules/next?expr=cron(0%209%20?%20*%20mon-fri%20*)&n=3&after=2026-12-04T10:00:00Z",
    );
    assert_eq!(json["fires"], api["fires"], "the CLI and the API agree");
    assert_eq!(api["expression"], "cron(0 9 ? * MON-FRI *)");
    let refused = cli_output(
        world_cli(&world),
        &["schedule", "next", "cron(0 0 ? * MON/2 *)"],
    );
    assert!(
        !refused.success && refused.stderr.contains("allows `/` only in the minutes"),
        "EventBridge refuses a step in day-of-week: {}",
        refused.stderr
    );
    let token = std::fs::read_to_string(world.data.join("api-token")).expect("token");
    let (status, body) = block_on(async {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/api/schedules/next?expr=rate(5%20minute)",
                up.api_url()
            ))
            .bearer_auth(token.trim())
            .send()
            .await
            .expect("request");
        (response.status(), response.text().await.expect("body"))
    });
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("`rate(5 minutes)`"),
        "the parser's message: {body}"
    );
}

/// Issue 17: pipeline files that could never work were applied: a
/// debounce of under 5 s, an `at()` in the past, a bucket that does not
/// exist. And a data bucket deleted later made the daemon warn about once
/// a second forever; now it warns once and backs off.
#[test]
fn r17_apply_refuses_what_cannot_work_and_a_vanished_bucket_is_warned_once() {
    let world = World::create();
    let up = Up::start(&world);
    let run = "[[steps]]\nkind = \"run\"\ncommand = \"true\"\n";
    let train = "[[steps]]\nkind = \"train\"\nout = \"s3://no-models/m/\"\n";
    for (head, fragment) in [
        (
            "data = \"s3://fsxn-ontap/d\"\nretrain_on_data_change = true\nsettle_seconds = 0\n",
            "minimum of 5",
        ),
        (
            "data = \"s3://fsxn-ontap/d\"\nschedule = \"at(2020-01-01T00:00:00)\"\n",
            "never fire",
        ),
        (
            "data = \"s3://no-such-bucket/d\"\n",
            "data: bucket no-such-bucket does not exist",
        ),
    ]
    .into_iter()
    .map(|(head, fragment)| (format!("{head}{run}"), fragment))
    .chain([(
        format!("data = \"s3://fsxn-ontap/d\"\n{train}"),
        "out: bucket no-models does not exist",
    )]) {
        let path = world.dir.path().join("bad.toml");
        std::fs::write(&path, format!("name = \"bad\"\n{head}")).expect("write");
        let out = cli_output(
            up.cli(),
            &["pipeline", "apply", path.to_str().expect("utf-8")],
        );
        assert!(
            !out.success && out.stderr.contains(fragment) && out.stderr.contains("HTTP 400"),
            "{fragment}: {out:?}"
        );
    }
    assert_eq!(up.get("/api/pipelines"), serde_json::json!([]));

    up.apply(
        &world,
        "watcher",
        &format!("name = \"watcher\"\ndata = \"s3://fsxn-ontap/incoming\"\nretrain_on_data_change = true\nsettle_seconds = 5\n{run}"),
    );
    ok(
        tread(&world.data),
        &["s3", "bucket", "delete", "fsxn-ontap"],
    );
    // The trigger looks every second (settle / 4): time for several looks.
    std::thread::sleep(Duration::from_secs(7));
    let log = std::fs::read_to_string(&up.log).expect("the daemon's log");
    assert_eq!(
        log.matches("cannot list the data prefix").count(),
        1,
        "warned once, then backed off:\n{log}"
    );
}

/// Issue 17: the CLI did not find a `tread up` on a non-default
/// `--listen`; tables overflowed with nanosecond times; `describe` printed
/// JSON with the pipeline file as one escaped string.
#[test]
fn r17_the_cli_finds_tread_up_on_any_listen_and_prints_for_a_person() {
    let world = World::create();
    let mut up = Up::start(&world);
    let address = world.data.join("tread-up.json");
    // The file follows the listener by a moment: the API binds first.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !address.exists() {
        assert!(Instant::now() < deadline, "tread up records its address");
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = world.dir.path().join("finder.toml");
    std::fs::write(
        &file,
        "name = \"finder\"\ndata = \"s3://fsxn-ontap/none\"\nschedule = \"cron(0/15 8-18 ? * MON-FRI 2026-2199)\"\n\
         [[steps]]\nkind = \"run\"\ncommand = \"echo found\"\n",
    )
    .expect("write");
    // A write: it works only if the CLI found the daemon.
    ok(
        up.cli_unaimed(),
        &["pipeline", "apply", file.to_str().expect("utf-8")],
    );
    ok(up.cli_unaimed(), &["pipeline", "run", "finder", "--wait"]);

    let described = cli_output(up.cli_unaimed(), &["pipeline", "describe", "finder"]);
    assert!(
        !described.stderr.contains("not running")
            && described.stdout.lines().any(|l| l == "name: finder")
            && described
                .stdout
                .contains("pipeline file:\nname = \"finder\"\n")
            && described.stdout.lines().any(|l| l == "kind = \"run\""),
        "{described:?}"
    );
    let json: Value = serde_json::from_str(&ok(
        up.cli_unaimed(),
        &["pipeline", "describe", "finder", "--json"],
    ))
    .expect("--json prints JSON");
    assert_eq!(json["name"], "finder");

    // Each table's column after a long schedule or a time starts in every
    // row where its header does.
    for (list, column) in [
        (["pipeline", "list"], "NEXT RUN"),
        (["run", "list"], "STATE"),
        (["instance", "list"], "STOPPED"),
    ] {
        let table = ok(up.cli_unaimed(), &list);
        assert!(!has_subsecond_time(&table), "{list:?}:\n{table}");
        let lines: Vec<&str> = table.lines().collect();
        let at = lines[0].find(column).expect("the column's header");
        assert!(lines.len() > 1, "{table}");
        for row in &lines[1..] {
            let bytes = row.as_bytes();
            assert!(
                bytes.len() > at && bytes[at - 1] == b' ' && bytes[at] != b' ',
                "{list:?} misaligned at {column}:\n{table}"
            );
        }
    }
    let runs: Value =
        serde_json::from_str(&ok(up.cli_unaimed(), &["run", "list", "--json"])).expect("JSON");
    assert!(
        has_subsecond_time(&runs.to_string()),
        "--json keeps full precision: {runs}"
    );

    let terminated = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    assert!(up.child.wait().expect("tread up exits").success());
    assert!(!address.exists(), "a clean stop removes the address file");

    let up = Up::start(&world);
    let cli = up.cli_unaimed();
    while !address.exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(up);
    assert!(address.exists(), "a killed daemon leaves its file");
    let stale = cli_output(cli, &["pipeline", "list"]);
    assert!(
        stale.success && stale.stderr.contains("read from") && stale.stdout.contains("finder"),
        "a stale address is ignored: {stale:?}"
    );
}

/// `at()`'s form of the UTC time `seconds` from now.
pub(crate) fn utc_in(seconds: u32) -> String {
    let at = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("+{seconds} seconds"),
            "+%Y-%m-%dT%H:%M:%S",
        ])
        .output()
        .expect("date");
    String::from_utf8_lossy(&at.stdout).trim().to_string()
}

/// Waits (at most 5 s) until process `pid` is gone.
fn wait_gone(pid: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

#[test]
fn a_restart_in_the_middle_of_a_run_fails_it_and_stops_its_instance() {
    let world = World::create();
    let pid_file = world.step_dir().join("sleep.pid");
    let mut up = Up::start(&world);
    up.apply(
        &world,
        "sleeper",
        &format!(
            "name = \"sleeper\"\ndata = \"s3://fsxn-ontap/none\"\n[[steps]]\nkind = \"run\"\ncommand = \"sleep 120 & echo $! > {}; wait\"\n",
            pid_file.display()
        ),
    );
    up.ok(&["pipeline", "run", "sleeper"]);
    let pid = wait_for_pid(&pid_file);
    let _ = up.child.kill();
    let _ = up.child.wait();
    assert!(alive(&pid), "the step outlives a killed tread up");
    let offline = up.ok(&["run", "describe", "1", "--json"]);
    let offline: Value = serde_json::from_str(&offline).expect("run JSON read from the data dir");
    assert_eq!(
        offline["state"], "running",
        "as recorded when tread up died"
    );

    up = Up::start(&world);
    let run = &up.runs("sleeper")[0];
    assert_eq!(run["state"], "failed");
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|r| r.contains("in flight")),
        "{run}"
    );
    assert_eq!(run["instance"]["state"], "stopped");
    wait_gone(&pid, "the step's process survived the restart");
    std::fs::remove_file(&pid_file).expect("remove the pid file");
    let again = run_id(&up.ok(&["pipeline", "run", "sleeper"]));
    let pid = wait_for_pid(&pid_file);
    up.ok(&["run", "cancel", &again]);
    let runs = up.wait_runs("sleeper", "the cancel", |r| r[0]["state"] == "cancelled");
    assert_eq!(runs[0]["instance"]["state"], "stopped");
    wait_gone(&pid, "cancelling did not stop the instance's processes");

    std::fs::remove_file(&pid_file).expect("remove the pid file");
    let last = run_id(&up.ok(&["pipeline", "run", "sleeper"]));
    let pid = wait_for_pid(&pid_file);
    let terminated = Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(terminated.success());
    let status = up.child.wait().expect("tread up exits on SIGTERM");
    assert!(status.success(), "{status}");
    let run: Value =
        serde_json::from_str(&up.ok(&["run", "describe", &last, "--json"])).expect("run JSON");
    assert_eq!(
        run["state"], "cancelled",
        "tread up cancels its runs before it exits"
    );
    assert_eq!(run["instance"]["state"], "stopped");
    assert!(!alive(&pid));
}

fn wait_for_pid(pid_file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(pid) = std::fs::read_to_string(pid_file)
            && !pid.trim().is_empty()
        {
            return pid.trim().to_string();
        }
        assert!(Instant::now() < deadline, "the step did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_demo_builds_the_recipes_world_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: &Path = &dir.path().join("tread-data");
    let out = tread(data)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "volume vol1, NAS bucket fsxn-ontap, user s3user in group s3group (FullAccess)",
        "secret access key",
        "4 deploy    succeeded",
        "predicted",
        "tyre-quality version 1 (production)",
        "billed",
        "boto3.client('s3'",
        // Issue 17: the train step's progress shows while it runs, and the
        // hints name `tread up`'s own S3 port and the data dir.
        "      epoch 1: loss",
        "endpoint_url='http://127.0.0.1:9000'",
        format!("tread up --data-dir {}", data.display()).as_str(),
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(
        data.join("vol1/fsxn-ontap/dataset/tyre/good").is_dir(),
        "the images are files on the volume"
    );
}
