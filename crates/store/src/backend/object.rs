//! Object operations: HeadObject, GetObject, GetObjectAttributes, PutObject, CopyObject,
//! DeleteObject, DeleteObjects.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use tokio::sync::mpsc;

use super::{NasStore, blocking, quick_io};
use crate::atomic::{AtomicFile, sync_dir};
use crate::bucket::NasBucket;
use crate::checksum::{self, ExpectedDigests, with_typed_checksums};
use crate::error::{IoContext, StoreError};
use crate::key::ObjectKey;
use crate::meta::{At, ContentHeaders, ObjectMeta, md5_file, mtime_ns};
use crate::upload;

/// Objects up to this size are read in one go; larger ones are streamed.
const SMALL_OBJECT: u64 = 1 << 20;
/// Objects up to this size are read in one go on the async thread, where
/// the bucket's file system allows (`quick_io`).
const QUICK_READ: u64 = 64 << 10;
/// Chunk size when streaming a file out.
const READ_CHUNK: u64 = 1 << 20;
/// MD5 of zero bytes: the ETag of directory markers.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// An existing object, pinned: its data, attributes and metadata all come
/// from one open file, so a PUT replacing it meanwhile cannot mix versions.
pub(super) struct FoundObject {
    /// The open file; `None` for a directory marker, which has no data.
    pub file: Option<File>,
    /// Its attributes (fstat of `file`).
    pub attrs: fs::Metadata,
    /// Its metadata (ETag, content type, user metadata, checksums).
    pub meta: ObjectMeta,
    /// Its bytes, whole, when a GET kept them ([`crate::hot::HotObjects`]).
    pub kept: Option<Bytes>,
}

impl FoundObject {
    /// The bytes of part `number` (1-based). An object written whole is its
    /// own single part, as on S3.
    pub fn part(&self, number: i32) -> Result<std::ops::Range<u64>, StoreError> {
        let whole = [self.meta.size];
        let sizes: &[u64] = match self.meta.parts.as_slice() {
            [] => &whole,
            parts => parts,
        };
        let index = usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .filter(|i| *i < sizes.len())
            .ok_or(StoreError::InvalidPartNumber(number))?;
        let start: u64 = sizes[..index].iter().sum();
        Ok(start..start + sizes[index])
    }

    pub fn etag(&self) -> ETag {
        ETag::Strong(self.meta.etag.clone())
    }
    pub fn last_modified(&self) -> Timestamp {
        Timestamp::from(self.attrs.modified().unwrap_or(std::time::UNIX_EPOCH))
    }
    pub fn content_type(&self, key: &ObjectKey) -> String {
        self.meta.content_type.clone().unwrap_or_else(|| {
            if key.is_dir_marker() {
                "application/x-directory".into()
            } else {
                mime_guess::from_path(key.as_str())
                    .first_or_octet_stream()
                    .to_string()
            }
        })
    }
    fn user_metadata(&self) -> Option<Metadata> {
        (!self.meta.user.is_empty()).then(|| {
            self.meta
                .user
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

/// Finds the object under `key` (blocking). Directories are objects only for
/// directory-marker keys; files only for ordinary keys.
pub(super) fn find(bucket: &NasBucket, key: &ObjectKey) -> Result<FoundObject, StoreError> {
    let path = bucket.path_of(key);
    let no_such_key = || StoreError::NoSuchKey(key.to_string());
    let missing = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        )
    };
    let reading = || format!("reading {}", path.display());
    let file = match bucket.open_key(key)? {
        Ok(f) => f,
        Err(e) if missing(&e) => return Err(no_such_key()),
        Err(e) => return Err(e).io_context(reading),
    };
    let attrs = file.metadata().io_context(reading)?;
    if attrs.is_dir() {
        if !key.is_dir_marker() || path == bucket.root {
            return Err(no_such_key());
        }
        // A directory is the object `key/` if it was PUT as a marker, or is empty (as listed).
        let empty = || fs::read_dir(&path).is_ok_and(|mut entries| entries.next().is_none());
        let stored = bucket.meta.get(At::Path(&path), &key.rel_path());
        let Some(stored) = stored.or_else(|| empty().then(ObjectMeta::default)) else {
            return Err(no_such_key());
        };
        let meta = ObjectMeta {
            etag: EMPTY_MD5.into(),
            size: 0,
            mtime_ns: mtime_ns(&attrs),
            ..stored
        };
        return Ok(FoundObject {
            file: None,
            attrs,
            meta,
            kept: None,
        });
    }
    if !attrs.is_file() || key.is_dir_marker() {
        return Err(no_such_key());
    }
    if let Some((meta, kept)) = bucket.hot.as_ref().and_then(|hot| hot.get(&attrs)) {
        return Ok(FoundObject {
            file: Some(file),
            attrs,
            meta,
            kept: Some(kept),
        });
    }
    let meta = bucket
        .meta
        .load_or_compute(At::File(&file), &path, &key.rel_path(), &attrs)
        .io_context(reading)?;
    Ok(FoundObject {
        file: Some(file),
        attrs,
        meta,
        kept: None,
    })
}

/// The conditional headers of a read.
#[derive(Default)]
pub(super) struct Conditions {
    pub if_match: Option<ETagCondition>,
    pub if_none_match: Option<ETagCondition>,
    pub if_modified_since: Option<Timestamp>,
    pub if_unmodified_since: Option<Timestamp>,
}

fn unix_seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn matches(cond: &ETagCondition, etag: &ETag) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.value(),
    }
}

impl Conditions {
    /// Applies RFC 9110's precedence: If-Match, then If-Unmodified-Since (only
    /// without If-Match), then If-None-Match, then If-Modified-Since (only
    /// without If-None-Match).
    pub fn check(&self, obj: &FoundObject) -> Result<(), StoreError> {
        let etag = obj.etag();
        let modified = unix_seconds(&obj.last_modified());
        if let Some(c) = &self.if_match {
            if !matches(c, &etag) {
                return Err(StoreError::PreconditionFailed);
            }
        } else if let Some(t) = &self.if_unmodified_since
            && modified > unix_seconds(t)
        {
            return Err(StoreError::PreconditionFailed);
        }
        let changed = match &self.if_none_match {
            Some(c) => !matches(c, &etag),
            None => self
                .if_modified_since
                .as_ref()
                .is_none_or(|t| modified > unix_seconds(t)),
        };
        if !changed {
            return Err(StoreError::NotModified {
                etag: etag.value().to_string(),
                last_modified: obj.last_modified(),
            });
        }
        Ok(())
    }
}

pub(super) async fn head_object(
    store: &NasStore,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let k = key.clone();
    let b = Arc::clone(&bucket);
    let obj = quick_io(&bucket, move || find(&b, &k)).await?;
    Conditions {
        if_match: input.if_match,
        if_none_match: input.if_none_match,
        if_modified_since: input.if_modified_since,
        if_unmodified_since: input.if_unmodified_since,
    }
    .check(&obj)?;
    let part = requested_part(&obj, input.part_number, input.range.is_some())?;
    let want_checksums = input.checksum_mode.is_some() && part.is_none();
    let sums = if want_checksums {
        checksum::to_dto(&obj.meta.checksums)
    } else {
        Default::default()
    };
    let (length, content_range, parts_count) = match part {
        Some(part) => (
            part.span.end - part.span.start,
            Some(content_range(&part.span, obj.meta.size)),
            part.parts_count,
        ),
        None => (obj.meta.size, None, None),
    };
    Ok(S3Response::new(with_typed_checksums!(
        sums,
        HeadObjectOutput {
            content_length: Some(i64::try_from(length).unwrap_or(i64::MAX)),
            content_range,
            parts_count,
            content_type: Some(obj.content_type(&key)),
            e_tag: Some(obj.etag()),
            last_modified: Some(obj.last_modified()),
            metadata: obj.user_metadata(),
            accept_ranges: Some("bytes".into()),
            expires: expires_of(&obj.meta.headers),
            cache_control: obj.meta.headers.cache_control,
            content_disposition: obj.meta.headers.content_disposition,
            content_encoding: obj.meta.headers.content_encoding,
            content_language: obj.meta.headers.content_language,
        }
    )))
}

pub(super) async fn get_object(
    store: &NasStore,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let conditions = Conditions {
        if_match: input.if_match,
        if_none_match: input.if_none_match,
        if_modified_since: input.if_modified_since,
        if_unmodified_since: input.if_unmodified_since,
    };
    let (range, part_number) = (input.range, input.part_number);
    let k = key.clone();
    let b = Arc::clone(&bucket);
    let small_object = if bucket.is_local {
        QUICK_READ
    } else {
        SMALL_OBJECT
    };
    let (mut obj, span, small, part) = quick_io(&bucket, move || {
        let obj = find(&b, &k)?;
        conditions.check(&obj)?;
        let part = requested_part(&obj, part_number, range.is_some())?;
        let span = match (&part, range) {
            (Some(part), _) => part.span.clone(),
            (None, Some(r)) => r
                .check(obj.meta.size)
                .map_err(|_| StoreError::InvalidRange)?,
            (None, None) => 0..obj.meta.size,
        };
        let small = if span.end - span.start <= small_object {
            Some(read_small(&b, &obj, span.clone()).io_context(|| format!("reading {k}"))?)
        } else {
            None
        };
        Ok((obj, span, small, part))
    })
    .await?;
    let len = span.end - span.start;
    let body = match small {
        Some(bytes) => StreamingBlob::wrap::<_, io::Error>(stream::once(async move { Ok(bytes) })),
        None => match obj.file.take() {
            Some(file) => stream_file(file, span.clone()),
            None => StreamingBlob::wrap::<_, io::Error>(stream::empty()),
        },
    };
    let parts_count = part.and_then(|part| part.parts_count);
    let content_range =
        (range.is_some() || part_number.is_some()).then(|| content_range(&span, obj.meta.size));
    let sums = if input.checksum_mode.is_some() && content_range.is_none() {
        checksum::to_dto(&obj.meta.checksums)
    } else {
        Default::default()
    };
    let kept = std::mem::take(&mut obj.meta.headers);
    Ok(S3Response::new(with_typed_checksums!(
        sums,
        GetObjectOutput {
            body: Some(body),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            parts_count,
            content_type: Some(
                input
                    .response_content_type
                    .unwrap_or_else(|| obj.content_type(&key)),
            ),
            // The response-* query parameters of (presigned) GETs override the kept headers.
            expires: input.response_expires.or_else(|| expires_of(&kept)),
            content_disposition: input
                .response_content_disposition
                .or(kept.content_disposition),
            content_encoding: input.response_content_encoding.or(kept.content_encoding),
            content_language: input.response_content_language.or(kept.content_language),
            cache_control: input.response_cache_control.or(kept.cache_control),
            e_tag: Some(obj.etag()),
            last_modified: Some(obj.last_modified()),
            metadata: obj.user_metadata(),
            accept_ranges: Some("bytes".into()),
        }
    )))
}

/// The most parts a GetObjectAttributes page lists, as in S3.
const MAX_ATTRIBUTE_PARTS: usize = 1000;

/// GetObjectAttributes: the attributes asked for, of the object as it is.
pub(super) async fn get_object_attributes(
    store: &NasStore,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let obj = blocking(move || find(&bucket, &key)).await?;
    let wants = |name: &str| input.object_attributes.iter().any(|a| a.as_str() == name);
    let checksum = checksum::to_dto(&obj.meta.checksums);
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: wants(ObjectAttributes::ETAG).then(|| obj.etag()),
        last_modified: Some(obj.last_modified()),
        object_size: wants(ObjectAttributes::OBJECT_SIZE)
            .then(|| i64::try_from(obj.meta.size).unwrap_or(i64::MAX)),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        checksum: (wants(ObjectAttributes::CHECKSUM) && checksum != Checksum::default())
            .then_some(checksum),
        object_parts: wants(ObjectAttributes::OBJECT_PARTS)
            .then(|| parts_page(&obj.meta.parts, input.max_parts, input.part_number_marker))
            .flatten(),
        ..Default::default()
    }))
}

/// A page of an object's parts after part `marker`, `max` at most; none
/// for an object written whole, as on S3.
fn parts_page(
    sizes: &[u64],
    max: Option<i32>,
    marker: Option<i32>,
) -> Option<GetObjectAttributesParts> {
    if sizes.is_empty() {
        return None;
    }
    let max = max.map_or(MAX_ATTRIBUTE_PARTS, |m| {
        usize::try_from(m).unwrap_or(0).min(MAX_ATTRIBUTE_PARTS)
    });
    let after = marker.and_then(|m| usize::try_from(m).ok()).unwrap_or(0);
    let numbered = sizes.iter().enumerate().skip(after);
    let parts: Vec<ObjectPart> = numbered
        .clone()
        .take(max)
        .map(|(i, size)| ObjectPart {
            part_number: i32::try_from(i + 1).ok(),
            size: i64::try_from(*size).ok(),
            ..Default::default()
        })
        .collect();
    let truncated = numbered.count() > parts.len();
    let last = parts.last().and_then(|p| p.part_number);
    Some(GetObjectAttributesParts {
        is_truncated: Some(truncated),
        max_parts: i32::try_from(max).ok(),
        next_part_number_marker: truncated.then_some(last).flatten(),
        part_number_marker: marker,
        total_parts_count: i32::try_from(sizes.len()).ok(),
        parts: Some(parts),
    })
}

/// A part a GET or HEAD asked for by `partNumber`.
struct RequestedPart {
    /// Its bytes in the object.
    span: std::ops::Range<u64>,
    /// The object's part count, when it was uploaded in parts.
    parts_count: Option<i32>,
}

/// The part a GET or HEAD asked for by `partNumber`, if any. S3 takes no
/// Range beside it.
fn requested_part(
    obj: &FoundObject,
    part_number: Option<i32>,
    with_range: bool,
) -> Result<Option<RequestedPart>, StoreError> {
    let Some(number) = part_number else {
        return Ok(None);
    };
    if with_range {
        return Err(StoreError::InvalidRequest(
            "a request may give a Range or a partNumber, not both".into(),
        ));
    }
    let span = obj.part(number)?;
    let parts = obj.meta.parts.len();
    let parts_count = (parts > 0).then(|| i32::try_from(parts).unwrap_or(i32::MAX));
    Ok(Some(RequestedPart { span, parts_count }))
}

/// The Content-Range of `span` of an object of `size` bytes.
fn content_range(span: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", span.start, span.end.saturating_sub(1))
}

/// Reads `span` of a small object: from memory if a GET kept it, else from
/// its file, offering what it read to the bucket's kept objects (which keep
/// only whole objects).
fn read_small(
    bucket: &NasBucket,
    obj: &FoundObject,
    span: std::ops::Range<u64>,
) -> io::Result<Bytes> {
    if let Some(kept) = &obj.kept {
        let (start, end) = (usize::try_from(span.start), usize::try_from(span.end));
        return match (start, end) {
            (Ok(start), Ok(end)) if end <= kept.len() => Ok(kept.slice(start..end)),
            _ => Err(shrank()),
        };
    }
    let bytes = read_span(obj.file.as_ref(), span)?;
    if let (Some(hot), Some(_)) = (&bucket.hot, &obj.file) {
        hot.put(&obj.attrs, &obj.meta, &bytes);
    }
    Ok(bytes)
}

/// Reads `span` of an object's data; a directory marker (no file) has none.
/// One positioned read (`pread`), not a seek and a read: a small GET's
/// system calls are most of its cost. The buffer is zeroed first, which for
/// the small spans read here costs less than the call saved.
fn read_span(file: Option<&File>, span: std::ops::Range<u64>) -> io::Result<Bytes> {
    let Some(file) = file else {
        return Ok(Bytes::new());
    };
    let mut buf = vec![0; usize::try_from(span.end - span.start).unwrap_or(0)];
    file.read_exact_at(&mut buf, span.start).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            shrank()
        } else {
            e
        }
    })?;
    Ok(Bytes::from(buf))
}

/// What a read that finds fewer bytes than the object holds fails with.
fn shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file shrank while being read",
    )
}

/// Reads exactly `len` bytes into a fresh buffer. `read_to_end` fills spare
/// capacity without zeroing it first, which a zeroed buffer would cost on
/// every chunk of a large GET.
fn read_chunk(file: &mut impl Read, len: u64) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.by_ref().take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(shrank());
    }
    Ok(Bytes::from(buf))
}

/// Streams `span` of the file from a blocking thread, a chunk ahead of the network.
fn stream_file(mut file: File, span: std::ops::Range<u64>) -> StreamingBlob {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let send = |r| tx.blocking_send(r).is_ok();
        if let Err(e) = file.seek(SeekFrom::Start(span.start)) {
            send(Err(e));
            return;
        }
        let mut left = span.end - span.start;
        while left > 0 {
            let n = left.min(READ_CHUNK);
            let result = read_chunk(&mut file, n);
            let failed = result.is_err();
            if !send(result) || failed {
                return;
            }
            left -= n;
        }
    });
    StreamingBlob::wrap(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn user_meta_map(metadata: Option<Metadata>) -> std::collections::BTreeMap<String, String> {
    metadata
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

/// The standard headers of an upload request (PutObject, CopyObject,
/// CreateMultipartUpload: the same five fields), as the object keeps them.
macro_rules! content_headers_of {
    ($input:expr) => {
        $crate::backend::object::content_headers(
            $input.cache_control,
            $input.content_disposition,
            $input.content_encoding,
            $input.content_language,
            $input.expires,
        )
    };
}
pub(super) use content_headers_of;

/// The standard headers of an upload, as the object keeps them.
pub(super) fn content_headers(
    cache_control: Option<CacheControl>,
    content_disposition: Option<ContentDisposition>,
    content_encoding: Option<ContentEncoding>,
    content_language: Option<ContentLanguage>,
    expires: Option<Expires>,
) -> ContentHeaders {
    let http_date = |t: Timestamp| {
        let mut text = Vec::new();
        t.format(TimestampFormat::HttpDate, &mut text).ok()?;
        String::from_utf8(text).ok()
    };
    // aws-chunked names how this request's body was sent, not the object's
    // encoding: S3 keeps only the other codings.
    let content_encoding = content_encoding.and_then(|codings| {
        let is_chunked = |c: &&str| c.eq_ignore_ascii_case("aws-chunked");
        let tokens: Vec<&str> = codings.split(',').map(str::trim).collect();
        if !tokens.iter().any(is_chunked) {
            return Some(codings);
        }
        let kept: Vec<&str> = tokens.into_iter().filter(|c| !is_chunked(c)).collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    ContentHeaders {
        cache_control,
        content_disposition,
        content_encoding,
        content_language,
        expires: expires.and_then(http_date),
    }
}

/// A kept Expires header as S3's output wants it.
fn expires_of(headers: &ContentHeaders) -> Option<Timestamp> {
    let text = headers.expires.as_deref()?;
    Timestamp::parse(TimestampFormat::HttpDate, text).ok()
}

pub(super) async fn put_object(
    store: &NasStore,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let expected = ExpectedDigests::from_headers(&req.headers)?;
    let trailers = req.trailing_headers;
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    if key.is_dir_marker() {
        let b = Arc::clone(&bucket);
        blocking(move || put_dir_marker(&b, &key)).await?;
        return Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(EMPTY_MD5.into())),
            ..Default::default()
        }));
    }
    let placement = Placement::of(input.if_match, input.if_none_match);
    let declared = input.content_length;
    let (content_type, user) = (input.content_type, user_meta_map(input.metadata));
    let headers = content_headers_of!(input);
    let meta_of = move |received: &upload::ReceivedBody| ObjectMeta {
        etag: hex::encode(received.md5),
        size: received.size,
        mtime_ns: 0,
        ino: 0,
        content_type,
        user,
        checksums: received.checksums.clone(),
        headers,
        parts: Vec::new(),
    };
    let received = if declared.is_some_and(|n| n <= upload::IN_MEMORY_LIMIT) {
        let chunks = upload::gather(input.body).await?;
        blocking(move || {
            prepare_destination(&bucket, &key, &placement)?;
            let received = upload::write_gathered(
                &bucket.tmp_dir(),
                &chunks,
                declared,
                &expected,
                trailers.as_ref(),
            )?;
            let (meta, summary) = (meta_of(&received), received.summary());
            commit(&bucket, &key, received.file, meta, placement)?;
            Ok(summary)
        })
        .await?
    } else {
        let (b, k) = (Arc::clone(&bucket), key.clone());
        let early = placement.clone();
        blocking(move || prepare_destination(&b, &k, &early)).await?;
        let received = upload::receive(
            &bucket.tmp_dir(),
            input.body,
            declared,
            &expected,
            trailers.as_ref(),
        )
        .await?;
        let summary = received.summary();
        let meta = meta_of(&received);
        blocking(move || commit(&bucket, &key, received.file, meta, placement)).await?;
        summary
    };
    let etag = hex::encode(received.md5);
    let sums = checksum::to_dto(&received.checksums);
    Ok(S3Response::new(with_typed_checksums!(
        sums,
        PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            size: Some(i64::try_from(received.size).unwrap_or(i64::MAX)),
        }
    )))
}

fn put_dir_marker(bucket: &NasBucket, key: &ObjectKey) -> Result<(), StoreError> {
    let path = bucket.path_of(key);
    bucket.check_inside_bucket(&path, key)?;
    if path.is_file() {
        return Err(StoreError::ParentIsObject(key.to_string()));
    }
    bucket.create_parents(&path.join("marker"), key)?;
    let marker = ObjectMeta {
        etag: EMPTY_MD5.into(),
        ..ObjectMeta::default()
    };
    bucket
        .meta
        .set(At::Path(&path), &key.rel_path(), &marker)
        .io_context(|| format!("marking {key}"))
}

/// Checks that `key` can become a file (blocking): not a directory, no parent
/// is a file, inside the volume, and passing the write's condition as it
/// stands now, so a doomed upload fails before its body is read (the commit
/// checks again).
pub(super) fn prepare_destination(
    bucket: &NasBucket,
    key: &ObjectKey,
    placement: &Placement,
) -> Result<(), StoreError> {
    if key.is_dir_marker() {
        return Err(StoreError::InvalidArgument(format!(
            "{key} is a directory marker (it ends in '/') and cannot hold data"
        )));
    }
    let path = bucket.path_of(key);
    bucket.check_inside_bucket(&path, key)?;
    if path.is_dir() {
        return Err(StoreError::ObjectIsDirectory(key.to_string()));
    }
    match placement {
        Placement::CreateOnly if path.exists() => return Err(StoreError::PreconditionFailed),
        Placement::IfCurrent(condition) => condition.check(bucket, key)?,
        _ => {}
    }
    bucket.check_parents(&path, key)
}

/// Stores `meta` on the temp file and renames it over `key` (blocking).
pub(super) fn commit(
    bucket: &NasBucket,
    key: &ObjectKey,
    mut file: AtomicFile,
    mut meta: ObjectMeta,
    mode: Placement,
) -> Result<(), StoreError> {
    let path = bucket.path_of(key);
    let rel = key.rel_path();
    let attrs = file
        .file()
        .metadata()
        .io_context(|| "reading the temp file".into())?;
    meta.mtime_ns = mtime_ns(&attrs);
    meta.ino = attrs.ino();
    bucket
        .meta
        .set(At::File(file.file()), &rel, &meta)
        .io_context(|| format!("storing metadata of {key}"))?;
    file.sync(bucket.ownership)
        .io_context(|| format!("storing {key}"))?;
    place(bucket, key, &path, &mut file, &mode)?;
    if !bucket.meta.travels_with_file() {
        // Sidecar metadata must name the file's final attributes: rename keeps mtime.
        bucket
            .meta
            .set(At::Path(&path), &rel, &meta)
            .io_context(|| format!("storing metadata of {key}"))?;
    }
    Ok(())
}

/// Whether a commit may replace an existing object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Placement {
    /// Replace whatever is there (the usual PUT).
    Replace,
    /// Only create: `If-None-Match: *` fails if the key exists, atomically.
    CreateOnly,
    /// Replace only while the object there passes the condition, checked
    /// under the key's lock.
    IfCurrent(WriteCondition),
}

impl Placement {
    /// The placement a write's `If-Match` and `If-None-Match` headers ask for.
    pub(super) fn of(
        if_match: Option<ETagCondition>,
        if_none_match: Option<ETagCondition>,
    ) -> Self {
        match (if_match, if_none_match) {
            (None, None) => Placement::Replace,
            (None, Some(ETagCondition::Any)) => Placement::CreateOnly,
            (if_match, if_none_match) => Placement::IfCurrent(WriteCondition {
                if_match,
                if_none_match,
            }),
        }
    }
}

/// The conditions of a conditional write, as S3 checks them against the
/// object it would replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WriteCondition {
    /// The object must exist (404 otherwise) with this ETag, or any (`*`).
    if_match: Option<ETagCondition>,
    /// The object must not exist (`*`) or must not have this ETag.
    if_none_match: Option<ETagCondition>,
}

impl WriteCondition {
    /// Checks the condition against the object now under `key`, if any.
    fn check(&self, bucket: &NasBucket, key: &ObjectKey) -> Result<(), StoreError> {
        let current = match find(bucket, key) {
            Ok(obj) => Some(obj.etag()),
            Err(StoreError::NoSuchKey(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(condition) = &self.if_match {
            let Some(etag) = &current else {
                return Err(StoreError::NoSuchKey(key.to_string()));
            };
            if !matches(condition, etag) {
                return Err(StoreError::PreconditionFailed);
            }
        }
        if let (Some(condition), Some(etag)) = (&self.if_none_match, &current)
            && matches(condition, etag)
        {
            return Err(StoreError::PreconditionFailed);
        }
        Ok(())
    }
}

/// Attempts at placing a file whose parent directory a concurrent delete
/// removed between our `create_parents` and the rename.
const PLACE_ATTEMPTS: usize = 5;

/// Renames the synced temp file to `path`, recreating parents that a
/// concurrent delete of a sibling key removed as empty meanwhile.
fn place(
    bucket: &NasBucket,
    key: &ObjectKey,
    path: &Path,
    file: &mut AtomicFile,
    mode: &Placement,
) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let may_retry = attempt < PLACE_ATTEMPTS;
        match bucket.create_parents(path, key) {
            Err(StoreError::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound && may_retry =>
            {
                continue;
            }
            other => other?,
        }
        // Again, just before the rename: a dangling link may have gained a target.
        bucket.check_inside_bucket(path, key)?;
        let _turn = bucket.lock_key(key)?;
        let placed = match mode {
            Placement::Replace => file.rename_to(path),
            Placement::CreateOnly => file.link_new(path),
            Placement::IfCurrent(condition) => {
                condition.check(bucket, key)?;
                file.rename_to(path)
            }
        };
        match placed {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound && may_retry => continue,
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    && matches!(mode, Placement::CreateOnly) =>
            {
                return Err(StoreError::PreconditionFailed);
            }
            Err(_) if path.is_dir() => return Err(StoreError::ObjectIsDirectory(key.to_string())),
            Err(e) => return Err(e).io_context(|| format!("storing {key}")),
        }
    }
    let dir = path.parent().unwrap_or(&bucket.root);
    sync_dir(dir).io_context(|| format!("syncing {}", dir.display()))
}

pub(super) async fn copy_object(
    store: &NasStore,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        ..
    } = &input.copy_source
    else {
        return Err(StoreError::InvalidArgument("copy sources must be bucket/key".into()).into());
    };
    let src = store.bucket(src_bucket)?;
    let src_key = ObjectKey::parse(src_key)?;
    let dst = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let conditions = Conditions {
        if_match: input.copy_source_if_match,
        if_none_match: input.copy_source_if_none_match,
        if_modified_since: input.copy_source_if_modified_since,
        if_unmodified_since: input.copy_source_if_unmodified_since,
    };
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if !replace && src.name == dst.name && src_key == key {
        return Err(StoreError::InvalidRequest(
            "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata; \
             send x-amz-metadata-directive: REPLACE with the new metadata"
                .into(),
        )
        .into());
    }
    let (content_type, user) = (input.content_type, user_meta_map(input.metadata));
    let headers = content_headers_of!(input);
    let meta = blocking(move || {
        let obj = find(&src, &src_key)?;
        conditions
            .check(&obj)
            .map_err(|_| StoreError::PreconditionFailed)?;
        prepare_destination(&dst, &key, &Placement::Replace)?;
        let file = copy_to_temp(&dst, &obj, 0..obj.meta.size)?;
        let mut meta = obj.meta.clone();
        if meta.etag.contains('-') {
            meta.etag = md5_file(file.tmp_path()).io_context(|| "hashing the copy".into())?;
        }
        // The copy is written whole: one part, as on S3.
        meta.parts.clear();
        if replace {
            meta.content_type = content_type;
            meta.user = user;
            meta.headers = headers;
        }
        commit(&dst, &key, file, meta.clone(), Placement::Replace)?;
        Ok(meta)
    })
    .await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(meta.etag)),
            last_modified: Some(Timestamp::from(std::time::SystemTime::now())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Copies `span` of an object into a fresh temp file of `bucket` (copy_file_range where the kernel can).
pub(super) fn copy_to_temp(
    bucket: &NasBucket,
    src: &FoundObject,
    span: std::ops::Range<u64>,
) -> Result<AtomicFile, StoreError> {
    let Some(mut input) = src.file.as_ref() else {
        return Err(StoreError::InvalidArgument(
            "a directory marker has no data to copy".into(),
        ));
    };
    let mut file =
        AtomicFile::new_in(&bucket.tmp_dir()).io_context(|| "creating a temp file".into())?;
    input
        .seek(SeekFrom::Start(span.start))
        .io_context(|| "reading the copy source".into())?;
    let copied = io::copy(&mut input.take(span.end - span.start), file.file())
        .io_context(|| "copying the copy source".into())?;
    if copied != span.end - span.start {
        return Err(StoreError::InvalidRange);
    }
    Ok(file)
}

pub(super) async fn delete_object(
    store: &NasStore,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let bucket = store.bucket(&req.input.bucket)?;
    let key = ObjectKey::parse(&req.input.key)?;
    blocking(move || remove(&bucket, &key)).await?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

/// Deletes the object under `key` and the directories it leaves empty (blocking).
/// A missing object is not an error, as in S3.
pub(super) fn remove(bucket: &NasBucket, key: &ObjectKey) -> Result<(), StoreError> {
    let path = bucket.path_of(key);
    bucket.check_inside_bucket(&path, key)?;
    let turn = bucket.lock_key(key)?;
    let result = if key.is_dir_marker() {
        // A directory that still holds objects stays; only its marker goes
        // (the metadata is removed below, for every deleted key).
        match fs::remove_dir(&path) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
            other => other,
        }
    } else if path.is_dir() {
        Ok(())
    } else {
        fs::remove_file(&path)
    };
    match result {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e).io_context(|| format!("deleting {key}")),
    }
    bucket.meta.remove(&path, &key.rel_path());
    drop(turn);
    bucket.remove_empty_parents(&path);
    if let Some(parent) = path.parent().filter(|p| p.exists()) {
        sync_dir(parent).io_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

/// The most keys one DeleteObjects may name, as in S3.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) async fn delete_objects(
    store: &NasStore,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let signer = store.signer(req.credentials.as_ref());
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let quiet = input.delete.quiet.unwrap_or(false);
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(StoreError::MalformedXml(format!(
            "DeleteObjects names {} keys; one request may name at most {MAX_DELETE_KEYS}: send them in batches",
            input.delete.objects.len()
        ))
        .into());
    }
    let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
    let bucket_name = input.bucket;
    let (deleted, errors) = blocking(move || {
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for raw in keys {
            let allowed = signer.as_ref().is_some_and(|p| {
                crate::iam::policy::is_allowed(
                    &p.policies,
                    "s3:DeleteObject",
                    &format!("arn:aws:s3:::{bucket_name}/{raw}"),
                )
            });
            let outcome = if allowed {
                ObjectKey::parse(&raw)
                    .and_then(|k| remove(&bucket, &k))
                    .map_err(s3s::S3Error::from)
            } else {
                Err(s3s::s3_error!(AccessDenied, "access denied"))
            };
            match outcome {
                Ok(()) if !quiet => deleted.push(DeletedObject {
                    key: Some(raw),
                    ..Default::default()
                }),
                Ok(()) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(raw),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                }),
            }
        }
        Ok((deleted, errors))
    })
    .await?;
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_how_a_body_was_sent_not_the_objects_encoding() {
        let encoding = |sent: &str| {
            content_headers(None, None, Some(sent.to_string()), None, None).content_encoding
        };
        assert_eq!(encoding("aws-chunked"), None);
        assert_eq!(encoding("aws-chunked, gzip").as_deref(), Some("gzip"));
        assert_eq!(
            encoding("gzip,br").as_deref(),
            Some("gzip,br"),
            "kept as sent"
        );
    }
}
