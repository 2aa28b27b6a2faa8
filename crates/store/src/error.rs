//! The store's one error type, and its one mapping onto S3 error codes.

use s3s::{S3Error, S3ErrorCode};

/// Everything that can go wrong in the store, named by what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // Category: bad input from the client.
    /// The key could leave the bucket root or confuse the file system.
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The key is longer than S3 allows.
    #[error("the key is {0} bytes; keys may be at most 1024 bytes")]
    KeyTooLong(usize),
    /// An argument of the request is out of range or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A digest or checksum sent with the body does not match the body.
    #[error("{0}")]
    BadDigest(String),
    /// A Content-MD5 header is not base64 of 16 bytes.
    #[error("the Content-MD5 header is not a base64 MD5 digest")]
    InvalidDigest,
    /// The request's XML is well formed but breaks a rule (too many keys).
    #[error("{0}")]
    MalformedXml(String),
    /// The request as a whole cannot be done (a copy onto itself that changes nothing).
    #[error("{0}")]
    InvalidRequest(String),
    /// The body was shorter or longer than its declared length.
    #[error("the body ended after {got} bytes; {expected} were declared")]
    IncompleteBody {
        /// Bytes declared by Content-Length.
        expected: u64,
        /// Bytes received.
        got: u64,
    },

    // Category: the namespace.
    /// No bucket of that name.
    #[error("bucket {0} does not exist")]
    NoSuchBucket(String),
    /// No object under that key.
    #[error("no object under key {0}")]
    NoSuchKey(String),
    /// The bucket name breaks S3's naming rules or the bucket would overlap another.
    #[error("{0}")]
    InvalidBucketName(String),
    /// The bucket name is taken.
    #[error("bucket {0} already exists")]
    BucketAlreadyExists(String),
    /// DeleteBucket on a bucket that still holds objects.
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    /// An object key names an existing directory (`a` while `a/b` exists).
    #[error(
        "key {0} names a directory that holds other objects; delete them first or choose another key"
    )]
    ObjectIsDirectory(String),
    /// A parent segment of the key is an existing object (`a/b` while object `a` exists).
    #[error("a parent of key {0} is an existing object, so it cannot be a directory")]
    ParentIsObject(String),
    /// A path resolves outside the bucket's own tree (a symbolic link
    /// pointing into another bucket, out of the volume, or into a hidden
    /// directory).
    #[error("key {0} resolves, through a symbolic link, outside the bucket's own directory")]
    OutsideBucket(String),

    // Category: multipart uploads.
    /// No upload of that id: it was completed, aborted or never existed.
    #[error("upload {0} not found; it was completed or aborted")]
    NoSuchUpload(String),
    /// The upload was created by another user, who alone may use it.
    #[error(
        "upload {0} was created by another user; only that user may add parts to it, list, complete or abort it"
    )]
    NotInitiator(String),
    /// A part listed in CompleteMultipartUpload was not uploaded or has another ETag.
    #[error("{0}")]
    InvalidPart(String),
    /// Parts listed out of order in CompleteMultipartUpload.
    #[error("parts must be listed in ascending order of part number")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("part {part} is {size} bytes; every part but the last must be at least 5 MiB")]
    EntityTooSmall {
        /// The part number.
        part: i32,
        /// Its size.
        size: u64,
    },
    /// An object or part is larger than S3 allows.
    #[error("{0}")]
    EntityTooLarge(String),

    // Category: conditional requests.
    /// An If-Match / If-Unmodified-Since condition failed.
    #[error("a precondition of the request does not hold")]
    PreconditionFailed,
    /// An If-None-Match / If-Modified-Since condition says the client's copy
    /// is current; the answer still names the object's version.
    #[error("not modified")]
    NotModified {
        /// The object's ETag, unquoted.
        etag: String,
        /// Its modification time.
        last_modified: s3s::dto::Timestamp,
    },
    /// A partNumber the object does not have.
    #[error("part {0} is not one of the object's parts")]
    InvalidPartNumber(i32),
    /// The Range header lies outside the object.
    #[error("the requested range is not satisfiable")]
    InvalidRange,

    // Category: the server's own state.
    /// The volume has no space left.
    #[error("no space left on the volume")]
    NoSpace,
    /// The catalog database failed; lost or busy ones are worth a retry.
    #[error(transparent)]
    Database(#[from] tread_catalog::DbError),
    /// A file system error we did not expect.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Attaches a "what were we doing" context to an I/O error.
pub trait IoContext<T> {
    /// Wraps the error with `context`, mapping ENOSPC to [`StoreError::NoSpace`].
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| {
            if source.raw_os_error() == Some(libc::ENOSPC) {
                StoreError::NoSpace
            } else {
                StoreError::Io {
                    context: context(),
                    source,
                }
            }
        })
    }
}

impl From<crate::catalog::CatalogError> for StoreError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        use crate::catalog::CatalogError as C;
        match e {
            C::AlreadyExists { name, .. } => Self::BucketAlreadyExists(name),
            C::Invalid(msg) => Self::InvalidBucketName(msg),
            C::NotFound { name, .. } => Self::NoSuchBucket(name),
            C::Db(e) => Self::Database(e),
            other => Self::Io {
                context: "updating the catalog".into(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

fn custom(code: &'static str, status: http::StatusCode, msg: String) -> S3Error {
    let mut err = S3Error::with_message(S3ErrorCode::Custom(code.into()), msg);
    err.set_status_code(status);
    err
}

/// The ETag and Last-Modified headers a 304 carries, as RFC 9110 asks.
fn validators(etag: &str, last_modified: &s3s::dto::Timestamp) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(http::header::ETAG, value);
    }
    let mut date = Vec::new();
    if last_modified
        .format(s3s::dto::TimestampFormat::HttpDate, &mut date)
        .is_ok()
        && let Ok(value) = http::HeaderValue::from_bytes(&date)
    {
        headers.insert(http::header::LAST_MODIFIED, value);
    }
    headers
}

impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> Self {
        use StoreError as E;
        use http::StatusCode as H;
        let msg = e.to_string();
        let code = match e {
            E::InvalidKey(_) | E::OutsideBucket(_) => S3ErrorCode::InvalidArgument,
            E::KeyTooLong(_) => S3ErrorCode::KeyTooLongError,
            E::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
            E::BadDigest(_) => S3ErrorCode::BadDigest,
            E::InvalidDigest => S3ErrorCode::InvalidDigest,
            E::IncompleteBody { .. } => S3ErrorCode::IncompleteBody,
            E::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
            E::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
            E::BucketAlreadyExists(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
            E::InvalidBucketName(_) => S3ErrorCode::InvalidBucketName,
            E::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
            E::ObjectIsDirectory(_) => {
                return custom("ExistingObjectIsDirectory", H::CONFLICT, msg);
            }
            E::ParentIsObject(_) => return custom("ObjectParentIsFile", H::CONFLICT, msg),
            E::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
            E::NotInitiator(_) => S3ErrorCode::AccessDenied,
            E::InvalidPart(_) => S3ErrorCode::InvalidPart,
            E::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            E::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
            E::EntityTooLarge(_) => S3ErrorCode::EntityTooLarge,
            E::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            E::MalformedXml(_) => S3ErrorCode::MalformedXML,
            E::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
            E::NotModified {
                ref etag,
                ref last_modified,
            } => {
                let mut err = S3Error::with_message(S3ErrorCode::NotModified, msg.clone());
                err.set_headers(validators(etag, last_modified));
                return err;
            }
            E::InvalidRange => S3ErrorCode::InvalidRange,
            E::InvalidPartNumber(_) => {
                return custom("InvalidPartNumber", H::RANGE_NOT_SATISFIABLE, msg);
            }
            E::NoSpace => return custom("XNoSpaceLeftOnDevice", H::INSUFFICIENT_STORAGE, msg),
            E::Database(tread_catalog::DbError::Busy(_)) => S3ErrorCode::SlowDown,
            E::Database(ref db) if db.is_transient() => S3ErrorCode::ServiceUnavailable,
            E::Database(_) | E::Io { .. } => {
                tracing::error!(error = %msg, "internal error");
                return S3Error::with_message(
                    S3ErrorCode::InternalError,
                    "internal error; see the server log",
                );
            }
        };
        S3Error::with_message(code, msg)
    }
}
