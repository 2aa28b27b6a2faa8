//! The `tread s3` admin commands: keys shown once, JSON for scripts, clear errors.

use crate::common::{World, run_err, run_ok};

#[test]
fn user_keys_are_printed_once_and_never_listed() {
    let w = World::create();
    let listing = run_ok(&w.data, &["s3", "user", "list"]);
    assert!(listing.contains("s3user") && listing.contains(&w.key_id));
    assert!(
        !listing.contains(&w.secret),
        "user list must never show secrets"
    );
    let rotated: serde_json::Value = serde_json::from_str(&run_ok(
        &w.data,
        &["s3", "user", "rotate-key", "s3user", "--json"],
    ))
    .expect("json");
    assert_ne!(
        rotated["secret_access_key"].as_str(),
        Some(w.secret.as_str())
    );
    let human = run_ok(&w.data, &["s3", "user", "create", "person"]);
    assert!(human.contains("secret access key:"), "{human}");
}

#[test]
fn admin_mistakes_get_errors_that_say_what_to_do() {
    let w = World::create();
    let err = run_err(
        &w.data,
        &["s3", "bucket", "create", "Bad_Name", "--volume", "vol1"],
    );
    assert!(err.contains("invalid bucket name"), "{err}");
    let err = run_err(
        &w.data,
        &[
            "s3",
            "bucket",
            "create",
            "inner",
            "--volume",
            "vol1",
            "--nas-path",
            "sub",
        ],
    );
    assert!(err.contains("overlap"), "{err}");
    let err = run_err(
        &w.data,
        &["s3", "group", "create", "g", "--policy", "NoSuchPolicy"],
    );
    assert!(err.contains("policy NoSuchPolicy does not exist"), "{err}");
    let bad = w.dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{}}]}"#,
    )
    .expect("write");
    let err = run_err(
        &w.data,
        &[
            "s3",
            "policy",
            "create",
            "p",
            "--file",
            bad.to_str().expect("utf-8"),
        ],
    );
    assert!(err.contains("Condition is not supported"), "{err}");
}

#[test]
fn a_bucket_created_with_a_location_lists_it() {
    let w = World::create();
    let dir = w.dir.path().join("eu");
    let dir = dir.to_str().expect("utf-8 path");
    run_ok(&w.data, &["s3", "volume", "create", "eu", "--path", dir]);
    for (bucket, location) in [("in-eu", "eu-west-1"), ("in-virginia", "us-east-1")] {
        let args = [
            "s3",
            "bucket",
            "create",
            bucket,
            "--volume",
            "eu",
            "--nas-path",
            bucket,
        ];
        run_ok(&w.data, &[&args[..], &["--location", location]].concat());
    }
    let listing = run_ok(&w.data, &["s3", "bucket", "list"]);
    let line = |name: &str| {
        let found = listing
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")));
        found
            .unwrap_or_else(|| panic!("{name} in {listing}"))
            .to_string()
    };
    assert!(line("in-eu").ends_with("\teu-west-1"), "{listing}");
    assert_eq!(
        line("in-virginia").split('\t').count(),
        3,
        "us-east-1 is no constraint: {listing}"
    );
}

#[test]
fn bucket_delete_keeps_the_files() {
    let w = World::create();
    std::fs::write(w.volume.join("kept.txt"), b"nas data").expect("write");
    run_ok(&w.data, &["s3", "bucket", "delete", "fsxn-ontap"]);
    assert!(!run_ok(&w.data, &["s3", "bucket", "list"]).contains("fsxn-ontap"));
    assert_eq!(
        std::fs::read(w.volume.join("kept.txt")).expect("read"),
        b"nas data"
    );
}
