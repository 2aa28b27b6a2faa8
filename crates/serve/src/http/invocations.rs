//! SageMaker's runtime routes: `POST /endpoints/{name}/invocations` with an
//! image or JSON body, and `GET /ping`. boto3's `sagemaker-runtime` client
//! pointed at this server builds exactly these requests.

use crate::endpoints::Deployment;
use crate::http::error::ApiError;
use crate::http::inputs::{Payload, infer, json_payload, prepare};
use crate::http::{InferenceBody, ServerState, deployment, timed};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Content types an image body may have.
const IMAGE_TYPES: [&str; 6] = [
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/gif",
    "application/x-image",
];

/// `GET /ping`: the server is up.
pub async fn ping() -> Json<Value> {
    Json(json!({ "status": "healthy" }))
}

/// `POST /endpoints/{name}/invocations`.
pub async fn invoke(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: InferenceBody,
) -> Response {
    let found = deployment(&state, &name);
    timed(&state, &name, found, async |deployment| {
        let body = body?;
        let json_body = content_type(&headers)? == "application/json";
        let payload = if json_body {
            json_payload(&body)?
        } else {
            Payload::Images(vec![body])
        };
        let inputs = prepare(&deployment, payload).await?;
        let probabilities = infer(&deployment, inputs).await?;
        Ok(Json(answer(&deployment, &probabilities, json_body)))
    })
    .await
}

/// The media type of the body, refusing what the route cannot read.
fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json" || IMAGE_TYPES.contains(&media.as_str()) {
        Ok(media)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {raw:?} is not accepted: send an image ({}) or application/json",
                IMAGE_TYPES.join(", ")
            ),
        ))
    }
}

/// One prediction for a single image; `{"predictions": [...]}` for a list.
fn answer(deployment: &Deployment, probabilities: &[Vec<f32>], list: bool) -> Value {
    let classes = &deployment.info.classes;
    let mut predictions: Vec<Value> = probabilities
        .iter()
        .map(|p| prediction(classes, p))
        .collect();
    let mut body = if list || predictions.len() != 1 {
        json!({ "predictions": predictions })
    } else {
        predictions.swap_remove(0)
    };
    if let Value::Object(fields) = &mut body {
        fields.insert("endpoint".into(), json!(deployment.endpoint));
        fields.insert("model_version".into(), json!(deployment.info.version));
    }
    body
}

/// `{"class": best, "probabilities": {class: p, …}}`.
pub fn prediction(classes: &[String], probabilities: &[f32]) -> Value {
    let best = probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    let by_name: Map<String, Value> = classes
        .iter()
        .zip(probabilities)
        .map(|(c, p)| (c.clone(), json!(p)))
        .collect();
    json!({ "class": classes.get(best), "probabilities": by_name })
}
