//! `/api/buckets/{bucket}/…`: a bucket's objects as an S3 client sees them,
//! one folder at a time, and presigned URLs that let a browser download
//! and upload (in one PUT, or in parts) straight to the store.

use crate::StoreApi;
use crate::error::Failure;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use axum::Json;
use axum::extract::{Path, Query, State};
use http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type Shared = State<Arc<StoreApi>>;

/// Objects a folder page lists when the caller does not say.
const PAGE: i32 = 200;

/// How long a presigned URL works: long enough for a large upload's part
/// on a slow link, short enough that a copied link soon stops working.
const PRESIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// `?prefix=…&token=…&limit=…` of a folder listing.
#[derive(Deserialize)]
pub struct FolderQuery {
    #[serde(default)]
    prefix: String,
    token: Option<String>,
    limit: Option<i32>,
}

/// One folder of a bucket: the folders and objects directly under `prefix`.
#[derive(Serialize)]
pub struct Folder {
    bucket: String,
    prefix: String,
    /// Full prefixes, each ending in `/`.
    folders: Vec<String>,
    objects: Vec<ObjectEntry>,
    /// Where the next page starts, when there is one.
    next_token: Option<String>,
}

/// An object in a listing.
#[derive(Serialize)]
pub struct ObjectEntry {
    key: String,
    size: i64,
    /// RFC 3339.
    modified: Option<String>,
    etag: Option<String>,
}

/// `GET /api/buckets/{bucket}/objects`: one page of one folder.
pub async fn list(
    State(api): Shared,
    Path(bucket): Path<String>,
    Query(q): Query<FolderQuery>,
) -> Result<Json<Folder>, Failure> {
    let page = api
        .client
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&q.prefix)
        .delimiter("/")
        .max_keys(q.limit.unwrap_or(PAGE).clamp(1, 1000))
        .set_continuation_token(q.token.filter(|t| !t.is_empty()))
        .send()
        .await
        .map_err(|e| Failure::s3(&format!("listing s3://{bucket}/{}", q.prefix), e))?;
    let folders = page
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix().map(str::to_owned))
        .collect();
    let objects = page
        .contents()
        .iter()
        .map(|o| ObjectEntry {
            key: o.key().unwrap_or_default().to_owned(),
            size: o.size().unwrap_or(0),
            modified: o.last_modified().map(rfc3339),
            etag: o.e_tag().map(unquoted),
        })
        .collect();
    Ok(Json(Folder {
        bucket,
        prefix: q.prefix,
        folders,
        objects,
        next_token: page.next_continuation_token().map(str::to_owned),
    }))
}

/// `?key=…` of the one-object routes.
#[derive(Deserialize)]
pub struct KeyQuery {
    key: String,
}

/// An object's details, from HEAD.
#[derive(Serialize)]
pub struct ObjectDetails {
    bucket: String,
    key: String,
    size: i64,
    modified: Option<String>,
    etag: Option<String>,
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    /// User metadata (`x-amz-meta-*`), without the prefix.
    metadata: BTreeMap<String, String>,
    /// Parts it was uploaded in, when it was uploaded in parts.
    parts: Option<i32>,
}

/// `GET /api/buckets/{bucket}/object?key=…`: an object's details.
pub async fn head(
    State(api): Shared,
    Path(bucket): Path<String>,
    Query(q): Query<KeyQuery>,
) -> Result<Json<ObjectDetails>, Failure> {
    let head = api
        .client
        .head_object()
        .bucket(&bucket)
        .key(&q.key)
        .send()
        .await
        .map_err(|e| Failure::s3(&format!("s3://{bucket}/{}", q.key), e))?;
    let etag = head.e_tag().map(unquoted);
    let parts = etag
        .as_deref()
        .and_then(|e| e.split_once('-'))
        .and_then(|(_, n)| n.parse().ok());
    Ok(Json(ObjectDetails {
        size: head.content_length().unwrap_or(0),
        modified: head.last_modified().map(rfc3339),
        etag,
        content_type: head.content_type().map(str::to_owned),
        cache_control: head.cache_control().map(str::to_owned),
        content_disposition: head.content_disposition().map(str::to_owned),
        content_encoding: head.content_encoding().map(str::to_owned),
        metadata: head
            .metadata()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        parts,
        bucket,
        key: q.key,
    }))
}

/// `DELETE /api/buckets/{bucket}/object?key=…`.
pub async fn delete(
    State(api): Shared,
    Path(bucket): Path<String>,
    Query(q): Query<KeyQuery>,
) -> Result<StatusCode, Failure> {
    api.client
        .delete_object()
        .bucket(&bucket)
        .key(&q.key)
        .send()
        .await
        .map_err(|e| Failure::s3(&format!("deleting s3://{bucket}/{}", q.key), e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a presigned URL is for. Beginning, completing and aborting an
/// upload in parts are the API's own routes: the SDK presigns none of them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Transfer {
    /// Download the object: as an attachment when `attachment` is set,
    /// else as it is (an image shown in a page).
    Get,
    /// Upload it in one PUT.
    Put,
    /// Upload part `part` of `upload_id`.
    UploadPart,
}

/// What `POST /api/buckets/{bucket}/presign` takes.
#[derive(Deserialize)]
pub struct PresignRequest {
    operation: Transfer,
    key: String,
    upload_id: Option<String>,
    part: Option<i32>,
    #[serde(default)]
    attachment: bool,
    /// The host name the URL's user reaches the store by (the console
    /// passes the one the browser used); the scheme and port stay the
    /// store's. The store's own address when absent.
    host: Option<String>,
}

/// A presigned request: its method, URL and the headers it must carry.
#[derive(Serialize)]
pub struct Presigned {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
}

/// `POST /api/buckets/{bucket}/presign`: a URL that does one S3 operation
/// as the API's user for [`PRESIGNED_FOR`].
pub async fn presign(
    State(api): Shared,
    Path(bucket): Path<String>,
    Json(r): Json<PresignRequest>,
) -> Result<Json<Presigned>, Failure> {
    let endpoint = endpoint_for(&api.s3.endpoint, r.host.as_deref())?;
    let client = presigning_client(&api, &endpoint);
    let config =
        PresigningConfig::expires_in(PRESIGNED_FOR).map_err(|e| Failure::invalid(e.to_string()))?;
    let what = format!("presigning for s3://{bucket}/{}", r.key);
    let (b, k) = (&bucket, &r.key);
    let request: PresignedRequest = match r.operation {
        Transfer::Get => {
            let name = k.rsplit('/').next().unwrap_or(k).replace('"', "");
            let request = client.get_object().bucket(b).key(k);
            let request = request.set_response_content_disposition(
                r.attachment
                    .then(|| format!("attachment; filename=\"{name}\"")),
            );
            let presigned = request.presigned(config).await;
            presigned.map_err(|e| Failure::s3(&what, e))?
        }
        Transfer::Put => {
            let presigned = client.put_object().bucket(b).key(k).presigned(config).await;
            presigned.map_err(|e| Failure::s3(&what, e))?
        }
        Transfer::UploadPart => {
            let (Some(upload_id), Some(part)) = (r.upload_id, r.part) else {
                return Err(Failure::invalid("upload_part needs upload_id and part"));
            };
            let request = client.upload_part().bucket(b).key(k);
            let request = request.upload_id(upload_id).part_number(part);
            let presigned = request.presigned(config).await;
            presigned.map_err(|e| Failure::s3(&what, e))?
        }
    };
    Ok(Json(Presigned {
        method: request.method().to_owned(),
        url: request.uri().to_owned(),
        headers: request
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
    }))
}

/// What `POST /api/buckets/{bucket}/uploads` takes.
#[derive(Deserialize)]
pub struct NewUpload {
    key: String,
}

/// An upload in parts, begun.
#[derive(Serialize)]
pub struct Upload {
    key: String,
    upload_id: String,
}

/// `POST /api/buckets/{bucket}/uploads`: begins an upload in parts, whose
/// parts then go to presigned URLs.
pub async fn begin_upload(
    State(api): Shared,
    Path(bucket): Path<String>,
    Json(new): Json<NewUpload>,
) -> Result<(StatusCode, Json<Upload>), Failure> {
    let what = format!("beginning an upload to s3://{bucket}/{}", new.key);
    let begun = api
        .client
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&new.key)
        .send()
        .await
        .map_err(|e| Failure::s3(&what, e))?;
    let upload_id = begun
        .upload_id()
        .ok_or_else(|| Failure::invalid(format!("{what}: the store gave no upload id")))?;
    let upload = Upload {
        key: new.key,
        upload_id: upload_id.to_owned(),
    };
    Ok((StatusCode::CREATED, Json(upload)))
}

/// One uploaded part, as its PUT answered.
#[derive(Deserialize)]
pub struct UploadedPart {
    part: i32,
    etag: String,
}

/// What `POST /api/buckets/{bucket}/uploads/complete` takes.
#[derive(Deserialize)]
pub struct Completion {
    key: String,
    upload_id: String,
    parts: Vec<UploadedPart>,
}

/// An upload in parts, joined into its object.
#[derive(Serialize)]
pub struct Completed {
    key: String,
    /// The object's ETag: the parts' digest and their count (`…-2`).
    etag: Option<String>,
}

/// `POST /api/buckets/{bucket}/uploads/complete`: joins the parts into the
/// object; the store checks every part's ETag.
pub async fn complete_upload(
    State(api): Shared,
    Path(bucket): Path<String>,
    Json(c): Json<Completion>,
) -> Result<Json<Completed>, Failure> {
    let what = format!("completing the upload to s3://{bucket}/{}", c.key);
    let parts = c
        .parts
        .into_iter()
        .map(|p| {
            CompletedPart::builder()
                .part_number(p.part)
                .e_tag(p.etag)
                .build()
        })
        .collect();
    let done = api
        .client
        .complete_multipart_upload()
        .bucket(&bucket)
        .key(&c.key)
        .upload_id(&c.upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| Failure::s3(&what, e))?;
    Ok(Json(Completed {
        key: c.key,
        etag: done.e_tag().map(unquoted),
    }))
}

/// `?key=…&upload_id=…` of an upload to abort.
#[derive(Deserialize)]
pub struct UploadQuery {
    key: String,
    upload_id: String,
}

/// `DELETE /api/buckets/{bucket}/uploads?key=…&upload_id=…`: abandons an
/// upload in parts and its parts (a browser's upload that failed midway).
pub async fn abort_upload(
    State(api): Shared,
    Path(bucket): Path<String>,
    Query(q): Query<UploadQuery>,
) -> Result<StatusCode, Failure> {
    let what = format!("aborting the upload to s3://{bucket}/{}", q.key);
    api.client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key(&q.key)
        .upload_id(&q.upload_id)
        .send()
        .await
        .map_err(|e| Failure::s3(&what, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The store's endpoint, reached by `host` instead of its own address.
fn endpoint_for(store: &str, host: Option<&str>) -> Result<String, Failure> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Ok(store.to_owned());
    };
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    let uri: Uri = store
        .parse()
        .map_err(|e| Failure::invalid(format!("the store's address {store}: {e}")))?;
    if !valid {
        return Err(Failure::invalid(format!(
            "host {host:?} is not a host name or an IP address"
        )));
    }
    let scheme = uri.scheme_str().unwrap_or("http");
    Ok(match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// A client that signs for `endpoint`. It adds no checksum of its own: a
/// presigned PUT's body is unknown when it is signed.
fn presigning_client(api: &StoreApi, endpoint: &str) -> aws_sdk_s3::Client {
    let config = api
        .client
        .config()
        .to_builder()
        .endpoint_url(endpoint)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn rfc3339(t: &DateTime) -> String {
    t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default()
}

fn unquoted(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}
