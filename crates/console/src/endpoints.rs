//! The serving pages: every endpoint with its version and traffic (the
//! server's own request, error and latency figures), one endpoint with its
//! history, a rollback to any earlier version, and "try it": an image
//! dropped on the page answered by the endpoint.

use crate::Console;
use crate::error::ConsoleError;
use crate::pages::{after_action, escaped, page};
use crate::session::{Session, check_form};
use axum::extract::{Multipart, Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::Value as Json;
use std::sync::Arc;

type Shared = State<Arc<Console>>;

/// Every endpoint with its traffic.
pub async fn endpoints(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    let values = async {
        let endpoints = c.api.get("/api/endpoints").await?;
        let mut rows = Vec::new();
        for endpoint in endpoints.as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = endpoint["name"].as_str().unwrap_or_default();
            let traffic = c.api.get(&traffic_path(name)).await?;
            rows.push(serde_json::json!({ "endpoint": endpoint, "traffic": traffic }));
        }
        Ok::<_, ConsoleError>(context! { rows => Value::from_serialize(&rows) })
    }
    .await;
    page(&c, &s, "endpoints.html", values)
}

fn traffic_path(name: &str) -> String {
    format!("/api/endpoints/{}/traffic", escaped(name))
}

/// One endpoint, with what a try-it upload answered, if one was sent.
async fn endpoint_page(
    c: &Console,
    s: &Session,
    name: &str,
    tried: Option<Result<Json, ConsoleError>>,
) -> Response {
    let values = async {
        let endpoint = c
            .api
            .get(&format!("/api/endpoints/{}", escaped(name)))
            .await?;
        let traffic = c.api.get(&traffic_path(name)).await?;
        let (answer, refusal) = match tried {
            Some(Ok(answer)) => (Some(ranked(&answer)), None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, None),
        };
        Ok::<_, ConsoleError>(context! {
            endpoint => Value::from_serialize(&endpoint),
            traffic => Value::from_serialize(&traffic),
            answer => Value::from_serialize(&answer),
            refusal,
        })
    }
    .await;
    page(c, s, "endpoint.html", values)
}

/// One endpoint: its model, traffic, history and try-it form.
pub async fn endpoint(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    endpoint_page(&c, &s, &name, None).await
}

/// The answer to a try-it upload: the predicted class and every class's
/// probability, most likely first.
fn ranked(answer: &Json) -> Json {
    let mut classes: Vec<(String, f64)> = answer["probabilities"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    classes.sort_by(|a, b| b.1.total_cmp(&a.1));
    serde_json::json!({
        "class": answer["class"],
        "model_version": answer["model_version"],
        "probabilities": classes,
    })
}

/// "Try it": the uploaded image goes to the endpoint's invocations route,
/// in process, as a SageMaker client would send it; the page shows the
/// answer, or the endpoint's refusal inline.
pub async fn try_it(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    form: Multipart,
) -> Response {
    let tried = async {
        let (token, image) = read_try_form(form).await?;
        check_form(&s, &token)?;
        let Some((content_type, bytes)) = image else {
            return Err(ConsoleError::Invalid("choose an image to send".into()));
        };
        let path = format!("/endpoints/{}/invocations", escaped(&name));
        c.api.post_typed(&path, &content_type, bytes).await
    }
    .await;
    match tried {
        // A forged form changes nothing and shows nothing of the endpoint.
        Err(e @ ConsoleError::Forged) => c.pages.error(&e),
        tried => endpoint_page(&c, &s, &name, Some(tried)).await,
    }
}

/// The try-it form's token and image (its content type and bytes).
async fn read_try_form(
    mut form: Multipart,
) -> Result<(String, Option<(String, Vec<u8>)>), ConsoleError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        ConsoleError::Invalid(format!("the upload could not be read: {}", e.body_text()))
    };
    let (mut token, mut image) = (String::new(), None);
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("form_token") => token = field.text().await.map_err(unreadable)?,
            Some("image") => {
                let content_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                let bytes = field.bytes().await.map_err(unreadable)?;
                if !bytes.is_empty() {
                    image = Some((content_type, bytes.to_vec()));
                }
            }
            _ => {}
        }
    }
    Ok((token, image))
}

/// The rollback form: the model version to return to.
#[derive(Deserialize)]
pub struct RollbackForm {
    form_token: String,
    to: String,
}

/// Rolls an endpoint back to an earlier version, then shows it.
pub async fn rollback(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<RollbackForm>,
) -> Response {
    let done = async {
        check_form(&s, &form.form_token)?;
        let body = serde_json::json!({ "to": form.to }).to_string();
        let path = format!("/api/endpoints/{}/rollback", escaped(&name));
        c.api.post(&path, body).await?;
        Ok(format!("/console/endpoints/{}", escaped(&name)))
    }
    .await;
    after_action(&c, done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prediction_lists_its_classes_most_likely_first() {
        let answer = serde_json::json!({
            "class": "good", "model_version": "v2",
            "probabilities": { "defective": 0.25, "good": 0.75 },
        });
        let ranked = ranked(&answer);
        assert_eq!(ranked["class"], "good");
        assert_eq!(
            ranked["probabilities"],
            serde_json::json!([["good", 0.75], ["defective", 0.25]])
        );
    }
}
