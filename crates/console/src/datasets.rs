//! The datasets page: for a prefix of a bucket, its classes and counts, a
//! grid of thumbnails per class, and the files that do not decode.

use crate::Console;
use crate::api::Method;
use crate::error::ConsoleError;
use crate::pages::{escaped, page, refusal_status};
use crate::session::Session;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use http::HeaderMap;
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::sync::Arc;

/// `?uri=s3://bucket/prefix`.
#[derive(Deserialize)]
pub struct DatasetQuery {
    uri: Option<String>,
}

/// The dataset under `uri`, or the form that asks for one.
pub async fn dataset(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(q): Query<DatasetQuery>,
    headers: HeaderMap,
) -> Response {
    let uri = q.uri.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    let Some(uri) = uri else {
        return page(&c, &s, "dataset.html", Ok(context! {}));
    };
    let looked = async {
        let dataset = c
            .api
            .get(&format!("/api/datasets?uri={}", escaped(&uri)))
            .await?;
        let thumbnails = thumbnails(&c, &dataset, &headers).await?;
        Ok::<_, ConsoleError>((dataset, thumbnails))
    }
    .await;
    let refused =
        matches!(&looked, Err(ConsoleError::Api { status, .. }) if status.is_client_error());
    let values = match looked {
        Ok((dataset, thumbnails)) => context! {
            uri,
            dataset => Value::from_serialize(&dataset),
            thumbnails => Value::from_serialize(&thumbnails),
        },
        // A prefix that is not a dataset is said on the form.
        Err(ConsoleError::Api { status, message }) if status.is_client_error() => {
            context! { uri, message }
        }
        Err(e) => return c.pages.error(&e),
    };
    refusal_status(page(&c, &s, "dataset.html", Ok(values)), refused)
}

/// Per class, presigned URLs of its sample images, for `<img>` tags that
/// load straight from the store.
async fn thumbnails(
    c: &Console,
    dataset: &Json,
    headers: &HeaderMap,
) -> Result<Vec<Vec<(String, String)>>, ConsoleError> {
    let bucket = dataset["bucket"].as_str().unwrap_or_default();
    let path = format!("/api/buckets/{}/presign", escaped(bucket));
    let host = crate::buckets::browser_host(headers);
    let mut classes = Vec::new();
    for keys in dataset["samples"].as_array().into_iter().flatten() {
        let mut urls = Vec::new();
        for key in keys.as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            let body = json!({ "operation": "get", "key": key, "host": host });
            let presigned = c.api.send_json(Method::POST, &path, &body).await?;
            let url = presigned["url"].as_str().unwrap_or_default().to_owned();
            urls.push((key.to_owned(), url));
        }
        classes.push(urls);
    }
    Ok(classes)
}
