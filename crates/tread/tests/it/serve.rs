//! The serve part end to end: a model trained from the bucket by the train
//! part, deployed with `tread deploy` to `tread serve`, asked with `tread
//! predict` (a file and an s3:// key), over SageMaker-style HTTP and the
//! KServe v2 protocol, and listed with `tread endpoint`.

use crate::common::{Server, World, block_on, ok};
use base64::Engine as _;
use serde_json::{Value, json};

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
