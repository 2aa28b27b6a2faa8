//! The Open Inference Protocol (KServe v2) routes, and ONNX models trained
//! elsewhere, over real HTTP on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::{SIZE, TestDir, TestServer, jpeg, model_file};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tread_serve::BatchOptions;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn output<'a>(answer: &'a Value, name: &str) -> &'a Value {
    answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_health_metadata_and_infer_with_tensors_and_images() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v7", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);

    let (status, body) = server.get("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["name"],
        "tread"
    );
    assert_eq!(server.get("/v2/health/live").await.0, 200);
    assert_eq!(server.get("/v2/health/ready").await.0, 200);
    assert_eq!(server.get("/ping").await.0, 200);
    for path in ["/v2/models/tyre", "/v2/models/tyre/versions/v7"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let meta: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(meta["versions"], json!(["v7"]));
        assert_eq!(meta["inputs"][0]["shape"], json!([-1, 3, SIZE, SIZE]));
    }
    assert_eq!(server.get("/v2/models/tyre/ready").await.0, 200);
    assert_eq!(server.get("/v2/models/tyre/versions/v7/ready").await.0, 200);
    assert_eq!(server.get("/v2/models/tyre/versions/v1/ready").await.0, 404);
    assert_eq!(server.get("/v2/models/other").await.0, 404);

    // Two preprocessed images in one FP32 tensor, nested as clients send.
    let preprocess = tread_data::Preprocess {
        size: SIZE,
        ..Default::default()
    };
    let mut first = vec![0.0; preprocess.tensor_len()];
    preprocess.load(&jpeg(1), &mut first).unwrap();
    let second = vec![0.25; preprocess.tensor_len()];
    let data: Vec<f32> = first.iter().chain(&second).copied().collect();
    let request = json!({
        "id": "req-1",
        "inputs": [{ "name": "input", "shape": [2, 3, SIZE, SIZE], "datatype": "FP32", "data": data }],
    });
    let (status, answer) = server
        .post_json("/v2/models/tyre/versions/v7/infer", &request)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["id"].as_str(),
            answer["model_name"].as_str(),
            answer["model_version"].as_str()
        ),
        (Some("req-1"), Some("tyre"), Some("v7"))
    );
    let probabilities = output(&answer, "probabilities");
    assert_eq!(probabilities["shape"], json!([2, 2]));
    let p: Vec<f64> = probabilities["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        (p[0] + p[1] - 1.0).abs() < 1e-4 && (p[2] + p[3] - 1.0).abs() < 1e-4,
        "{p:?}"
    );
    let classes = output(&answer, "class");
    assert_eq!(classes["datatype"], "BYTES");
    let best = if p[0] > p[1] { "defective" } else { "good" };
    assert_eq!(classes["data"][0], best);

    // The same first image as BYTES (base64), asking for the class only.
    let image = base64::engine::general_purpose::STANDARD.encode(jpeg(1));
    let request = json!({
        "inputs": [{ "name": "image", "shape": [1], "datatype": "BYTES", "data": [image] }],
        "outputs": [{ "name": "class" }],
    });
    let (status, answer) = server.post_json("/v2/models/tyre/infer", &request).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(output(&answer, "class")["data"][0], best);

    let wrong_shape = json!({ "inputs": [{ "name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": vec![0.0; 12] }] });
    let (status, answer) = server
        .post_json("/v2/models/tyre/infer", &wrong_shape)
        .await;
    assert_eq!(status, 400, "{answer}");
    let unknown_output = json!({ "inputs": request["inputs"], "outputs": [{ "name": "logits" }] });
    let (status, answer) = server
        .post_json("/v2/models/tyre/infer", &unknown_output)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("unknown output"));
    let (status, _) = server
        .post_json("/v2/models/tyre/versions/v1/infer", &request)
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onnx_classifier_deploys_and_answers_what_numpy_computes() {
    let dir = TestDir::new();
    let models = dir.path().join("onnx");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::copy(fixture("tiny.onnx"), models.join("model.onnx")).unwrap();
    std::fs::copy(fixture("tiny.json"), models.join("model.json")).unwrap();
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    let uri = models.join("model.onnx");
    let (status, view) = server.deploy("tiny", uri.to_str().unwrap()).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["model"]["architecture"], "onnx");
    assert_eq!(view["model"]["version"], "tiny-onnx-1");

    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny-expected.json")).unwrap())
            .unwrap();
    let n = 3 * 32 * 32;
    let full: Vec<f32> = vec![0.5; n];
    let ramp: Vec<f32> = (0..n)
        .map(|i| -2.0 + 4.0 * i as f32 / (n - 1) as f32)
        .collect();
    let (status, answer) = server
        .invoke(
            "tiny",
            "application/json",
            json!([full, ramp]).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    for (row, logits) in expected["logits"].as_array().unwrap().iter().enumerate() {
        let (a, b) = (logits[0].as_f64().unwrap(), logits[1].as_f64().unwrap());
        let want_defective = 1.0 / (1.0 + (b - a).exp());
        let got = answer["predictions"][row]["probabilities"]["defective"]
            .as_f64()
            .unwrap();
        assert!(
            (got - want_defective).abs() < 1e-4,
            "row {row}: {got} vs {want_defective}"
        );
    }
    let (status, answer) = server.invoke("tiny", "image/jpeg", jpeg(4)).await;
    assert_eq!(status, 200, "{answer}");

    // A broken graph, or one without its JSON, is refused; the model stays.
    let broken = models.join("broken.onnx");
    std::fs::write(&broken, b"\x08\x07not a protobuf graph").unwrap();
    std::fs::copy(fixture("tiny.json"), models.join("broken.json")).unwrap();
    let (status, answer) = server.deploy("tiny", broken.to_str().unwrap()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("ONNX"),
        "{answer}"
    );
    let lonely = models.join("lonely.onnx");
    std::fs::copy(fixture("tiny.onnx"), &lonely).unwrap();
    let (status, answer) = server.deploy("tiny", lonely.to_str().unwrap()).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("lonely.json"),
        "{answer}"
    );
    assert_eq!(server.invoke("tiny", "image/jpeg", jpeg(4)).await.0, 200);
    server.stop().await;
}

/// A body in the binary tensor extension: the JSON, then each tensor.
fn binary_body(header: &Value, tensors: &[&[u8]]) -> (usize, Vec<u8>) {
    let mut body = header.to_string().into_bytes();
    let length = body.len();
    for tensor in tensors {
        body.extend_from_slice(tensor);
    }
    (length, body)
}

/// Posts a binary-extension body; answers the status, the JSON part and
/// the bytes after it.
async fn post_binary(
    server: &TestServer,
    path: &str,
    header: &Value,
    tensors: &[&[u8]],
) -> (u16, Value, Vec<u8>) {
    let (length, body) = binary_body(header, tensors);
    let response = server
        .http
        .post(format!("{}{path}", server.url))
        .header("Inference-Header-Content-Length", length.to_string())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let json_length = response
        .headers()
        .get("inference-header-content-length")
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    let bytes = response.bytes().await.unwrap();
    let split = json_length.unwrap_or(bytes.len());
    let json = serde_json::from_slice(&bytes[..split]).unwrap();
    (status, json, bytes[split..].to_vec())
}

fn le_floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// A BYTES tensor: each element's 4-byte little-endian length, then it.
fn length_prefixed(items: &[&[u8]]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|i| {
            (i.len() as u32)
                .to_le_bytes()
                .into_iter()
                .chain(i.iter().copied())
        })
        .collect()
}

// See: issue 17; tritonclient sends binary_data=True by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_v2_binary_tensor_extension_in_and_out() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v7", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);
    let (_, meta) = server.get("/v2").await;
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["extensions"], json!(["binary_tensor_data"]));

    let preprocess = tread_data::Preprocess {
        size: SIZE,
        ..Default::default()
    };
    let mut first = vec![0.0f32; preprocess.tensor_len()];
    preprocess.load(&jpeg(1), &mut first).unwrap();
    let values: Vec<f32> = first
        .iter()
        .chain(&vec![0.25; first.len()])
        .copied()
        .collect();
    let (_, reference) = server
        .post_json(
            "/v2/models/tyre/infer",
            &json!({ "inputs": [{ "name": "input", "shape": [2, 3, SIZE, SIZE], "datatype": "FP32", "data": values }] }),
        )
        .await;
    let want: Vec<f64> = output(&reference, "probabilities")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want_class = output(&reference, "class")["data"].clone();

    // FP32 input as binary; probabilities back as binary, the class as JSON.
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "id": "bin-1",
        "inputs": [{ "name": "input", "shape": [2, 3, SIZE, SIZE], "datatype": "FP32",
                     "parameters": { "binary_data_size": raw.len() } }],
        "outputs": [{ "name": "probabilities", "parameters": { "binary_data": true } },
                    { "name": "class", "parameters": { "binary_data": false } }],
    });
    let (status, answer, tail) =
        post_binary(&server, "/v2/models/tyre/infer", &header, &[&raw]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "bin-1");
    let probabilities = output(&answer, "probabilities");
    assert_eq!(probabilities["parameters"]["binary_data_size"], 16);
    assert!(probabilities.get("data").is_none(), "{answer}");
    assert_eq!(tail.len(), 16);
    let got = le_floats(&tail);
    for (g, w) in got.iter().zip(&want) {
        assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    assert_eq!(output(&answer, "class")["data"], want_class);

    // Raw image bytes as a BYTES input, every output binary by default.
    let image = jpeg(1);
    let elements = length_prefixed(&[&image]);
    let header = json!({
        "inputs": [{ "name": "image", "shape": [1], "datatype": "BYTES",
                     "parameters": { "binary_data_size": elements.len() } }],
        "parameters": { "binary_data_output": true },
    });
    let (status, answer, tail) =
        post_binary(&server, "/v2/models/tyre/infer", &header, &[&elements]).await;
    assert_eq!(status, 200, "{answer}");
    let sizes: Vec<u64> = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["parameters"]["binary_data_size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>() as usize, tail.len(), "{answer}");
    let (probabilities, class) = tail.split_at(sizes[0] as usize);
    let from_image = le_floats(probabilities);
    assert!(
        (f64::from(from_image[0]) - want[0]).abs() < 1e-5,
        "{from_image:?} vs {want:?}"
    );
    let name = want_class[0].as_str().unwrap().as_bytes();
    assert_eq!(class, length_prefixed(&[name]), "{answer}");

    // A header that lies, or bytes no input claims: a 400 that says so.
    let bad = [
        (raw.len() + 1, &raw[..], "only"),
        (raw.len() - 4, &raw[..], "belong to no input"),
    ];
    for (declared, tensor, fragment) in bad {
        let header = json!({ "inputs": [{ "name": "input", "shape": [2, 3, SIZE, SIZE], "datatype": "FP32",
                                          "parameters": { "binary_data_size": declared } }] });
        let (status, answer, _) =
            post_binary(&server, "/v2/models/tyre/infer", &header, &[tensor]).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(fragment),
            "{answer}"
        );
    }
    server.stop().await;
}

/// Posts `input` (its `data` as JSON) and then the same input with its
/// data as binary FP32; both must be refused with 400 and a JSON error
/// naming `fragment`.
async fn assert_v2_refused(server: &TestServer, input: Value, values: &[f32], fragment: &str) {
    let (status, answer) = server
        .post_json("/v2/models/tyre/infer", &json!({ "inputs": [input] }))
        .await;
    assert_eq!(status, 400, "JSON data: {answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "JSON data: {answer}");

    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut input = input;
    let fields = input.as_object_mut().unwrap();
    fields.remove("data");
    fields.insert(
        "parameters".into(),
        json!({ "binary_data_size": raw.len() }),
    );
    let header = json!({ "inputs": [input] });
    let (status, answer, _) = post_binary(server, "/v2/models/tyre/infer", &header, &[&raw]).await;
    assert_eq!(status, 400, "binary data: {answer}");
    let message = answer["error"].as_str().unwrap_or_default();
    assert!(message.contains(fragment), "binary data: {answer}");
}

/// A good v2 request still gets its answer.
async fn assert_v2_answers(server: &TestServer) {
    let values = vec![0.25f32; 3 * (SIZE * SIZE) as usize];
    let request = json!({ "inputs": [{ "name": "input", "shape": [1, 3, SIZE, SIZE], "datatype": "FP32", "data": values }] });
    let (status, answer) = server.post_json("/v2/models/tyre/infer", &request).await;
    assert_eq!(status, 200, "still serving after bad input: {answer}");
}

// See: issue 14. [1, s, s, 3] holds as many values as [1, 3, s, s] and was
// read as if it were that layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_v2_input_must_be_declared_n_3_size_size() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);

    let s = SIZE as usize;
    let values = vec![0.25f32; 3 * s * s];
    for shape in [
        json!([1, SIZE, SIZE, 3]),
        json!([SIZE, SIZE, 3]),
        json!([3 * SIZE * SIZE]),
        json!([1, 1, 3, SIZE, SIZE]),
    ] {
        let input = json!({ "name": "input", "shape": shape, "datatype": "FP32", "data": values });
        assert_v2_refused(&server, input, &values, &format!("[n, 3, {SIZE}, {SIZE}]")).await;
    }
    // Nested data must be laid out as its declared shape says.
    let hwc = vec![vec![vec![vec![0.25f32; 3]; s]; s]];
    let input =
        json!({ "name": "input", "shape": [1, 3, SIZE, SIZE], "datatype": "FP32", "data": hwc });
    let (status, answer) = server
        .post_json("/v2/models/tyre/infer", &json!({ "inputs": [input] }))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("[1, {SIZE}, {SIZE}, 3]")),
        "{answer}"
    );

    // Nested data in the declared layout, and [3, s, s] for one image, are
    // still answered.
    let chw = vec![vec![vec![vec![0.25f32; s]; s]; 3]];
    for (shape, data) in [
        (json!([1, 3, SIZE, SIZE]), json!(chw)),
        (json!([3, SIZE, SIZE]), json!(chw[0])),
    ] {
        let request = json!({ "inputs": [{ "name": "input", "shape": shape, "datatype": "FP32", "data": data }] });
        let (status, answer) = server.post_json("/v2/models/tyre/infer", &request).await;
        assert_eq!(status, 200, "{shape}: {answer}");
    }
    assert_v2_answers(&server).await;
    server.stop().await;
}

// See: issue 14. Four 16×16 images hold as many values as one 32×32 image
// and were read as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_v2_input_of_another_image_size_is_refused() {
    let dir = TestDir::new();
    let model = model_file(dir.path(), "v1", 1);
    let server = TestServer::start(&dir, BatchOptions::default()).await;
    assert_eq!(server.deploy("tyre", &model).await.0, 200);

    let half = SIZE / 2;
    let values = vec![0.25f32; (4 * 3 * half * half) as usize];
    assert_eq!(values.len(), 3 * (SIZE * SIZE) as usize);
    for shape in [
        json!([4, 3, half, half]),
        json!([1, 3, 2 * SIZE, half]),
        json!([0, 3, SIZE, SIZE]),
    ] {
        let values = if shape[0] == 0 {
            vec![]
        } else {
            values.clone()
        };
        let input = json!({ "name": "input", "shape": shape, "datatype": "FP32", "data": values });
        assert_v2_refused(&server, input, &values, &format!("[n, 3, {SIZE}, {SIZE}]")).await;
    }
    assert_v2_answers(&server).await;
    server.stop().await;
}
