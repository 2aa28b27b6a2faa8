//! The data and train parts end to end: synthesise a small tyre set into a
//! NAS bucket over S3, inspect it, train from the bucket, store the model in
//! the bucket, load it back and evaluate it.

use crate::common::{Server, World};
use std::process::Output;

/// `tread args…` as s3user against the store.
fn tread_s3(world: &World, server: &Server, args: &[&str]) -> Output {
    world
        .tread_as_s3user(&server.url)
        .args(args)
        .output()
        .expect("run tread")
}

fn ok(world: &World, server: &Server, args: &[&str]) -> (String, String) {
    let out = tread_s3(world, server, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tread {args:?} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn train_from_the_bucket_store_the_model_and_evaluate_it() {
    let world = World::create();
    let server = Server::start(&world.data);
    let data = "s3://fsxn-ontap/dataset/tyre";
    ok(
        &world,
        &server,
        &[
            "data", "synth", data, "--count", "64", "--seed", "7", "--size", "64",
        ],
    );
    // A corrupt upload must be skipped and reported, not stop anything.
    let corrupt = world.volume.join("dataset/tyre/good/corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 not really a jpeg").expect("write corrupt image");

    let (report, _) = ok(&world, &server, &["data", "inspect", data]);
    assert!(report.contains("65 images in 2 classes"), "{report}");
    assert!(
        report.contains("defective") && report.contains("good"),
        "{report}"
    );
    assert!(
        report.contains("unreadable: 1") && report.contains("good/corrupt.jpg"),
        "{report}"
    );

    let (stdout, stderr) = ok(
        &world,
        &server,
        &[
            "train",
            data,
            "--model",
            "resnet-small",
            "--size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--split",
            "49,16",
            "--seed",
            "7",
            "--out",
            "s3://fsxn-ontap/models/tyre-quality/",
        ],
    );
    assert!(stderr.contains("epoch 1:"), "{stderr}");
    assert!(
        stdout.contains("held-out images") && stdout.contains("confusion"),
        "{stdout}"
    );
    let model_uri = stdout
        .lines()
        .find_map(|l| l.strip_prefix("model "))
        .expect("train prints the model URI")
        .to_string();
    let key = model_uri
        .strip_prefix("s3://fsxn-ontap/")
        .expect("model in the bucket");
    assert!(
        key.starts_with("models/tyre-quality/") && key.ends_with("/model.tar.gz"),
        "{key}"
    );

    // On the NAS the model is a plain file beside its metrics.
    let bytes = std::fs::read(world.volume.join(key)).expect("model.tar.gz on the volume");
    let model = tread_train::unpack(&bytes).expect("artifact loads");
    assert_eq!(model.card.classes, ["defective", "good"]);
    assert_eq!(
        (
            model.card.dataset.images,
            model.card.dataset.train,
            model.card.dataset.test
        ),
        (65, 49, 16)
    );
    assert!(model.card.dataset.digest.starts_with("sha256:"));
    assert_eq!(
        model.card.dataset.skipped.len(),
        1,
        "{:?}",
        model.card.dataset.skipped
    );
    assert_eq!(model.card.history.len(), 1);
    let metrics = world
        .volume
        .join(key.replace("model.tar.gz", "metrics.jsonl"));
    assert_eq!(
        std::fs::read_to_string(metrics)
            .expect("metrics.jsonl")
            .lines()
            .count(),
        2
    );

    let (table, stderr) = ok(&world, &server, &["eval", &model_uri, data]);
    assert!(stderr.contains("held-out split"), "{stderr}");
    let accuracy = format!("accuracy {:.2} %", model.card.evaluation.accuracy * 100.0);
    assert!(
        table.contains(&accuracy),
        "eval must reproduce the stored {accuracy}: {table}"
    );
}

#[test]
fn corrupt_model_is_refused_with_a_clear_error() {
    let world = World::create();
    let server = Server::start(&world.data);
    let model = world.dir.path().join("model.tar.gz");
    std::fs::write(&model, b"\x1f\x8b\x08\x00 truncated gzip").expect("write");
    let out = tread_s3(
        &world,
        &server,
        &[
            "eval",
            model.to_str().expect("utf-8"),
            "s3://fsxn-ontap/dataset",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a valid model.tar.gz"), "{stderr}");
}
