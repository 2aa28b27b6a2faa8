//! The serve part end to end: a model trained from the bucket by the train
//! part, deployed with `tread deploy` to `tread serve`, asked with `tread
//! predict` (a file and an s3:// key), over SageMaker-style HTTP and the
//! KServe v2 protocol, and listed with `tread endpoint`.

use crate::common::{Server, World, block_on, free_port, ok, pack_model, tread, wait_listening};
use base64::Engine as _;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

fn post(url: &str, content_type: &str, body: Vec<u8>) -> Value {
    block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let text = response.text().await.expect("answer");
        serde_json::from_str(&text).expect("JSON answer")
    })
}

#[test]
fn deploy_a_model_trained_from_the_bucket_and_predict_over_http_and_the_cli() {
    let world = World::create();
    let store = Server::start(&world.data);
    let data = "s3://fsxn-ontap/dataset/tyre";
    let s3 = || world.tread_as_s3user(&store.url);
    ok(
        s3(),
        &[
            "data", "synth", data, "--count", "48", "--seed", "3", "--size", "64",
        ],
    );
    let trained = ok(
        s3(),
        &[
            "train",
            data,
            "--size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--out",
            "s3://fsxn-ontap/models/tyre-quality/",
        ],
    );
    let model = trained
        .lines()
        .find_map(|l| l.strip_prefix("model "))
        .expect("train prints the model URI")
        .to_string();

    let endpoints = Server::spawn(s3().arg("serve"));
    // The CLI finds the server through TREAD_SERVER, the token in the data dir.
    let cli = || {
        let mut cmd = s3();
        cmd.env("TREAD_SERVER", &endpoints.url);
        cmd
    };
    let deployed = ok(
        cli(),
        &["deploy", &model, "--endpoint", "tyre-quality-classifier"],
    );
    assert!(deployed.contains("serves"), "{deployed}");

    let good = std::fs::read_dir(world.volume.join("dataset/tyre/good"))
        .expect("good images")
        .next()
        .expect("one good image")
        .expect("entry")
        .path();
    let name = good
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let key = format!("s3://fsxn-ontap/dataset/tyre/good/{name}");
    let local = good.to_string_lossy().into_owned();
    let predicted = ok(
        cli(),
        &[
            "predict",
            "--endpoint",
            "tyre-quality-classifier",
            &local,
            &key,
        ],
    );
    let lines: Vec<&str> = predicted.lines().collect();
    assert_eq!(lines.len(), 2, "{predicted}");
    assert!(
        lines[0].starts_with(&local) && lines[1].starts_with(&key),
        "{predicted}"
    );
    let class_of = |line: &str| {
        line.split('\t')
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .map(str::to_string)
    };
    assert_eq!(
        class_of(lines[0]),
        class_of(lines[1]),
        "same image, same answer: {predicted}"
    );
    assert!(
        matches!(class_of(lines[0]).as_deref(), Some("good" | "defective")),
        "{predicted}"
    );

    let bytes = std::fs::read(&good).expect("image");
    let invoked = post(
        &format!(
            "{}/endpoints/tyre-quality-classifier/invocations",
            endpoints.url
        ),
        "image/jpeg",
        bytes.clone(),
    );
    let request = json!({ "inputs": [{
        "name": "image", "shape": [1], "datatype": "BYTES",
        "data": [base64::engine::general_purpose::STANDARD.encode(&bytes)],
    }] });
    let inferred = post(
        &format!("{}/v2/models/tyre-quality-classifier/infer", endpoints.url),
        "application/json",
        request.to_string().into_bytes(),
    );
    let v2_class = inferred["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "class"))
        .map(|o| o["data"][0].clone());
    assert_eq!(
        v2_class,
        Some(invoked["class"].clone()),
        "{inferred} vs {invoked}"
    );
    assert_eq!(
        Some(invoked["class"].as_str().unwrap_or_default().to_string()),
        class_of(lines[0])
    );

    let listed = ok(cli(), &["endpoint", "list"]);
    assert!(
        listed.contains("tyre-quality-classifier") && listed.contains("InService"),
        "{listed}"
    );
    let described = ok(
        cli(),
        &["endpoint", "describe", "tyre-quality-classifier", "--json"],
    );
    let described: Value = serde_json::from_str(&described).expect("describe prints JSON");
    assert_eq!(described["model"]["uri"], model.as_str());
    assert_eq!(described["model"]["classes"], json!(["defective", "good"]));
}

/// Runs `cmd args…`, asserting failure; returns stderr.
fn fails(mut cmd: std::process::Command, args: &[&str]) -> String {
    let out = cmd.args(args).output().expect("run tread");
    assert!(!out.status.success(), "tread {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// See: issue 17, "endpoints keep their contract".
#[test]
fn r17_deploy_refuses_contract_change_and_rollback_walks_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let models = dir.path().join("models");
    let two = ["defective", "good"];
    let v1 = pack_model(&models, "v1", &two, 32);
    let v2 = pack_model(&models, "v2", &["defective", "good", "scratched"], 32);
    let v3 = pack_model(&models, "v3", &two, 32);
    let small = pack_model(&models, "v4", &two, 48);
    let server = Server::spawn(tread(&data).arg("serve"));
    let cli = || {
        let mut cmd = tread(&data);
        cmd.env("TREAD_SERVER", &server.url);
        cmd
    };
    let endpoint = ["--endpoint", "tyre"];
    ok(cli(), &[&["deploy", v1.as_str()][..], &endpoint].concat());

    let refused = fails(cli(), &[&["deploy", v2.as_str()][..], &endpoint].concat());
    for shown in [
        "classes [defective, good] → [defective, good, scratched]",
        "now: classes [defective, good]",
        "new: classes [defective, good, scratched]",
        "--allow-contract-change",
    ] {
        assert!(refused.contains(shown), "{refused:?} lacks {shown:?}");
    }
    let refused = fails(
        cli(),
        &[&["deploy", small.as_str()][..], &endpoint].concat(),
    );
    assert!(
        refused.contains("input FP32 [3, 32, 32] → [3, 48, 48]"),
        "{refused}"
    );

    let allow = "--allow-contract-change";
    let changed = ok(
        cli(),
        &[&["deploy", v2.as_str(), allow][..], &endpoint].concat(),
    );
    assert!(
        changed.contains("contract changed (allowed): classes"),
        "{changed}"
    );
    ok(
        cli(),
        &[&["deploy", v3.as_str(), allow][..], &endpoint].concat(),
    );

    // Rollback goes one further back each time: v3 → v2 → v1.
    let back = ok(cli(), &["endpoint", "rollback", "tyre", allow]);
    assert!(back.contains("rolled back to version v2"), "{back}");
    let refused = fails(cli(), &["endpoint", "rollback", "tyre"]);
    assert!(
        refused.contains("rolling back to version v1 would change"),
        "{refused}"
    );
    let back = ok(cli(), &["endpoint", "rollback", "tyre", allow]);
    assert!(back.contains("rolled back to version v1"), "{back}");
    let back = ok(cli(), &["endpoint", "rollback", "tyre", "--to", "v3"]);
    assert!(back.contains("rolled back to version v3"), "{back}");
    let described: Value =
        serde_json::from_str(&ok(cli(), &["endpoint", "describe", "tyre", "--json"]))
            .expect("describe prints JSON");
    let history: Vec<(&str, &str)> = described["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["model_version"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("deploy", "v1"),
            ("deploy", "v2"),
            ("deploy", "v3"),
            ("rollback", "v2"),
            ("rollback", "v1"),
            ("rollback", "v3")
        ]
    );
}

// See: issue 17: --public-inference opens /metrics too, and says so.
#[test]
fn r17_public_inference_says_metrics_is_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for command in ["serve", "up"] {
        let help = ok(tread(&data), &[command, "--help"]);
        let flag = help
            .split("--public-inference")
            .nth(1)
            .expect("--public-inference in the help");
        assert!(flag.contains("/metrics"), "{command}: {help}");
    }
    let port = free_port();
    let mut child = tread(&data)
        .env("TREAD_LOG", "warn")
        .args([
            "serve",
            "--public-inference",
            "--listen",
            &format!("0.0.0.0:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tread serve");
    wait_listening(
        port,
        Duration::from_secs(20),
        "tread serve --public-inference",
    );
    child.kill().expect("stop tread serve");
    let out = child.wait_with_output().expect("tread serve output");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("listening beyond loopback") && warning.contains("/metrics"),
        "{warning}"
    );
}
