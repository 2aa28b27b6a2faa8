//! The endpoint server over real HTTP on loopback: deploy, predict, the
//! management API and its token, redeploys under load, refused redeploys,
//! rollback, restart, and every kind of bad input.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::{SIZE, TestDir, TestServer, jpeg, jpeg_sized, model_file, model_file_with, png};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tread_serve::BatchOptions;

fn probabilities_sum(answer: &Value) -> f64 {
    answer["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_f64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_then_predict_images_and_json_and_describe() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;

    let (status, view) = server.deploy("tyre", &model).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "InService");
    assert_eq!(view["model"]["version"], "v1");
    assert_eq!(view["model"]["classes"], json!(["defective", "good"]));

    for (content_type, body) in [
        ("image/jpeg", jpeg(0)),
        ("image/png", png(9)),
        ("application/x-image", jpeg(3)),
    ] {
        let (status, answer) = server.invoke("tyre", content_type, body).await;
        assert_eq!(status, 200, "{content_type}: {answer}");
        assert!(
            ["defective", "good"].contains(&answer["class"].as_str().unwrap()),
            "{answer}"
        );
        assert!((probabilities_sum(&answer) - 1.0).abs() < 1e-4, "{answer}");
        assert_eq!(answer["model_version"], "v1");
    }

    let b64 = base64::engine::general_purpose::STANDARD;
    let list = json!([b64.encode(jpeg(1)), { "b64": b64.encode(png(2)) }]);
    let (status, answer) = server
        .invoke("tyre", "application/json", list.to_string().into_bytes())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 2);

    // A preprocessed tensor gives the same answer as the image it came from.
    let preprocess = tread_data::Preprocess {
        size: SIZE,
        ..Default::default()
    };
    let mut tensor = vec![0.0; preprocess.tensor_len()];
    preprocess.load(&jpeg(1), &mut tensor).unwrap();
    let (status, from_tensor) = server
        .invoke(
            "tyre",
            "application/json",
            json!({ "instances": [tensor] }).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{from_tensor}");
    let from_image = &answer["predictions"][0]["probabilities"];
    let from_tensor = &from_tensor["predictions"][0]["probabilities"];
    for class in ["defective", "good"] {
        let (a, b) = (
            from_image[class].as_f64().unwrap(),
            from_tensor[class].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-5, "{class}: {a} vs {b}");
    }

    let (status, described) = server.api(Method::GET, "/api/endpoints/tyre").await;
    assert_eq!(status, 200);
    assert_eq!(described["history"].as_array().unwrap().len(), 1);
    assert_eq!(described["history"][0]["model_uri"], model.as_str());
    let (_, listed) = server.api(Method::GET, "/api/endpoints").await;
    assert_eq!(listed[0]["name"], "tyre");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_needs_the_token_and_inference_on_loopback_does_not() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    let put = |token: Option<&str>| {
        let mut request = server
            .http
            .put(format!("{}/api/endpoints/tyre", server.url))
            .body(json!({ "model": model }).to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(put(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        put(Some("tread_not-the-token"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let (status, _) = server.get("/api/endpoints").await;
    assert_eq!(status, 401);
    assert_eq!(
        put(Some(server.token.secret()))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let (status, _) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);

    let mut truncated = jpeg(0);
    truncated.truncate(truncated.len() / 3);
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "tyre",
            "image/jpeg",
            b"hello, not an image".to_vec(),
            400,
            "not a readable image",
        ),
        ("tyre", "image/jpeg", truncated, 400, "not a readable image"),
        ("tyre", "image/png", pixel_bomb(), 413, "more than the"),
        ("tyre", "text/plain", jpeg(0), 415, "Content-Type"),
        (
            "tyre",
            "application/json",
            b"{not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "tyre",
            "application/json",
            b"[[1, 2, 3]]".to_vec(),
            400,
            "holds 3 values",
        ),
        (
            "tyre",
            "application/json",
            b"[\"%%%\"]".to_vec(),
            400,
            "base64",
        ),
        ("tyre", "application/json", b"[]".to_vec(), 400, "no inputs"),
        (
            "nowhere",
            "image/jpeg",
            jpeg(0),
            404,
            "endpoint nowhere does not exist",
        ),
    ];
    for (endpoint, content_type, body, want, fragment) in cases {
        let (status, answer) = server.invoke(endpoint, content_type, body).await;
        assert_eq!(status, want, "{content_type} {fragment}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
    let (status, answer) = server
        .post_json(
            "/v2/models/tyre/infer",
            &json!({ "inputs": [{ "name": "x", "shape": [1], "datatype": "INT8", "data": [1] }] }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("datatype INT8"));
    let (status, answer) = server.deploy("-not.valid", &model).await;
    assert_eq!(status, 400, "{answer}");

    let (status, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 200, "still serving after bad input: {answer}");
    server.stop().await;
}

/// A PNG that claims 10 000 × 10 000 pixels in a few kilobytes.
fn pixel_bomb() -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 10_000, 10_000);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0u8; 10_000];
    for _ in 0..10_000 {
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
    drop(writer);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_under_load_switches_versions_without_a_failed_request() {
    let dir = TestDir::new();
    let v1 = model_file(dir.path(), "v1", 1);
    let v2 = model_file(dir.path(), "v2", 2);
    let server = Arc::new(TestServer::start(&dir, BatchOptions::default()).await);
    assert_eq!(server.deploy("tyre", &v1).await.0, 200);

    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (server, running) = (server.clone(), running.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while running.load(Ordering::Relaxed) {
                    let (status, answer) = server.invoke("tyre", "image/jpeg", jpeg(c)).await;
                    assert_eq!(
                        status, 200,
                        "a request failed during the redeploy: {answer}"
                    );
                    seen.push(answer["model_version"].as_str().unwrap().to_string());
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, view) = server.deploy("tyre", &v2).await;
    assert_eq!(status, 200, "{view}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for client in clients {
        let seen = client.await.unwrap();
        let switch = seen
            .iter()
            .position(|v| v == "v2")
            .expect("v2 answered after the redeploy");
        assert!(switch > 0, "v1 answered before the redeploy");
        assert!(seen[..switch].iter().all(|v| v == "v1"), "{seen:?}");
        assert!(
            seen[switch..].iter().all(|v| v == "v2"),
            "went back to v1: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_redeploy_is_refused_and_the_old_version_keeps_answering() {
    let dir = TestDir::new();
    let v1 = model_file(dir.path(), "v1", 1);
    let good = std::fs::read(model_file(dir.path(), "v2", 2)).unwrap();
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &v1).await.0, 200);

    let truncated = dir.path().join("truncated.tar.gz");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.tar.gz");
    std::fs::write(&garbage, b"definitely not a model").unwrap();
    let missing = dir.path().join("missing/model.tar.gz");
    for (path, fragment) in [
        (&truncated, "not a usable model"),
        (&garbage, "not a usable model"),
        (&missing, "cannot fetch"),
    ] {
        let (status, answer) = server.deploy("tyre", path.to_str().unwrap()).await;
        assert!(status == 422, "{status}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(fragment),
            "{answer}"
        );
        let (status, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
        assert_eq!(
            (status, answer["model_version"].as_str()),
            (200, Some("v1"))
        );
    }
    let (_, described) = server.api(Method::GET, "/api/endpoints/tyre").await;
    assert_eq!(
        described["history"].as_array().unwrap().len(),
        1,
        "{described}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_previous_model_and_delete_removes_the_endpoint() {
    let dir = TestDir::new();
    let v1 = model_file(dir.path(), "v1", 1);
    let v2 = model_file(dir.path(), "v2", 2);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    let (status, answer) = server
        .api(Method::POST, "/api/endpoints/tyre/rollback")
        .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(server.deploy("tyre", &v1).await.0, 200);
    let (status, answer) = server
        .api(Method::POST, "/api/endpoints/tyre/rollback")
        .await;
    assert_eq!(status, 409, "nothing to roll back to: {answer}");
    assert_eq!(server.deploy("tyre", &v2).await.0, 200);

    let (status, view) = server
        .api(Method::POST, "/api/endpoints/tyre/rollback")
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["model"]["version"], "v1");
    let (_, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(answer["model_version"], "v1");
    let actions: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["deploy", "deploy", "rollback"]);

    let (status, _) = server.api(Method::DELETE, "/api/endpoints/tyre").await;
    assert_eq!(status, 204);
    let (status, _) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 404);
    let (status, _) = server.api(Method::DELETE, "/api/endpoints/tyre").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_come_back_with_their_models_after_a_restart() {
    let dir = TestDir::new();
    let v1 = model_file(dir.path(), "v1", 1);
    let v2 = model_file(dir.path(), "v2", 2);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("a", &v1).await.0, 200);
    assert_eq!(server.deploy("b", &v1).await.0, 200);
    assert_eq!(server.deploy("b", &v2).await.0, 200);
    server.stop().await;

    let server = TestServer::start(&dir, BatchOptions::default()).await;
    for (endpoint, version) in [("a", "v1"), ("b", "v2")] {
        let (status, answer) = server.invoke(endpoint, "image/jpeg", jpeg(0)).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["model_version"], version);
    }
    let (status, ready) = server.get("/v2/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    server.stop().await;

    // A model that vanished while the server was down: that endpoint says
    // why, the others serve.
    std::fs::remove_file(&v2).unwrap();
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    let (status, answer) = server.invoke("b", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no model loaded"),
        "{answer}"
    );
    assert_eq!(server.invoke("a", "image/jpeg", jpeg(0)).await.0, 200);
    assert_eq!(server.get("/v2/health/ready").await.0, 503);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_arriving_together_share_forward_passes() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let batching = BatchOptions {
        max_batch: 8,
        max_wait: Duration::from_millis(200),
    };
    let server = Arc::new(TestServer::start(&dir, batching).await);
    assert_eq!(server.deploy("tyre", &model).await.0, 200);
    let requests: Vec<_> = (0..8)
        .map(|c| {
            let server = server.clone();
            tokio::spawn(async move { server.invoke("tyre", "image/jpeg", jpeg(c)).await.0 })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let (_, metrics) = server.get("/metrics").await;
    let passes = metric(
        &metrics,
        "tread_inference_batch_size_count{endpoint=\"tyre\"}",
    );
    let images = metric(
        &metrics,
        "tread_inference_batch_size_sum{endpoint=\"tyre\"}",
    );
    assert_eq!(images, 8.0, "{metrics}");
    assert!(passes < 8.0, "8 requests took {passes} forward passes");
    assert_eq!(
        metric(
            &metrics,
            "tread_inference_requests_total{endpoint=\"tyre\"}"
        ),
        8.0
    );
    assert!(
        metrics.contains("tread_endpoint_model{endpoint=\"tyre\",version=\"v1\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("tread_inference_latency_seconds_bucket"),
        "{metrics}"
    );
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in {text}"))
}

fn error_of(answer: &Value) -> &str {
    answer["error"].as_str().unwrap_or_default()
}

fn versions_answering(answer: &Value) -> (&str, usize) {
    (
        answer["model_version"].as_str().unwrap_or_default(),
        answer["probabilities"].as_object().map_or(0, |p| p.len()),
    )
}

// See: issue 17, "endpoints keep their contract".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_deploy_refuses_class_change() {
    let dir = TestDir::new();
    let v1 = model_file(dir.path(), "v1", 1);
    let three = ["defective", "good", "scratched"];
    let v2 = model_file_with(dir.path(), "v2", 2, &three, SIZE);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &v1).await.0, 200);

    let (status, answer) = server.deploy("tyre", &v2).await;
    assert_eq!(status, 409, "{answer}");
    let message = error_of(&answer);
    for shown in [
        "classes [defective, good] → [defective, good, scratched]",
        "now: classes [defective, good]; input FP32 [3, 32, 32]",
        "new: classes [defective, good, scratched]; input FP32 [3, 32, 32]",
        "--allow-contract-change",
    ] {
        assert!(message.contains(shown), "{message:?} lacks {shown:?}");
    }
    assert_eq!(
        answer["contract"]["current"]["classes"],
        json!(["defective", "good"])
    );
    assert_eq!(answer["contract"]["new"]["classes"], json!(three));
    let (_, predicted) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(versions_answering(&predicted), ("v1", 2));

    // Asked for explicitly: it deploys, and the history says what changed.
    let allowed = json!({ "model": v2, "allow_contract_change": true });
    let (status, view) = server.deploy_with("tyre", allowed).await;
    assert_eq!(status, 200, "{view}");
    let latest = &view["history"][1];
    assert_eq!(latest["model_version"], "v2");
    assert!(
        latest["contract_change"]
            .as_str()
            .unwrap_or_default()
            .starts_with("classes [defective, good] → [defective, good, scratched]"),
        "{view}"
    );
    assert_eq!(latest["contract"]["classes"], json!(three));
    let (_, predicted) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(versions_answering(&predicted), ("v2", 3));

    // Rolling back across that change changes the contract back: refused too.
    let (status, answer) = server.rollback("tyre", json!({})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        error_of(&answer).contains("rolling back to version v1"),
        "{answer}"
    );
    let (status, view) = server
        .rollback("tyre", json!({ "allow_contract_change": true }))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["model"]["version"], "v1");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_deploy_refuses_input_change() {
    let dir = TestDir::new();
    let v1 = model_file(dir.path(), "v1", 1);
    let wider = model_file_with(dir.path(), "v2", 2, &["defective", "good"], 48);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &v1).await.0, 200);

    let (status, answer) = server.deploy("tyre", &wider).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        error_of(&answer).contains("input FP32 [3, 32, 32] → [3, 48, 48]"),
        "{answer}"
    );
    assert_eq!(answer["contract"]["new"]["input_shape"], json!([3, 48, 48]));
    // Tensor clients keep the shape they were built for.
    let (_, meta) = server.get("/v2/models/tyre").await;
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 3, SIZE, SIZE]));
    let (_, described) = server.api(Method::GET, "/api/endpoints/tyre").await;
    assert_eq!(described["history"].as_array().unwrap().len(), 1);

    // The same model again, or a retrained one with the same contract, deploys.
    let same = model_file(dir.path(), "v3", 3);
    assert_eq!(server.deploy("tyre", &same).await.0, 200);
    server.stop().await;

    // After a restart the contract is still what the endpoint promised.
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &wider).await.0, 409);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_rollback_walks_back_through_the_history() {
    let dir = TestDir::new();
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    for (n, version) in ["v1", "v2", "v3"].into_iter().enumerate() {
        let model = model_file(dir.path(), version, n as u64 + 1);
        assert_eq!(server.deploy("tyre", &model).await.0, 200);
    }
    let serving = async || {
        let (_, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
        answer["model_version"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // Again and again one step further back, where it used to toggle.
    for want in ["v2", "v1"] {
        let (status, view) = server.rollback("tyre", json!({})).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["model"]["version"], want);
        assert_eq!(serving().await, want);
    }
    let (status, answer) = server.rollback("tyre", json!({})).await;
    assert_eq!(status, 409, "nothing further back: {answer}");

    let (status, view) = server.rollback("tyre", json!({ "to": "v3" })).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(serving().await, "v3");
    let last = &view["history"][5];
    assert_eq!(
        (last["action"].as_str(), last["restores"].as_i64()),
        (Some("rollback"), Some(3))
    );
    let (status, answer) = server.rollback("tyre", json!({ "to": "v9" })).await;
    assert_eq!(status, 404, "{answer}");
    assert!(error_of(&answer).contains("v1, v2, v3"), "{answer}");
    let (status, _) = server.rollback("tyre", json!({ "to": "v3" })).await;
    assert_eq!(status, 409, "already serving v3");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_bearer_scheme_is_case_insensitive() {
    let dir = TestDir::new();
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = server
            .http
            .get(format!("{}/api/endpoints", server.url))
            .header(
                "authorization",
                format!("{scheme} {}", server.token.secret()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_unknown_v2_models_and_oversized_bodies_are_counted_as_errors() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);
    let request =
        json!({ "inputs": [{ "name": "x", "shape": [1], "datatype": "BYTES", "data": ["AA=="] }] });
    let (status, _) = server.post_json("/v2/models/nowhere/infer", &request).await;
    assert_eq!(status, 404);
    let (status, _) = server
        .post_json("/v2/models/tyre/versions/v0/infer", &request)
        .await;
    assert_eq!(status, 404);
    let oversized = vec![0u8; tread_serve::http::MAX_BODY_BYTES + 1];
    let (status, answer) = server.invoke("tyre", "image/jpeg", oversized).await;
    assert_eq!(status, 413, "{answer}");
    assert!(error_of(&answer).contains("larger than 64 MiB"), "{answer}");

    let (_, metrics) = server.get("/metrics").await;
    for (series, want) in [
        (
            "tread_inference_errors_total{endpoint=\"(unknown)\",status=\"404\"}",
            1.0,
        ),
        (
            "tread_inference_errors_total{endpoint=\"tyre\",status=\"404\"}",
            1.0,
        ),
        (
            "tread_inference_errors_total{endpoint=\"tyre\",status=\"413\"}",
            1.0,
        ),
        ("tread_inference_requests_total{endpoint=\"tyre\"}", 2.0),
    ] {
        assert_eq!(metric(&metrics, series), want, "{series}");
    }
    server.stop().await;
}

/// Asserts a refusal: its status, a JSON body whose `error` names the
/// problem, and nothing else in place of that body.
/// Sends a request with a body of `len` zero bytes on a raw connection and
/// returns the answer's status, content type and JSON. The server may answer
/// 413 and close before the body is sent; an HTTP client that writes the
/// whole body before reading then sees only a reset, so here the body is
/// written in the background (its errors are expected) while the answer is
/// read.
async fn oversized(
    base: &str,
    method: &str,
    path: &str,
    headers: &str,
    len: usize,
) -> (u16, Option<String>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\n{headers}content-length: {len}\r\nconnection: close\r\n\r\n"
    );
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..len.div_ceil(chunk.len()) {
            writer.write_all(&chunk).await?;
        }
        std::io::Result::Ok(())
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    let (status, content_type, body) = loop {
        let read = reader.read(&mut buffer).await.unwrap_or(0);
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    })
                    .map(|(_, v)| v.trim().to_string())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= length || read == 0 {
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                break (status, header("content-type"), body.to_string());
            }
        }
        assert!(read > 0, "connection closed before an answer: {text:?}");
    };
    sender.abort();
    (
        status,
        content_type,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn assert_refused(got: (u16, &Value), status: u16, fragment: &str) {
    let (got_status, answer) = got;
    assert_eq!(got_status, status, "{answer}");
    let message = answer["error"].as_str();
    assert!(
        message.is_some_and(|m| m.contains(fragment)),
        "want a JSON error containing {fragment:?}, got {answer}"
    );
}

// See: issue 14, "answers only to inputs the model can take". The image
// decoder fills a JPEG whose data stops early with grey and answers a
// prediction for a picture nobody sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_a_truncated_jpeg_is_refused() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);

    let whole = jpeg_sized(256, 192);
    assert_eq!(
        server.invoke("tyre", "image/jpeg", whole.clone()).await.0,
        200
    );
    // Cut in the middle of the scan data, and cut by the end marker alone.
    for cut in [whole.len() * 3 / 4, whole.len() - 2] {
        let (status, answer) = server
            .invoke("tyre", "image/jpeg", whole[..cut].to_vec())
            .await;
        assert_refused((status, &answer), 400, "truncated");
        // The same bytes as a base64 image in JSON.
        let b64 = base64::engine::general_purpose::STANDARD.encode(&whole[..cut]);
        let (status, answer) = server
            .invoke(
                "tyre",
                "application/json",
                json!([b64]).to_string().into_bytes(),
            )
            .await;
        assert_refused((status, &answer), 400, "truncated");
    }

    let (status, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 200, "still serving after bad input: {answer}");
    server.stop().await;
}

// See: issue 14. A tensor laid out [s, s, 3] holds as many values as the
// [3, s, s] the model takes, and was read as if it were one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_a_json_tensor_of_another_layout_is_refused() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);

    let s = SIZE as usize;
    let hwc = vec![vec![vec![0.5f32; 3]; s]; s];
    let chw = vec![vec![vec![0.5f32; s]; s]; 3];
    let mut ragged = chw.clone();
    ragged[1][4].pop();
    ragged[2][0].push(0.5);
    let takes = "this model takes [3, 32, 32]";
    for (body, fragments) in [
        (json!([hwc]), ["shape [32, 32, 3]", takes]),
        (json!({ "instances": [hwc] }), ["shape [32, 32, 3]", takes]),
        (json!([chw, hwc]), ["input 1", takes]),
        (json!([[chw]]), ["shape [1, 3, 32, 32]", takes]),
        (json!([ragged]), ["input 0", "not rectangular"]),
    ] {
        let (status, answer) = server
            .invoke("tyre", "application/json", body.to_string().into_bytes())
            .await;
        for fragment in fragments {
            assert_refused((status, &answer), 400, fragment);
        }
    }

    // The layout the model takes, nested or flat, is still answered.
    let flat: Vec<f32> = chw.iter().flatten().flatten().copied().collect();
    for body in [json!([chw]), json!([flat])] {
        let (status, answer) = server
            .invoke("tyre", "application/json", body.to_string().into_bytes())
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 200, "still serving after bad input: {answer}");
    server.stop().await;
}

// See: issue 14. A body over the limit was refused in plain text, and
// routing's and extractors' refusals were plain or empty, where every
// other refusal is `{"error": "..."}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_every_refusal_is_a_json_error() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);
    let send = async |request: reqwest::RequestBuilder| {
        let response = request.send().await.unwrap();
        let allow = response.headers().get("allow").cloned();
        let content_type = response.headers().get("content-type").cloned();
        let (status, answer) = common::status_and_json(response).await;
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{status}: {answer}"
        );
        (status, answer, allow)
    };
    let url = |path: &str| format!("{}{path}", server.url);

    let token = server.token.secret();
    let auth = format!("authorization: Bearer {token}\r\n");
    for (method, path, headers) in [
        (
            "POST",
            "/endpoints/tyre/invocations",
            "content-type: image/jpeg\r\n",
        ),
        (
            "POST",
            "/v2/models/tyre/infer",
            "content-type: application/json\r\n",
        ),
        ("PUT", "/api/endpoints/other", auth.as_str()),
        ("POST", "/api/endpoints/tyre/rollback", auth.as_str()),
    ] {
        let (status, content_type, answer) =
            oversized(&server.url, method, path, headers, 70_000_000).await;
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "{answer}"
        );
        assert_refused((status, &answer), 413, "larger than 64 MiB");
    }

    let (status, answer, allow) = send(server.http.get(url("/endpoints/tyre/invocations"))).await;
    assert_refused((status, &answer), 405, "GET");
    assert_eq!(
        allow
            .and_then(|v| v.to_str().ok().map(str::to_owned))
            .as_deref(),
        Some("POST")
    );
    let (status, answer, _) = send(server.http.delete(url("/v2/models/tyre/infer"))).await;
    assert_refused((status, &answer), 405, "POST");
    let (status, answer, _) = send(server.http.get(url("/no/such/route"))).await;
    assert_refused((status, &answer), 404, "no such route");
    // A name that is not UTF-8 is refused by the path extractor.
    let (status, answer, _) = send(
        server
            .http
            .post(url("/endpoints/%FF/invocations"))
            .header("content-type", "image/jpeg")
            .body(jpeg(0)),
    )
    .await;
    assert_refused((status, &answer), 400, "");
    let (status, answer, _) = send(
        server
            .http
            .post(url("/endpoints/tyre/invocations"))
            .header("content-type", "text/csv")
            .body("1,2,3"),
    )
    .await;
    assert_refused((status, &answer), 415, "Content-Type");

    let (status, answer) = server.invoke("tyre", "image/jpeg", jpeg(0)).await;
    assert_eq!(status, 200, "still serving after bad input: {answer}");
    server.stop().await;
}
