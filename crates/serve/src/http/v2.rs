//! The Open Inference Protocol (KServe v2) over REST, so standard v2
//! clients (Triton's `tritonclient.http`, KServe's SDK) work unchanged.
//! Each endpoint is a v2 model; its version is the model's version id.

use crate::endpoints::Deployment;
use crate::http::error::ApiError;
use crate::http::inputs::{Payload, flatten, infer, items_payload, prepare};
use crate::http::{ServerState, timed};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The output holding class probabilities, `[n, classes]` FP32.
const PROBABILITIES: &str = "probabilities";
/// The output holding the predicted class names, `[n]` BYTES.
const CLASS: &str = "class";

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "tread", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))
}

/// `GET /v2/health/live`.
pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// `GET /v2/health/ready`: every endpoint has its model loaded.
pub async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    let ready = state.endpoints.all_in_service();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready }))).into_response()
}

/// `GET /v2/models/{name}[/versions/{v}]`.
pub async fn model_metadata(
    State(state): State<Arc<ServerState>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let deployment = resolve(&state, &path)?;
    let info = &deployment.info;
    let size = info.input.size;
    Ok(Json(json!({
        "name": deployment.endpoint,
        "versions": [info.version],
        "platform": format!("tread_{}", info.architecture),
        "inputs": [{ "name": "input", "datatype": "FP32", "shape": [-1, 3, size, size] }],
        "outputs": [
            { "name": PROBABILITIES, "datatype": "FP32", "shape": [-1, info.classes.len()] },
            { "name": CLASS, "datatype": "BYTES", "shape": [-1] }
        ],
    })))
}

/// `GET /v2/models/{name}[/versions/{v}]/ready`.
pub async fn model_ready(
    State(state): State<Arc<ServerState>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<Value>, ApiError> {
    let deployment = resolve(&state, &path)?;
    Ok(Json(json!({ "name": deployment.endpoint, "ready": true })))
}

/// The body of an infer request.
#[derive(Debug, Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<InferInput>,
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

#[derive(Debug, Deserialize)]
struct RequestedOutput {
    name: String,
}

/// `POST /v2/models/{name}[/versions/{v}]/infer`. The input is either FP32
/// `[n, 3, s, s]` (or `[3, s, s]`) already preprocessed, or BYTES `[n]`
/// holding base64 images.
pub async fn infer_route(
    State(state): State<Arc<ServerState>>,
    Path(path): Path<ModelPath>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = resolve(&state, &path) {
        return e.into_response();
    }
    timed(&state, &path.name, async |deployment| {
        let request: InferRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("not a v2 infer request: {e}")))?;
        let wanted = wanted_outputs(&request)?;
        let [input] = request.inputs.as_slice() else {
            return Err(ApiError::bad_request(format!(
                "send exactly one input (FP32 [n, 3, s, s] or BYTES [n] images); got {}",
                request.inputs.len()
            )));
        };
        let payload = input_payload(input, deployment.info.input.tensor_len())?;
        let inputs = prepare(&deployment, payload).await?;
        let probabilities = infer(&deployment, inputs).await?;
        Ok(Json(infer_answer(
            &deployment,
            request.id,
            &probabilities,
            &wanted,
        )))
    })
    .await
}

fn wanted_outputs(request: &InferRequest) -> Result<Vec<&'static str>, ApiError> {
    let Some(outputs) = &request.outputs else {
        return Ok(vec![PROBABILITIES, CLASS]);
    };
    outputs
        .iter()
        .map(|o| match o.name.as_str() {
            PROBABILITIES => Ok(PROBABILITIES),
            CLASS => Ok(CLASS),
            other => Err(ApiError::bad_request(format!(
                "unknown output {other:?}: this model has {PROBABILITIES:?} and {CLASS:?}"
            ))),
        })
        .collect()
}

fn input_payload(input: &InferInput, item_len: usize) -> Result<Payload, ApiError> {
    match input.datatype.as_str() {
        "BYTES" => {
            let Value::Array(items) = flat_list(&input.data) else {
                return Err(ApiError::bad_request(
                    "BYTES data must be a list of base64 images",
                ));
            };
            match items_payload(items)? {
                images @ Payload::Images(_) => Ok(images),
                Payload::Tensors(_) => Err(ApiError::bad_request(
                    "BYTES data must be a list of base64 images",
                )),
            }
        }
        "FP32" | "FP64" | "FP16" => {
            let mut values = Vec::new();
            flatten(&input.data, &mut values)
                .map_err(|e| ApiError::bad_request(format!("input {}: {e}", input.name)))?;
            let declared: i64 = input.shape.iter().product();
            if input.shape.iter().any(|d| *d < 0) || declared != values.len() as i64 {
                return Err(ApiError::bad_request(format!(
                    "input {} has shape {:?} but holds {} values",
                    input.name,
                    input.shape,
                    values.len()
                )));
            }
            if values.is_empty() || values.len() % item_len != 0 {
                return Err(ApiError::bad_request(format!(
                    "input {} holds {} values, not a whole number of [3, s, s] images of {item_len} values",
                    input.name,
                    values.len()
                )));
            }
            Ok(Payload::Tensors(
                values.chunks(item_len).map(<[f32]>::to_vec).collect(),
            ))
        }
        other => Err(ApiError::bad_request(format!(
            "datatype {other} is not accepted: send FP32 tensors or BYTES images"
        ))),
    }
}

/// BYTES data may be nested like any tensor; a `[n]` list is what we read.
fn flat_list(data: &Value) -> Value {
    match data {
        Value::Array(items) if items.len() == 1 && items[0].is_array() => flat_list(&items[0]),
        other => other.clone(),
    }
}

fn infer_answer(
    deployment: &Deployment,
    id: Option<String>,
    probabilities: &[Vec<f32>],
    wanted: &[&str],
) -> Value {
    let classes = &deployment.info.classes;
    let n = probabilities.len();
    let outputs: Vec<Value> = wanted
        .iter()
        .map(|name| match *name {
            PROBABILITIES => json!({
                "name": PROBABILITIES, "datatype": "FP32", "shape": [n, classes.len()],
                "data": probabilities.iter().flatten().collect::<Vec<_>>(),
            }),
            _ => json!({
                "name": CLASS, "datatype": "BYTES", "shape": [n],
                "data": probabilities.iter().map(|p| best(classes, p)).collect::<Vec<_>>(),
            }),
        })
        .collect();
    let mut answer = json!({
        "model_name": deployment.endpoint,
        "model_version": deployment.info.version,
        "outputs": outputs,
    });
    if let (Some(id), Value::Object(fields)) = (id, &mut answer) {
        fields.insert("id".into(), json!(id));
    }
    answer
}

fn best<'a>(classes: &'a [String], probabilities: &[f32]) -> &'a str {
    probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .and_then(|(i, _)| classes.get(i))
        .map_or("", String::as_str)
}

/// The model named in a v2 path, with or without `/versions/{version}`.
#[derive(Debug, Deserialize)]
pub struct ModelPath {
    name: String,
    version: Option<String>,
}

/// The deployment a v2 path names.
fn resolve(state: &ServerState, path: &ModelPath) -> Result<Arc<Deployment>, ApiError> {
    let name = &path.name;
    let deployment = state
        .endpoints
        .current(name)
        .ok_or_else(|| ApiError::not_found(format!("model {name} does not exist")))?;
    match &path.version {
        Some(version) if *version != deployment.info.version => Err(ApiError::not_found(format!(
            "model {name} version {version} is not loaded; it serves version {}",
            deployment.info.version
        ))),
        _ => Ok(deployment),
    }
}
