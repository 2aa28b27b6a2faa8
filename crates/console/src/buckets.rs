//! The buckets pages: buckets, a bucket browsed one folder at a time, an
//! object's details, downloads by presigned URL, deletion after a question,
//! and the JSON relays the upload script uses to move files from the
//! browser straight to the store (in one PUT, or in parts with progress).

use crate::Console;
use crate::api::Method;
use crate::error::ConsoleError;
use crate::pages::{after_action, escaped, page, refusal_status};
use crate::session::{Session, check_form};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use http::{HeaderMap, header};
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::{Value as Json_, json};
use std::sync::Arc;

type Shared = State<Arc<Console>>;

/// Every bucket, and the form that creates one.
pub async fn buckets(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    buckets_page(&c, &s, None, None).await
}

async fn buckets_page(
    c: &Console,
    s: &Session,
    entered: Option<&NewBucketForm>,
    message: Option<String>,
) -> Response {
    let refused = message.is_some();
    let values = c.api.get("/api/buckets").await.map(|buckets| {
        context! {
            buckets => Value::from_serialize(&buckets),
            name => entered.map(|e| e.name.clone()),
            nas_path => entered.map(|e| e.nas_path.clone()),
            message,
        }
    });
    refusal_status(page(c, s, "buckets.html", values), refused)
}

/// The create-bucket form.
#[derive(Deserialize)]
pub struct NewBucketForm {
    form_token: String,
    name: String,
    #[serde(default)]
    nas_path: String,
}

/// Creates a bucket, then shows it; a refused name is shown on the form.
pub async fn create_bucket(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Form(form): Form<NewBucketForm>,
) -> Response {
    if let Err(e) = check_form(&s, &form.form_token) {
        return c.pages.error(&e);
    }
    let mut body = json!({ "name": form.name.trim() });
    if !form.nas_path.trim().is_empty() {
        body["nas_path"] = form.nas_path.trim().into();
    }
    match c.api.send_json(Method::POST, "/api/buckets", &body).await {
        Ok(_) => {
            Redirect::to(&format!("/console/buckets/{}", escaped(form.name.trim()))).into_response()
        }
        Err(ConsoleError::Api { status, message }) if status.is_client_error() => {
            buckets_page(&c, &s, Some(&form), Some(message)).await
        }
        Err(e) => c.pages.error(&e),
    }
}

/// A folder's query: where in the bucket, and which page.
#[derive(Deserialize)]
pub struct FolderQuery {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    token: String,
}

/// One folder of a bucket: its folders, its objects (a page at a time),
/// the way up, and the upload form.
pub async fn bucket(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(bucket): Path<String>,
    Query(q): Query<FolderQuery>,
) -> Response {
    let path = format!(
        "/api/buckets/{}/objects?prefix={}&token={}",
        escaped(&bucket),
        escaped(&q.prefix),
        escaped(&q.token)
    );
    let values = c.api.get(&path).await.map(|folder| {
        context! {
            bucket,
            folder => Value::from_serialize(&folder),
            crumbs => Value::from_serialize(crumbs(&q.prefix)),
        }
    });
    page(&c, &s, "bucket.html", values)
}

/// The folders above and at `prefix`, each with the prefix that opens it.
fn crumbs(prefix: &str) -> Vec<(String, String)> {
    let mut at = 0;
    prefix
        .split_inclusive('/')
        .map(|segment| {
            at += segment.len();
            (
                segment.trim_end_matches('/').to_owned(),
                prefix[..at].to_owned(),
            )
        })
        .collect()
}

/// `?key=…` of the object routes.
#[derive(Deserialize)]
pub struct KeyQuery {
    key: String,
}

/// An object's details, metadata, download and delete.
pub async fn object(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(bucket): Path<String>,
    Query(q): Query<KeyQuery>,
) -> Response {
    let path = format!(
        "/api/buckets/{}/object?key={}",
        escaped(&bucket),
        escaped(&q.key)
    );
    let values = c.api.get(&path).await.map(|object| {
        context! {
            bucket,
            object => Value::from_serialize(&object),
            folder => folder_of(&q.key),
        }
    });
    page(&c, &s, "object.html", values)
}

/// The folder holding `key` (`a/b/c.jpg` → `a/b/`).
fn folder_of(key: &str) -> String {
    key.rfind('/')
        .map(|i| key[..=i].to_owned())
        .unwrap_or_default()
}

/// The host name the browser reached the console by: presigned URLs name
/// the store by it, so that they work from wherever the page was opened.
pub(crate) fn browser_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = host.parse().ok()?;
    Some(authority.host().to_owned())
}

/// Sends the browser to a presigned URL that downloads the object.
pub async fn download(
    State(c): Shared,
    Path(bucket): Path<String>,
    Query(q): Query<KeyQuery>,
    headers: HeaderMap,
) -> Response {
    let body = json!({
        "operation": "get", "key": q.key, "attachment": true, "host": browser_host(&headers),
    });
    let path = format!("/api/buckets/{}/presign", escaped(&bucket));
    let presigned = c.api.send_json(Method::POST, &path, &body).await;
    let url = presigned.map(|p| p["url"].as_str().unwrap_or_default().to_owned());
    after_action(&c, url)
}

/// What the delete question asks about: an object, or the bucket itself.
#[derive(Deserialize)]
pub struct DeleteQuery {
    key: Option<String>,
}

/// Asks before deleting an object or removing the bucket.
pub async fn confirm_delete(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(bucket): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Response {
    let b = escaped(&bucket);
    let (question, back) = match &q.key {
        Some(key) => (
            format!("Delete {key} from bucket {bucket}?"),
            format!("/console/buckets/{b}/object?key={}", escaped(key)),
        ),
        None => (
            format!("Remove bucket {bucket} from S3? Its directory and files stay on the volume."),
            format!("/console/buckets/{b}"),
        ),
    };
    let values = context! {
        question,
        action => format!("/console/buckets/{b}/delete"),
        key => q.key,
        back,
    };
    page(&c, &s, "confirm.html", Ok(values))
}

/// The delete form: an object's key, or none for the bucket.
#[derive(Deserialize)]
pub struct DeleteForm {
    form_token: String,
    key: Option<String>,
}

/// Deletes the object (then shows its folder) or removes the bucket from
/// S3, its directory and files staying (then shows the buckets).
pub async fn delete(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(bucket): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    let done = async {
        check_form(&s, &form.form_token)?;
        let b = escaped(&bucket);
        match form.key.filter(|k| !k.is_empty()) {
            Some(key) => {
                let path = format!("/api/buckets/{b}/object?key={}", escaped(&key));
                c.api.delete(&path).await?;
                let folder = escaped(&folder_of(&key));
                Ok(format!("/console/buckets/{b}?prefix={folder}"))
            }
            None => {
                c.api.delete(&format!("/api/buckets/{b}")).await?;
                Ok("/console/buckets".to_owned())
            }
        }
    }
    .await;
    after_action(&c, done)
}

/// A request of the upload script: the session's form token beside the
/// API call's own fields.
#[derive(Deserialize)]
pub struct Relayed {
    form_token: String,
    #[serde(flatten)]
    body: Json_,
}

/// One step of a browser upload (`presign`, `begin`, `complete` or
/// `abort`), relayed to the store API after checking the session's form
/// token; answers JSON, an error as `{"error": …}`.
pub async fn upload_step(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path((bucket, step)): Path<(String, String)>,
    headers: HeaderMap,
    Json(relayed): Json<Relayed>,
) -> Response {
    let answered = async {
        check_form(&s, &relayed.form_token)?;
        let base = format!("/api/buckets/{}", escaped(&bucket));
        let mut body = relayed.body;
        let path = match step.as_str() {
            "presign" => {
                body["host"] = browser_host(&headers).into();
                format!("{base}/presign")
            }
            "begin" => format!("{base}/uploads"),
            "complete" => format!("{base}/uploads/complete"),
            "abort" => {
                let key = body["key"].as_str().unwrap_or_default();
                let id = body["upload_id"].as_str().unwrap_or_default();
                let path = format!(
                    "{base}/uploads?key={}&upload_id={}",
                    escaped(key),
                    escaped(id)
                );
                return c.api.delete(&path).await;
            }
            _ => return Err(ConsoleError::NotFound(format!("upload step {step}"))),
        };
        c.api.send_json(Method::POST, &path, &body).await
    }
    .await;
    match answered {
        Ok(value) => Json(value).into_response(),
        Err(e) => (e.status(), Json(json!({ "error": e.to_string() }))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_prefix_breaks_into_the_folders_that_open_it() {
        assert_eq!(
            crumbs("a/b/"),
            vec![
                ("a".to_owned(), "a/".to_owned()),
                ("b".to_owned(), "a/b/".to_owned())
            ]
        );
        assert!(crumbs("").is_empty());
        assert_eq!(folder_of("a/b/c.jpg"), "a/b/");
        assert_eq!(folder_of("c.jpg"), "");
    }

    #[test]
    fn presigned_urls_name_the_host_the_browser_used_without_its_port() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("nas.example:8080"));
        assert_eq!(browser_host(&headers).as_deref(), Some("nas.example"));
        headers.insert(header::HOST, HeaderValue::from_static("[::1]:8080"));
        assert_eq!(browser_host(&headers).as_deref(), Some("[::1]"));
    }
}
