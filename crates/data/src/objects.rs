//! Where a dataset or a model lives: an S3 prefix or a local directory.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use md5::{Digest, Md5};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One object under an [`ObjectDir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the directory, `/`-separated (`good/001.jpg`).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The S3 ETag without quotes; for local files the MD5 of the content,
    /// which is what an S3 server over the same files reports.
    pub etag: String,
}

/// Why objects could not be listed, read or written.
#[derive(Debug, Error)]
pub enum ObjectsError {
    /// The URI is neither `s3://bucket[/prefix]` nor a path.
    #[error("{0:?} is not a location: use s3://bucket/prefix or a local directory")]
    BadUri(String),
    /// The S3 service answered with an error or could not be reached.
    #[error("S3 {operation} {uri} failed: {message}")]
    S3 {
        /// The operation (list, get, put).
        operation: &'static str,
        /// The object or prefix.
        uri: String,
        /// The service's error, with its code.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A directory of objects: every object under an S3 prefix, or every file
/// under a local directory. Keys are relative to it.
#[derive(Clone, Debug)]
pub enum ObjectDir {
    /// An S3 bucket and a prefix that is empty or ends with `/`.
    S3 {
        /// The client, configured from the standard AWS environment.
        client: aws_sdk_s3::Client,
        /// Bucket name.
        bucket: String,
        /// Key prefix, empty or ending with `/`.
        prefix: String,
    },
    /// A local directory.
    Local(PathBuf),
}

impl ObjectDir {
    /// Opens `s3://bucket/prefix` with the standard AWS configuration
    /// (environment, profiles, `AWS_ENDPOINT_URL`), or a local path.
    pub async fn open(uri: &str) -> Result<Self, ObjectsError> {
        let Some(rest) = uri.strip_prefix("s3://") else {
            if uri.is_empty() || uri.contains("://") {
                return Err(ObjectsError::BadUri(uri.to_string()));
            }
            return Ok(Self::Local(PathBuf::from(uri)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ObjectsError::BadUri(uri.to_string()));
        }
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let client = match PROCESS_ACCESS.get() {
            Some(access) => access.client(),
            None => s3_client().await,
        };
        Ok(Self::S3 {
            client,
            bucket: bucket.to_string(),
            prefix,
        })
    }

    /// Opens `s3://bucket/prefix` as `access`, whatever the environment
    /// says; a local path is opened as with [`ObjectDir::open`].
    pub async fn open_as(uri: &str, access: &S3Access) -> Result<Self, ObjectsError> {
        match Self::open(uri).await? {
            Self::S3 { bucket, prefix, .. } => Ok(Self::S3 {
                client: access.client(),
                bucket,
                prefix,
            }),
            local => Ok(local),
        }
    }

    /// The directory as a URI (`s3://bucket/prefix/` or the path).
    pub fn uri(&self) -> String {
        match self {
            Self::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            Self::Local(path) => path.display().to_string(),
        }
    }

    /// The URI of one object.
    pub fn uri_of(&self, key: &str) -> String {
        match self {
            Self::S3 { .. } => format!("{}{key}", self.uri()),
            Self::Local(path) => path.join(key).display().to_string(),
        }
    }

    /// A directory below this one.
    pub fn join(&self, sub: &str) -> Self {
        let sub = sub.trim_matches('/');
        match self {
            Self::S3 {
                client,
                bucket,
                prefix,
            } => Self::S3 {
                client: client.clone(),
                bucket: bucket.clone(),
                prefix: format!("{prefix}{sub}/"),
            },
            Self::Local(path) => Self::Local(path.join(sub)),
        }
    }

    /// Every object below, sorted by key. Directory markers (keys ending
    /// in `/`) are not objects and are left out.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, ObjectsError> {
        let mut objects = match self {
            Self::S3 {
                client,
                bucket,
                prefix,
            } => list_s3(client, bucket, prefix).await?,
            Self::Local(path) => {
                let root = path.clone();
                tokio::task::spawn_blocking(move || list_local(&root))
                    .await
                    .map_err(|e| io_error(path, std::io::Error::other(e)))??
            }
        };
        objects.retain(|o| !o.key.ends_with('/'));
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Reads one object.
    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectsError> {
        match self {
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let failed = |e: String| s3_error("get", self.uri_of(key), e);
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await
                    .map_err(|e| failed(error_text(&e)))?;
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Ok(body.into_bytes())
            }
            Self::Local(path) => {
                let file = path.join(key);
                tokio::fs::read(&file)
                    .await
                    .map(Bytes::from)
                    .map_err(|e| io_error(&file, e))
            }
        }
    }

    /// Writes one object whole (a local file appears only once complete).
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), ObjectsError> {
        match self {
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| s3_error("put", self.uri_of(key), error_text(&e)))?;
                Ok(())
            }
            Self::Local(path) => {
                let file = path.join(key);
                tokio::task::spawn_blocking(move || write_local(&file, &body))
                    .await
                    .map_err(|e| io_error(path, std::io::Error::other(e)))?
            }
        }
    }
}

/// Reads one object (`s3://bucket/key`) or file (a path; a bare name is in
/// the current directory) into memory: how a model or an image is named on
/// the command line and in the API.
pub async fn read_uri(uri: &str) -> Result<Bytes, ObjectsError> {
    let bad = || ObjectsError::BadUri(uri.to_string());
    if uri
        .strip_prefix("s3://")
        .is_some_and(|rest| !rest.contains('/'))
    {
        return Err(bad());
    }
    let (dir, name) = match uri.rsplit_once('/') {
        Some((_, "")) => return Err(bad()),
        Some(("", name)) => ("/", name),
        Some(split) => split,
        None if uri.is_empty() => return Err(bad()),
        None => (".", uri),
    };
    ObjectDir::open(dir).await?.get(name).await
}

/// An S3 endpoint and the keys to use there, given explicitly rather than
/// through the environment: a pipeline's own user, or `tread up`'s.
#[derive(Clone)]
pub struct S3Access {
    /// The endpoint URL (`http://127.0.0.1:9000`).
    pub endpoint: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Access {
    /// A client of this endpoint with these keys (path-style addressing).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let credentials = aws_sdk_s3::config::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "tread",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(credentials)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

static PROCESS_ACCESS: std::sync::OnceLock<S3Access> = std::sync::OnceLock::new();

/// Makes every later [`ObjectDir::open`] of an `s3://` URI in this process
/// use `access` instead of the environment: `tread up` reads models from its
/// own store as a user of its own. Only the first call counts.
pub fn use_process_access(access: S3Access) {
    let _ = PROCESS_ACCESS.set(access);
}

/// A client from the standard AWS chain. Path-style addressing when an
/// endpoint is set (MinIO, tread's own store, most private S3), because
/// virtual-host names need DNS such servers rarely have; a region default
/// because private servers do not care but the SDK insists.
async fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_config::from_env()
        .region(
            aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1"),
        )
        .load()
        .await;
    let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

async fn list_s3(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectInfo>, ObjectsError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| s3_error("list", format!("s3://{bucket}/{prefix}"), error_text(&e)))?;
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            objects.push(ObjectInfo {
                key: key.strip_prefix(prefix).unwrap_or(key).to_string(),
                size: object.size().unwrap_or(0).max(0) as u64,
                etag: object
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
            });
        }
    }
    Ok(objects)
}

fn list_local(root: &Path) -> Result<Vec<ObjectInfo>, ObjectsError> {
    let mut objects = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
            let path = entry.map_err(|e| io_error(&dir, e))?.path();
            // Hidden entries are not data: a NAS bucket keeps its temp
            // files and metadata under `.tread/`.
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                objects.push(local_object(root, &path, meta.len())?);
            }
        }
    }
    Ok(objects)
}

fn local_object(root: &Path, path: &Path, size: u64) -> Result<ObjectInfo, ObjectsError> {
    let content = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let relative = path.strip_prefix(root).unwrap_or(path);
    let key: Vec<_> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect();
    Ok(ObjectInfo {
        key: key.join("/"),
        size,
        etag: hex::encode(Md5::digest(&content)),
    })
}

/// Writes beside the target and renames, so a reader never sees half a file.
fn write_local(file: &Path, body: &[u8]) -> Result<(), ObjectsError> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = file.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&temp, body).map_err(|e| io_error(&temp, e))?;
    std::fs::rename(&temp, file).map_err(|e| io_error(file, e))
}

fn io_error(path: &Path, source: std::io::Error) -> ObjectsError {
    ObjectsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn s3_error(operation: &'static str, uri: String, message: String) -> ObjectsError {
    ObjectsError::S3 {
        operation,
        uri,
        message,
    }
}

/// The SDK's error with its service code and message, which its Display
/// alone hides behind "service error".
pub fn error_text<E: std::error::Error + 'static>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_uri_names_one_file_or_object_and_anything_else_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("model.tar.gz");
        std::fs::write(&file, b"bytes").expect("write");
        let read = read_uri(file.to_str().expect("utf-8")).await.expect("read");
        assert_eq!(&read[..], b"bytes");
        for bad in ["", "s3://bucket", "s3://bucket/prefix/", "dir/"] {
            assert!(
                matches!(read_uri(bad).await, Err(ObjectsError::BadUri(_))),
                "{bad:?} was not refused as a URI"
            );
        }
    }
}
