//! Request payloads turned into network inputs: image bytes (decoded and
//! preprocessed off the async threads), base64 images in JSON, or tensors
//! already preprocessed by the caller.

use crate::endpoints::Deployment;
use crate::http::error::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value;

/// Most images one request may carry.
pub const MAX_IMAGES_PER_REQUEST: usize = 64;

/// What a request asks to classify.
pub enum Payload {
    /// Encoded images (JPEG, PNG, …).
    Images(Vec<Bytes>),
    /// Preprocessed inputs, each to be `[3, size, size]`.
    Tensors(Vec<InputTensor>),
}

/// A preprocessed input as the caller laid it out.
pub struct InputTensor {
    /// The dimensions of the nested lists it came in: `[3, s, s]`, or
    /// `[3·s·s]` when flat.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

impl InputTensor {
    /// Reads a nested list of numbers, refusing lists that are not
    /// rectangular (a shorter row would shift every value after it).
    pub fn parse(value: &Value) -> Result<Self, String> {
        let mut shape = Vec::new();
        let mut first = value;
        while let Value::Array(items) = first {
            shape.push(items.len());
            match items.first() {
                Some(item) => first = item,
                None => break,
            }
        }
        let mut values = Vec::new();
        collect(value, &shape, &mut values)?;
        Ok(Self { shape, values })
    }
}

/// Appends the numbers of `value`, which must have the dimensions `shape`.
fn collect(value: &Value, shape: &[usize], out: &mut Vec<f32>) -> Result<(), String> {
    match (value, shape) {
        (Value::Number(n), []) => {
            let v = n.as_f64().ok_or("a number is out of range")?;
            out.push(v as f32);
            Ok(())
        }
        (Value::Array(items), [len, inner @ ..]) if items.len() == *len => {
            items.iter().try_for_each(|i| collect(i, inner, out))
        }
        (Value::Array(_) | Value::Number(_), _) => Err(
            "the nested lists are not rectangular: every list at one depth must hold as many items, all lists or all numbers"
                .into(),
        ),
        (other, _) => Err(format!("expected numbers, found {other}")),
    }
}

impl Payload {
    /// How many images or tensors the request carries.
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Images(v) => v.len(),
            Payload::Tensors(v) => v.len(),
        }
    }
}

/// A JSON body of the invocations route: a list, or `{"instances": list}`,
/// of base64 images (strings or `{"b64": …}`) or of tensors (nested or
/// flat numbers).
pub fn json_payload(body: &[u8]) -> Result<Payload, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut fields) => match fields
            .remove("instances")
            .or_else(|| fields.remove("images"))
        {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(ApiError::bad_request(
                    "a JSON body is a list of base64 images or of tensors, or {\"instances\": [...]}",
                ));
            }
        },
        _ => {
            return Err(ApiError::bad_request(
                "a JSON body must be a list or an object",
            ));
        }
    };
    items_payload(items)
}

/// Items of a JSON list: all images or all tensors.
pub fn items_payload(items: Vec<Value>) -> Result<Payload, ApiError> {
    if items.is_empty() {
        return Err(ApiError::bad_request("the request holds no inputs"));
    }
    if items.iter().all(|i| image_text(i).is_some()) {
        let images = items
            .iter()
            .filter_map(image_text)
            .enumerate()
            .map(|(n, text)| {
                BASE64.decode(text).map(Bytes::from).map_err(|e| {
                    ApiError::bad_request(format!("input {n} is not valid base64: {e}"))
                })
            })
            .collect::<Result<_, _>>()?;
        return Ok(Payload::Images(images));
    }
    let tensors = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            InputTensor::parse(item).map_err(|e| ApiError::bad_request(format!("input {n}: {e}")))
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Payload::Tensors(tensors))
}

fn image_text(item: &Value) -> Option<&str> {
    match item {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("b64").and_then(Value::as_str),
        _ => None,
    }
}

/// Network inputs for `payload` on the model `deployment` serves.
pub async fn prepare(deployment: &Deployment, payload: Payload) -> Result<Vec<Vec<f32>>, ApiError> {
    if payload.len() > MAX_IMAGES_PER_REQUEST {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} inputs in one request; at most {MAX_IMAGES_PER_REQUEST}",
                payload.len()
            ),
        ));
    }
    let preprocess = &deployment.info.input;
    match payload {
        Payload::Tensors(tensors) => {
            // Only the layout's shape is checked: [s, s, 3] holds as many
            // values as [3, s, s] and would be read as nonsense.
            let s = preprocess.size as usize;
            let flat = preprocess.tensor_len();
            let fits = |t: &InputTensor| t.shape == [3, s, s] || t.shape == [flat];
            if let Some((n, t)) = tensors.iter().enumerate().find(|(_, t)| !fits(t)) {
                return Err(ApiError::bad_request(format!(
                    "input {n} holds {} values in shape {:?}; this model takes [3, {s}, {s}] (channels first), nested or as {flat} flat values",
                    t.values.len(),
                    t.shape,
                )));
            }
            Ok(tensors.into_iter().map(|t| t.values).collect())
        }
        Payload::Images(images) => {
            let tasks = images.into_iter().map(|bytes| {
                let preprocess = preprocess.clone();
                tokio::task::spawn_blocking(move || {
                    let mut out = vec![0.0; preprocess.tensor_len()];
                    preprocess.load(&bytes, &mut out).map(|()| out)
                })
            });
            let mut inputs = Vec::new();
            for task in futures::future::join_all(tasks).await {
                let decoded = task.map_err(|e| {
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("preprocessing stopped: {e}"),
                    )
                })?;
                inputs.push(decoded?);
            }
            Ok(inputs)
        }
    }
}

/// Class probabilities for each input, batched with other requests.
pub async fn infer(
    deployment: &Deployment,
    inputs: Vec<Vec<f32>>,
) -> Result<Vec<Vec<f32>>, ApiError> {
    let answers = futures::future::join_all(inputs.into_iter().map(|i| deployment.infer(i))).await;
    answers
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e))
}
