//! The multipart family: Create, UploadPart, UploadPartCopy, Complete, Abort,
//! ListParts, ListMultipartUploads. Uploads are staged in the bucket's hidden
//! `.tread/multipart/<upload id>/` directory, on the same file system as the
//! objects, and joined into the object by one atomic rename at completion.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use md5::{Digest, Md5};
use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use super::object::{
    Placement, commit, content_headers_of, copy_to_temp, find, prepare_destination,
};
use super::{NasStore, blocking, timestamp};
use crate::atomic::{AtomicFile, FileOwnership};
use crate::bucket::NasBucket;
use crate::checksum::{
    self, ExpectedDigests, UploadChecksum, checksums_of, with_checksums, with_typed_checksums,
};
use crate::error::{IoContext, StoreError};
use crate::key::ObjectKey;
use crate::meta::{ContentHeaders, ObjectMeta};
use crate::upload;

/// S3's limits on parts.
const MIN_PART_SIZE: u64 = 5 << 20;
const MAX_PART_SIZE: u64 = 5 << 30;
const MAX_PART_NUMBER: i32 = 10_000;
const MAX_LIST: usize = 1000;

/// What an upload was created with, stored as `upload.json` in its directory.
#[derive(Debug, Serialize, Deserialize)]
struct UploadRecord {
    key: String,
    initiated: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    user: std::collections::BTreeMap<String, String>,
    /// The user who created it: the only one who may use it, as on S3.
    /// Uploads recorded before tread kept it have none and stay open.
    #[serde(default)]
    initiator: Option<String>,
    /// The standard headers the object will keep.
    #[serde(default)]
    headers: ContentHeaders,
    /// The object's checksum as asked at creation: `x-amz-checksum-algorithm`
    /// and `x-amz-checksum-type` as sent (checked then).
    #[serde(default)]
    checksum_algorithm: Option<String>,
    #[serde(default)]
    checksum_type: Option<String>,
}

impl UploadRecord {
    /// The checksum the upload gives its object, if one was asked for.
    fn checksum(&self) -> Option<UploadChecksum> {
        UploadChecksum::requested(
            self.checksum_algorithm.as_deref(),
            self.checksum_type.as_deref(),
        )
        .ok()
        .flatten()
    }
}

/// What a stored part is, stored as `<n>.json` beside its data file `<n>-<etag>`.
#[derive(Debug, Serialize, Deserialize)]
struct PartRecord {
    etag: String,
    size: u64,
    #[serde(default)]
    checksums: std::collections::BTreeMap<String, String>,
}

/// What a completed upload leaves in its directory, in place of its parts,
/// so that a client retrying CompleteMultipartUpload (its answer lost) gets
/// the same answer while the object is still the one the upload made.
#[derive(Debug, Serialize, Deserialize)]
struct CompletedRecord {
    key: String,
    etag: String,
    #[serde(default)]
    initiator: Option<String>,
}

/// The file of a [`CompletedRecord`] in an upload's directory.
const COMPLETED: &str = "completed.json";

/// How long a completed upload answers a repeated CompleteMultipartUpload
/// (then the sweep removes its record): far beyond any client's retries.
const COMPLETED_KEPT: Duration = Duration::from_secs(3600);

/// An upload id: 32 lowercase hex digits, so it is safe as a directory name.
fn upload_dir(bucket: &NasBucket, upload_id: &str) -> Result<PathBuf, StoreError> {
    let valid = upload_id.len() == 32
        && upload_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let dir = bucket.multipart_dir().join(upload_id);
    if valid && dir.is_dir() {
        Ok(dir)
    } else {
        Err(StoreError::NoSuchUpload(upload_id.into()))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

/// Writes `value` as JSON to `dest` atomically (temp file in the same directory, then rename).
fn write_json(dest: &Path, value: &impl Serialize) -> io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut file = AtomicFile::new_in(dir)?;
    serde_json::to_writer(file.file(), value).map_err(io::Error::other)?;
    file.commit(
        dest,
        FileOwnership {
            mode: 0o600,
            uid: None,
            gid: None,
        },
    )
}

/// The user whose access key signed a request.
fn user_of(store: &NasStore, credentials: Option<&Credentials>) -> Option<String> {
    store.signer(credentials).map(|p| p.user.clone())
}

/// The object the completed upload `upload_id` gave `key`, while `key` still
/// holds it, for `caller`, who must have created it.
fn completed_before(
    bucket: &NasBucket,
    upload_id: &str,
    key: &ObjectKey,
    caller: Option<&str>,
) -> Result<ObjectMeta, StoreError> {
    let no_such_upload = || StoreError::NoSuchUpload(upload_id.into());
    let dir = upload_dir(bucket, upload_id)?;
    let done: CompletedRecord = read_json(&dir.join(COMPLETED)).map_err(|_| no_such_upload())?;
    if done.key != key.as_str() {
        return Err(no_such_upload());
    }
    if done.initiator.is_some() && done.initiator.as_deref() != caller {
        return Err(StoreError::NotInitiator(upload_id.into()));
    }
    match find(bucket, key) {
        Ok(obj) if obj.meta.etag == done.etag => Ok(obj.meta),
        _ => Err(no_such_upload()),
    }
}

/// Leaves only `done` in a completed upload's directory (blocking); the
/// object is already in place, so a failure here is only logged.
fn retire(dir: &Path, done: &CompletedRecord) {
    let retired = write_json(&dir.join(COMPLETED), done).and_then(|()| {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name() != COMPLETED {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    });
    if let Err(e) = retired {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a completed upload's parts; the sweep removes them later");
    }
}

/// The upload `upload_id` of `key`, for `caller`, who must have created it.
fn load_upload(
    bucket: &NasBucket,
    upload_id: &str,
    key: &ObjectKey,
    caller: Option<&str>,
) -> Result<(PathBuf, UploadRecord), StoreError> {
    let dir = upload_dir(bucket, upload_id)?;
    let record: UploadRecord = read_json(&dir.join("upload.json"))
        .map_err(|_| StoreError::NoSuchUpload(upload_id.into()))?;
    if record.key != key.as_str() {
        return Err(StoreError::NoSuchUpload(upload_id.into()));
    }
    if record.initiator.is_some() && record.initiator.as_deref() != caller {
        return Err(StoreError::NotInitiator(upload_id.into()));
    }
    Ok((dir, record))
}

pub(super) async fn create_multipart_upload(
    store: &NasStore,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let initiator = user_of(store, req.credentials.as_ref());
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    if key.is_dir_marker() {
        return Err(StoreError::InvalidArgument(
            "a directory marker key (ending in '/') cannot hold data".into(),
        )
        .into());
    }
    let checksum_algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(|a| a.as_str().to_owned());
    let checksum_type = input.checksum_type.as_ref().map(|t| t.as_str().to_owned());
    let sum = UploadChecksum::requested(checksum_algorithm.as_deref(), checksum_type.as_deref())?;
    let record = UploadRecord {
        key: key.to_string(),
        initiated: crate::catalog::now(),
        content_type: input.content_type,
        user: input
            .metadata
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        initiator,
        headers: content_headers_of!(input),
        checksum_algorithm,
        checksum_type,
    };
    let upload_id = uuid::Uuid::now_v7().simple().to_string();
    let dir = bucket.multipart_dir().join(&upload_id);
    blocking(move || {
        prepare_destination(&bucket, &key, &Placement::Replace)?;
        fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        write_json(&dir.join("upload.json"), &record).io_context(|| "recording the upload".into())
    })
    .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: sum.as_ref().map(UploadChecksum::algorithm),
        checksum_type: sum.as_ref().map(UploadChecksum::kind),
        ..Default::default()
    }))
}

fn check_part_number(n: i32) -> Result<(), StoreError> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(format!(
            "part number {n} is not between 1 and 10000"
        )))
    }
}

/// Where part `number` with `etag` is stored. Naming the data by its ETag
/// keeps the record and the data of one upload together when the same part
/// number is uploaded twice at once: the record written last names its own data.
fn part_path(dir: &Path, number: i32, etag: &str) -> PathBuf {
    dir.join(format!("{number}-{etag}"))
}

/// The upload id an upload directory is named by.
fn upload_id_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Moves a verified part's temp file into the upload, then records it.
fn store_part(
    dir: &Path,
    number: i32,
    file: AtomicFile,
    record: &PartRecord,
) -> Result<(), StoreError> {
    file.commit(
        &part_path(dir, number, &record.etag),
        FileOwnership {
            mode: 0o600,
            uid: None,
            gid: None,
        },
    )
    .map_err(|e| {
        // The upload was aborted or completed while this part arrived.
        if dir.exists() {
            StoreError::Io {
                context: format!("storing part {number}"),
                source: e,
            }
        } else {
            StoreError::NoSuchUpload(upload_id_of(dir))
        }
    })?;
    write_json(&dir.join(format!("{number}.json")), record)
        .io_context(|| format!("recording part {number}"))
}

pub(super) async fn upload_part(
    store: &NasStore,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let mut expected = ExpectedDigests::from_headers(&req.headers)?;
    let trailers = req.trailing_headers;
    let caller = user_of(store, req.credentials.as_ref());
    let input = req.input;
    check_part_number(input.part_number)?;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let (dir, upload) = load_upload(&bucket, &input.upload_id, &key, caller.as_deref())?;
    if let Some(sum) = upload.checksum() {
        expected.for_part_of(&sum)?;
    }
    if input
        .content_length
        .is_some_and(|n| u64::try_from(n).unwrap_or(0) > MAX_PART_SIZE)
    {
        return Err(StoreError::EntityTooLarge("a part may be at most 5 GiB".into()).into());
    }
    let received = upload::receive(
        &bucket.tmp_dir(),
        input.body,
        input.content_length,
        &expected,
        trailers.as_ref(),
    )
    .await?;
    let record = PartRecord {
        etag: hex::encode(received.md5),
        size: received.size,
        checksums: received.checksums,
    };
    let etag = record.etag.clone();
    let sums = checksum::to_dto(&record.checksums);
    let number = input.part_number;
    blocking(move || store_part(&dir, number, received.file, &record)).await?;
    Ok(S3Response::new(with_checksums!(
        sums,
        UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
        }
    )))
}

/// Parses `bytes=first-last` (inclusive) against an object of `size` bytes.
/// Unlike a GET's Range, S3 takes no open or suffix form here and refuses a
/// range past the source's end rather than shortening it.
fn copy_range(range: Option<&str>, size: u64) -> Result<std::ops::Range<u64>, StoreError> {
    let Some(r) = range else { return Ok(0..size) };
    match Range::parse(r) {
        Ok(Range::Int {
            first,
            last: Some(last),
        }) if first <= last && last < size => Ok(first..last + 1),
        _ => Err(StoreError::InvalidArgument(format!(
            "the copy source range {r:?} is not valid for a source object of {size} bytes: give bytes=first-last with last below {size}"
        ))),
    }
}

pub(super) async fn upload_part_copy(
    store: &NasStore,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let caller = user_of(store, req.credentials.as_ref());
    let input = req.input;
    check_part_number(input.part_number)?;
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
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let (dir, upload) = load_upload(&bucket, &input.upload_id, &key, caller.as_deref())?;
    let sum = upload.checksum();
    let conditions = super::object::Conditions {
        if_match: input.copy_source_if_match,
        if_none_match: input.copy_source_if_none_match,
        if_modified_since: input.copy_source_if_modified_since,
        if_unmodified_since: input.copy_source_if_unmodified_since,
    };
    let range = input.copy_source_range;
    let number = input.part_number;
    let record = blocking(move || {
        let obj = find(&src, &src_key)?;
        conditions
            .check(&obj)
            .map_err(|_| StoreError::PreconditionFailed)?;
        let span = copy_range(range.as_deref(), obj.meta.size)?;
        let file = copy_to_temp(&bucket, &obj, span.clone())?;
        let (etag, checksums) = part_digests(file.tmp_path(), sum.as_ref())?;
        let record = PartRecord {
            etag,
            size: span.end - span.start,
            checksums,
        };
        store_part(&dir, number, file, &record)?;
        Ok(record)
    })
    .await?;
    let sums = checksum::to_dto(&record.checksums);
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(with_checksums!(
            sums,
            CopyPartResult {
                e_tag: Some(ETag::Strong(record.etag)),
                last_modified: Some(Timestamp::from(SystemTime::now())),
            }
        )),
        ..Default::default()
    }))
}

/// Checks the client's part list against the stored parts; returns each part's path and record.
fn check_parts(
    dir: &Path,
    listed: &[CompletedPart],
    sum: Option<&UploadChecksum>,
) -> Result<Vec<(PathBuf, PartRecord)>, StoreError> {
    if listed.is_empty() {
        return Err(StoreError::InvalidArgument(
            "CompleteMultipartUpload must list at least one part".into(),
        ));
    }
    let numbers = listed
        .iter()
        .map(|p| {
            p.part_number
                .ok_or_else(|| StoreError::InvalidPart("a listed part has no PartNumber".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if numbers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StoreError::InvalidPartOrder);
    }
    let mut parts = Vec::with_capacity(listed.len());
    for (i, (p, number)) in listed.iter().zip(numbers).enumerate() {
        let record: PartRecord = read_json(&dir.join(format!("{number}.json")))
            .map_err(|_| StoreError::InvalidPart(format!("part {number} was not uploaded")))?;
        let listed_etag = p
            .e_tag
            .as_ref()
            .map(|e| e.value().trim_matches('"').to_string());
        if listed_etag.as_deref() != Some(record.etag.as_str()) {
            return Err(StoreError::InvalidPart(format!(
                "part {number}'s ETag does not match the uploaded part"
            )));
        }
        if let Some(sum) = sum {
            check_listed_checksum(number, p, &record, sum)?;
        }
        if i + 1 < listed.len() && record.size < MIN_PART_SIZE {
            return Err(StoreError::EntityTooSmall {
                part: number,
                size: record.size,
            });
        }
        parts.push((part_path(dir, number, &record.etag), record));
    }
    Ok(parts)
}

/// Checks the checksum a client listed for part `number` against the
/// stored part's: S3 requires it for a composite checksum, and compares it
/// whenever it is given.
fn check_listed_checksum(
    number: i32,
    listed: &CompletedPart,
    record: &PartRecord,
    sum: &UploadChecksum,
) -> Result<(), StoreError> {
    let listed_sums = checksums_of!(listed);
    let algorithm = sum.algorithm;
    match checksum::value_of(&listed_sums, algorithm) {
        None if sum.full_object => Ok(()),
        None => Err(StoreError::InvalidPart(format!(
            "part {number} lists no {algorithm} checksum; an upload created with a composite {algorithm} checksum must list each part's"
        ))),
        Some(value) if record.checksums.get(algorithm) == Some(value) => Ok(()),
        Some(_) => Err(StoreError::InvalidPart(format!(
            "part {number}'s {algorithm} checksum does not match the uploaded part"
        ))),
    }
}

/// `io::copy` that also hands every byte to `feed` (a hasher).
fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
    mut feed: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        feed(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// A copied part's ETag (hex MD5) and, for an upload with a checksum, that
/// checksum, from one read of the file at `path`.
fn part_digests(
    path: &Path,
    sum: Option<&UploadChecksum>,
) -> Result<(String, std::collections::BTreeMap<String, String>), StoreError> {
    let mut md5 = Md5::new();
    let mut hasher = sum.map(UploadChecksum::hasher);
    fs::File::open(path)
        .and_then(|mut file| {
            copy_hashing(&mut file, &mut io::sink(), |bytes| {
                md5.update(bytes);
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(bytes);
                }
            })
        })
        .io_context(|| "hashing the copied part".into())?;
    let checksums = sum
        .zip(hasher)
        .map(|(sum, hasher)| (sum.algorithm.to_owned(), sum.value(hasher)))
        .into_iter()
        .collect();
    Ok((hex::encode(md5.finalize()), checksums))
}

/// A joined upload: the temp file, its `md5-of-parts-N` ETag, its size and,
/// for a whole-object checksum, its value.
struct Joined {
    file: AtomicFile,
    etag: String,
    size: u64,
    full_object_sum: Option<String>,
}

/// Joins the parts into one temp file, computing `full_object` over it if given.
fn join_parts(
    bucket: &NasBucket,
    parts: &[(PathBuf, PartRecord)],
    full_object: Option<&UploadChecksum>,
) -> Result<Joined, StoreError> {
    let mut file =
        AtomicFile::new_in(&bucket.tmp_dir()).io_context(|| "creating a temp file".into())?;
    let mut md5_of_md5s = Md5::new();
    let mut size = 0;
    let mut hasher = full_object.map(UploadChecksum::hasher);
    for (path, record) in parts {
        let mut part = fs::File::open(path).io_context(|| format!("opening {}", path.display()))?;
        // Without a checksum to compute, io::copy may let the kernel copy.
        size += match hasher.as_mut() {
            Some(hasher) => copy_hashing(&mut part, file.file(), |bytes| hasher.update(bytes)),
            None => io::copy(&mut part, file.file()),
        }
        .io_context(|| "joining parts".into())?;
        let digest = hex::decode(&record.etag).map_err(|e| StoreError::Io {
            context: "reading a part's ETag".into(),
            source: io::Error::other(e),
        })?;
        md5_of_md5s.update(&digest);
    }
    Ok(Joined {
        file,
        etag: format!("{}-{}", hex::encode(md5_of_md5s.finalize()), parts.len()),
        size,
        full_object_sum: full_object.zip(hasher).map(|(sum, h)| sum.value(h)),
    })
}

/// What CompleteMultipartUpload says of the whole object, to be checked
/// against what the upload made.
struct Claimed {
    sums: s3s::dto::Checksum,
    size: Option<i64>,
}

impl Claimed {
    fn of(input: &CompleteMultipartUploadInput) -> Self {
        Self {
            sums: s3s::dto::Checksum {
                checksum_type: input.checksum_type.clone(),
                ..checksums_of!(input)
            },
            size: input.mpu_object_size,
        }
    }

    /// Refuses a claim the joined object does not bear out.
    fn check(
        &self,
        sum: Option<&UploadChecksum>,
        value: Option<&String>,
        size: u64,
    ) -> Result<(), StoreError> {
        if let Some(claimed) = self.size
            && u64::try_from(claimed).ok() != Some(size)
        {
            return Err(StoreError::InvalidRequest(format!(
                "x-amz-mp-object-size says {claimed} bytes; the listed parts hold {size}"
            )));
        }
        if let Some(kind) = &self.sums.checksum_type
            && sum.map(UploadChecksum::kind).as_ref() != Some(kind)
        {
            return Err(StoreError::InvalidRequest(format!(
                "x-amz-checksum-type {} is not the type the upload was created with",
                kind.as_str()
            )));
        }
        let Some(sum) = sum else { return Ok(()) };
        match checksum::value_of(&self.sums, sum.algorithm) {
            Some(claimed) if Some(claimed) != value => Err(StoreError::BadDigest(format!(
                "the {} checksum you specified for the whole object did not match the calculated checksum",
                sum.algorithm
            ))),
            _ => Ok(()),
        }
    }
}

/// The checksum an upload gives its object, as stored with it.
fn object_checksums(
    sum: Option<&UploadChecksum>,
    parts: &[(PathBuf, PartRecord)],
    full_object_sum: Option<String>,
) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
    let Some(sum) = sum else {
        return Ok(Default::default());
    };
    let value = match full_object_sum {
        Some(value) => value,
        None => sum.composite(
            parts
                .iter()
                .map(|(_, part)| part.checksums.get(sum.algorithm).map_or("", String::as_str)),
        )?,
    };
    Ok([(sum.algorithm.to_owned(), value)].into())
}

pub(super) async fn complete_multipart_upload(
    store: &NasStore,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let caller = user_of(store, req.credentials.as_ref());
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let answer = |meta: ObjectMeta| {
        let sums = checksum::to_dto(&meta.checksums);
        Ok(S3Response::new(with_typed_checksums!(
            sums,
            CompleteMultipartUploadOutput {
                bucket: Some(input.bucket.clone()),
                key: Some(key.to_string()),
                e_tag: Some(ETag::Strong(meta.etag)),
            }
        )))
    };
    let (dir, record) = match load_upload(&bucket, &input.upload_id, &key, caller.as_deref()) {
        Ok(found) => found,
        Err(StoreError::NoSuchUpload(_)) => {
            let (b, k, id) = (Arc::clone(&bucket), key.clone(), input.upload_id.clone());
            let meta = blocking(move || completed_before(&b, &id, &k, caller.as_deref())).await?;
            return answer(meta);
        }
        Err(e) => return Err(e.into()),
    };
    let listed = input
        .multipart_upload
        .clone()
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let k = key.clone();
    let placement = Placement::of(input.if_match.clone(), input.if_none_match.clone());
    let claimed = Claimed::of(&input);
    let meta = blocking(move || {
        let sum = record.checksum();
        let parts = check_parts(&dir, &listed, sum.as_ref())?;
        prepare_destination(&bucket, &k, &placement)?;
        let joined = join_parts(&bucket, &parts, sum.as_ref().filter(|s| s.full_object))?;
        let checksums = object_checksums(sum.as_ref(), &parts, joined.full_object_sum)?;
        claimed.check(
            sum.as_ref(),
            sum.as_ref().and_then(|s| checksums.get(s.algorithm)),
            joined.size,
        )?;
        let meta = ObjectMeta {
            etag: joined.etag,
            size: joined.size,
            mtime_ns: 0,
            ino: 0,
            content_type: record.content_type,
            user: record.user,
            checksums,
            headers: record.headers,
            parts: parts.iter().map(|(_, part)| part.size).collect(),
        };
        commit(&bucket, &k, joined.file, meta.clone(), placement)?;
        let done = CompletedRecord {
            key: k.to_string(),
            etag: meta.etag.clone(),
            initiator: record.initiator,
        };
        retire(&dir, &done);
        Ok(meta)
    })
    .await?;
    answer(meta)
}

pub(super) async fn abort_multipart_upload(
    store: &NasStore,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let bucket = store.bucket(&req.input.bucket)?;
    let key = ObjectKey::parse(&req.input.key)?;
    let caller = user_of(store, req.credentials.as_ref());
    let (dir, _) = load_upload(&bucket, &req.input.upload_id, &key, caller.as_deref())?;
    blocking(move || fs::remove_dir_all(&dir).io_context(|| format!("removing {}", dir.display())))
        .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(
    store: &NasStore,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let caller = user_of(store, req.credentials.as_ref());
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let key = ObjectKey::parse(&input.key)?;
    let (dir, upload) = load_upload(&bucket, &input.upload_id, &key, caller.as_deref())?;
    let sum = upload.checksum();
    let marker = input.part_number_marker.unwrap_or(0);
    let max = input
        .max_parts
        .map_or(MAX_LIST, |n| usize::try_from(n).unwrap_or(0).min(MAX_LIST));
    let mut parts = blocking(move || {
        let mut parts = Vec::new();
        for entry in fs::read_dir(&dir)
            .io_context(|| format!("listing {}", dir.display()))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(number) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(record) = read_json::<PartRecord>(&entry.path()) else {
                continue;
            };
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            parts.push((number, record, modified));
        }
        Ok(parts)
    })
    .await?;
    parts.sort_by_key(|p| p.0);
    parts.retain(|p| p.0 > marker);
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = parts.last().map(|p| p.0);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        max_parts: i32::try_from(max).ok(),
        is_truncated: Some(truncated),
        checksum_algorithm: sum.as_ref().map(UploadChecksum::algorithm),
        checksum_type: sum.as_ref().map(UploadChecksum::kind),
        parts: Some(
            parts
                .into_iter()
                .map(|(n, r, modified)| {
                    with_checksums!(
                        checksum::to_dto(&r.checksums),
                        Part {
                            part_number: Some(n),
                            e_tag: Some(ETag::Strong(r.etag)),
                            size: i64::try_from(r.size).ok(),
                            last_modified: Some(Timestamp::from(modified)),
                        }
                    )
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// Every upload in the bucket as (upload id, record), sorted by key then id (ids sort by time).
fn all_uploads(bucket: &NasBucket) -> Vec<(String, UploadRecord)> {
    let Ok(entries) = fs::read_dir(bucket.multipart_dir()) else {
        return Vec::new();
    };
    let mut uploads: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().into_string().ok()?;
            let record = read_json::<UploadRecord>(&e.path().join("upload.json")).ok()?;
            Some((id, record))
        })
        .collect();
    uploads.sort_by(|a, b| (&a.1.key, &a.0).cmp(&(&b.1.key, &b.0)));
    uploads
}

pub(super) async fn list_multipart_uploads(
    store: &NasStore,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let bucket = store.bucket(&input.bucket)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    let max = input
        .max_uploads
        .map_or(MAX_LIST, |n| usize::try_from(n).unwrap_or(0).min(MAX_LIST));
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    // A key marker that is a common prefix we returned means "after that whole prefix".
    let skip_prefix =
        super::list::marker_as_common_prefix(&key_marker, &prefix, delimiter.as_deref());
    let mut uploads = blocking(move || Ok(all_uploads(&bucket))).await?;
    uploads.retain(|(id, r)| {
        r.key.starts_with(&prefix)
            && (r.key.as_str(), id.as_str()) > (key_marker.as_str(), id_marker.as_str())
            && !skip_prefix
                .as_ref()
                .is_some_and(|p| r.key.starts_with(p.as_str()))
    });
    let page = upload_page(
        uploads,
        input.prefix.as_deref().unwrap_or_default(),
        delimiter.as_deref(),
        max,
    );
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: page.next.as_ref().map(|l| l.0.clone()),
        next_upload_id_marker: page.next.and_then(|l| l.1),
        max_uploads: i32::try_from(max).ok(),
        is_truncated: Some(page.truncated),
        common_prefixes: Some(
            page.prefixes
                .into_iter()
                .map(|p| CommonPrefix { prefix: Some(p) })
                .collect(),
        ),
        uploads: Some(
            page.uploads
                .into_iter()
                .map(|(id, r)| {
                    let sum = r.checksum();
                    MultipartUpload {
                        initiated: timestamp(&r.initiated),
                        key: Some(r.key),
                        upload_id: Some(id),
                        checksum_algorithm: sum.as_ref().map(UploadChecksum::algorithm),
                        checksum_type: sum.as_ref().map(UploadChecksum::kind),
                        ..Default::default()
                    }
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// One page of ListMultipartUploads.
struct UploadPage {
    uploads: Vec<(String, UploadRecord)>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Key marker and upload-id marker for the next page.
    next: Option<(String, Option<String>)>,
}

/// Takes up to `max` uploads (sorted by key, then id), rolling keys that hold
/// `delimiter` after `prefix` up into common prefixes, as ListObjects does.
fn upload_page(
    sorted: Vec<(String, UploadRecord)>,
    prefix: &str,
    delimiter: Option<&str>,
    max: usize,
) -> UploadPage {
    let mut page = UploadPage {
        uploads: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next: None,
    };
    for (id, record) in sorted {
        let common = delimiter.and_then(|d| {
            let rest = record.key.get(prefix.len()..)?;
            rest.find(d)
                .map(|i| record.key[..prefix.len() + i + d.len()].to_string())
        });
        if common.is_some() && common.as_ref() == page.prefixes.last() {
            continue;
        }
        if page.uploads.len() + page.prefixes.len() >= max {
            page.truncated = true;
            break;
        }
        match common {
            Some(p) => {
                page.next = Some((p.clone(), None));
                page.prefixes.push(p);
            }
            None => {
                page.next = Some((record.key.clone(), Some(id.clone())));
                page.uploads.push((id, record));
            }
        }
    }
    if !page.truncated {
        page.next = None;
    }
    page
}

/// Aborts the bucket's uploads whose directory has not changed for `max_age`.
pub(super) fn sweep_abandoned(bucket: &NasBucket, max_age: Duration) {
    let Ok(entries) = fs::read_dir(bucket.multipart_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        let completed = entry.path().join(COMPLETED).exists();
        let max_age = match completed {
            true => max_age.min(COMPLETED_KEPT),
            false => max_age,
        };
        if idle.is_some_and(|idle| idle > max_age) {
            if !completed {
                tracing::info!(bucket = %bucket.name, upload = ?entry.file_name(), "aborting an abandoned multipart upload");
            }
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!(error = %e, "could not remove an abandoned upload");
            }
        }
    }
}
