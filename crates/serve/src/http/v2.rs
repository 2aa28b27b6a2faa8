//! The Open Inference Protocol (KServe v2) over REST, so standard v2
//! clients (Triton's `tritonclient.http`, KServe's SDK) work unchanged.
//! Each endpoint is a v2 model; its version is the model's version id.

use crate::endpoints::Deployment;
use crate::http::error::ApiError;
use crate::http::inputs::{InputTensor, Payload, infer, items_payload, prepare};
use crate::http::{InferenceBody, ServerState, binary, timed};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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
    Json(json!({
        "name": "tread",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
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

/// The body of an infer request (its JSON part, with the binary tensor
/// extension).
#[derive(Debug, Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<InferInput>,
    outputs: Option<Vec<RequestedOutput>>,
    #[serde(default)]
    parameters: RequestParameters,
}

#[derive(Debug, Default, Deserialize)]
struct RequestParameters {
    /// Every output as binary unless the output says otherwise.
    #[serde(default)]
    binary_data_output: bool,
}

#[derive(Debug, Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    /// The tensor in JSON; absent when it follows the JSON as binary.
    data: Option<Value>,
    #[serde(default)]
    parameters: InputParameters,
}

#[derive(Debug, Default, Deserialize)]
struct InputParameters {
    binary_data_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: OutputParameters,
}

#[derive(Debug, Default, Deserialize)]
struct OutputParameters {
    binary_data: Option<bool>,
    classification: Option<Value>,
}

/// An output to answer, and whether as binary.
struct Wanted {
    name: &'static str,
    binary: bool,
}

/// `POST /v2/models/{name}[/versions/{v}]/infer`. The input is either FP32
/// `[n, 3, s, s]` (or `[3, s, s]`) already preprocessed, or BYTES `[n]`
/// holding images (base64 in JSON, raw bytes as binary data).
pub async fn infer_route(
    State(state): State<Arc<ServerState>>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: InferenceBody,
) -> Response {
    let found = resolve(&state, &path);
    timed(&state, &path.name, found, async |deployment| {
        let mut body = binary::Body::split(&headers, body?)?;
        let request: InferRequest = serde_json::from_slice(&body.json)
            .map_err(|e| ApiError::bad_request(format!("not a v2 infer request: {e}")))?;
        let wanted = wanted_outputs(&request)?;
        let [input] = request.inputs.as_slice() else {
            return Err(ApiError::bad_request(format!(
                "send exactly one input (FP32 [n, 3, s, s] or BYTES [n] images); got {}",
                request.inputs.len()
            )));
        };
        let tensor = input_tensor(input, &mut body)?;
        body.finish()?;
        let size = deployment.info.input.size as usize;
        let payload = input_payload(input, tensor, size)?;
        let inputs = prepare(&deployment, payload).await?;
        let probabilities = infer(&deployment, inputs).await?;
        Ok(infer_answer(
            &deployment,
            request.id,
            &probabilities,
            &wanted,
        ))
    })
    .await
}

fn wanted_outputs(request: &InferRequest) -> Result<Vec<Wanted>, ApiError> {
    let default = request.parameters.binary_data_output;
    let Some(outputs) = &request.outputs else {
        return Ok([PROBABILITIES, CLASS]
            .into_iter()
            .map(|name| Wanted {
                name,
                binary: default,
            })
            .collect());
    };
    outputs
        .iter()
        .map(|o| {
            let name = match o.name.as_str() {
                PROBABILITIES => PROBABILITIES,
                CLASS => CLASS,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown output {other:?}: this model has {PROBABILITIES:?} and {CLASS:?}"
                    )));
                }
            };
            if o.parameters.classification.is_some() {
                return Err(ApiError::bad_request(format!(
                    "output {name}: the classification extension is not supported; ask for the {CLASS:?} output"
                )));
            }
            let binary = o.parameters.binary_data.unwrap_or(default);
            Ok(Wanted { name, binary })
        })
        .collect()
}

/// The input's tensor: from its JSON `data`, or from the binary part of
/// the body when its parameters give a `binary_data_size`.
enum Tensor<'a> {
    Json(&'a Value),
    Binary(bytes::Bytes),
}

fn input_tensor<'a>(
    input: &'a InferInput,
    body: &mut binary::Body,
) -> Result<Tensor<'a>, ApiError> {
    let name = &input.name;
    match (input.parameters.binary_data_size, &input.data) {
        (Some(size), _) => Ok(Tensor::Binary(body.take(name, size)?)),
        (None, Some(data)) => Ok(Tensor::Json(data)),
        (None, None) => Err(ApiError::bad_request(format!(
            "input {name} has neither data nor parameters.binary_data_size"
        ))),
    }
}

/// What the input asks to classify, checked against its shape and the
/// model's input side `size`.
fn input_payload(input: &InferInput, tensor: Tensor<'_>, size: usize) -> Result<Payload, ApiError> {
    let name = &input.name;
    match input.datatype.as_str() {
        "BYTES" => {
            let images = image_payload(name, tensor)?;
            check_count(input, images.len())?;
            Ok(images)
        }
        "FP32" | "FP64" | "FP16" => {
            check_image_shape(input, size)?;
            let values = match tensor {
                Tensor::Json(data) => InputTensor::parse(data).and_then(|t| {
                    // Flat data is read in the declared layout; nested data
                    // must be nested as declared.
                    let declared = input.shape.iter().map(|d| d.unsigned_abs() as usize);
                    if t.shape.len() > 1 && !t.shape.iter().copied().eq(declared) {
                        return Err(format!(
                            "its data is nested as {:?} but its shape is declared {:?}",
                            t.shape, input.shape
                        ));
                    }
                    Ok(t.values)
                }),
                Tensor::Binary(bytes) => binary::floats(&input.datatype, &bytes),
            }
            .map_err(|e| ApiError::bad_request(format!("input {name}: {e}")))?;
            check_count(input, values.len())?;
            Ok(Payload::Tensors(
                values
                    .chunks(3 * size * size)
                    .map(|chunk| InputTensor {
                        shape: vec![3, size, size],
                        values: chunk.to_vec(),
                    })
                    .collect(),
            ))
        }
        other => Err(ApiError::bad_request(format!(
            "datatype {other} is not accepted: send FP32 tensors or BYTES images"
        ))),
    }
}

/// Refuses a tensor input not declared `[n, 3, size, size]` with n ≥ 1
/// (or `[3, size, size]`, one image): a shape that merely holds as many
/// values, such as `[1, size, size, 3]` or four images of half the side,
/// would be read as nonsense.
fn check_image_shape(input: &InferInput, size: usize) -> Result<(), ApiError> {
    let s = i64::try_from(size).unwrap_or(i64::MAX);
    match *input.shape.as_slice() {
        [n, 3, h, w] if n >= 1 && h == s && w == s => Ok(()),
        [3, h, w] if h == s && w == s => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "input {} has shape {:?}; this model takes FP32 [n, 3, {size}, {size}]: n ≥ 1 preprocessed {size}×{size} images, channels first",
            input.name, input.shape
        ))),
    }
}

/// Images of a BYTES input: base64 strings in JSON, raw bytes in binary.
fn image_payload(name: &str, tensor: Tensor<'_>) -> Result<Payload, ApiError> {
    let not_images = || ApiError::bad_request("BYTES data must be a list of base64 images");
    match tensor {
        Tensor::Binary(bytes) => binary::elements(bytes)
            .map(Payload::Images)
            .map_err(|e| ApiError::bad_request(format!("input {name}: {e}"))),
        Tensor::Json(data) => {
            let Value::Array(items) = flat_list(data) else {
                return Err(not_images());
            };
            match items_payload(items)? {
                images @ Payload::Images(_) => Ok(images),
                Payload::Tensors(_) => Err(not_images()),
            }
        }
    }
}

/// Refuses an input whose shape does not hold exactly `count` elements.
fn check_count(input: &InferInput, count: usize) -> Result<(), ApiError> {
    let declared = input.shape.iter().try_fold(1u64, |product, d| {
        product.checked_mul(u64::try_from(*d).ok()?)
    });
    if declared != Some(count as u64) {
        return Err(ApiError::bad_request(format!(
            "input {} has shape {:?} but holds {count} values",
            input.name, input.shape
        )));
    }
    Ok(())
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
    wanted: &[Wanted],
) -> Response {
    let classes = &deployment.info.classes;
    let n = probabilities.len();
    let mut tensors = Vec::new();
    let outputs: Vec<Value> = wanted
        .iter()
        .map(|w| {
            let (mut output, data, raw) = match w.name {
                PROBABILITIES => {
                    let values: Vec<f32> = probabilities.iter().flatten().copied().collect();
                    let raw = w.binary.then(|| binary::float_bytes(&values));
                    (
                        json!({ "name": PROBABILITIES, "datatype": "FP32", "shape": [n, classes.len()] }),
                        json!(values),
                        raw,
                    )
                }
                _ => {
                    let names: Vec<&str> = probabilities.iter().map(|p| best(classes, p)).collect();
                    let raw = w.binary.then(|| binary::element_bytes(names.iter().copied()));
                    (
                        json!({ "name": CLASS, "datatype": "BYTES", "shape": [n] }),
                        json!(names),
                        raw,
                    )
                }
            };
            match raw {
                Some(raw) => {
                    output["parameters"] = json!({ "binary_data_size": raw.len() });
                    tensors.extend_from_slice(&raw);
                }
                None => output["data"] = data,
            }
            output
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
    binary::answer(&answer, tensors)
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
