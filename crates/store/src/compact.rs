//! An object's record in its compact form, for an extended attribute: ext4
//! keeps an attribute inside the inode only up to 60 bytes (under tread's
//! name), and puts a larger one in a block of its own, which costs every
//! small PUT a second block written and synced, and every lookup a second
//! block read. The JSON of even a plain record takes about 110 bytes; this
//! form (postcard's varints, the MD5 as 16 bytes, checksums as raw bytes,
//! a common content type as one byte) about 35 to 50. A record it cannot
//! express (user metadata, kept headers, parts, a multipart ETag) is kept
//! as JSON, which starts with `{` where this form starts with [`VERSION`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// The first byte of a compact record.
const VERSION: u8 = 1;

/// The checksum algorithms a compact record names, by their index here.
const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// Content types named by their index here rather than spelled out: the
/// SDKs' default `application/octet-stream` alone is 24 bytes, which with
/// the CRC32 every current SDK sends took a plain record to 66 bytes, out of
/// the inode. Append only: a record names a type by its place in this list.
const COMMON_TYPES: [&str; 16] = [
    "application/octet-stream",
    "binary/octet-stream",
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "text/plain",
    "text/csv",
    "text/html",
    "application/json",
    "application/xml",
    "application/zip",
    "application/gzip",
    "application/x-tar",
    "application/pdf",
    "application/x-directory",
];

/// A record's content type. Its first two variants encode as postcard
/// encodes `Option<String>`, the field's type in the first records written,
/// so those records still read.
#[derive(Serialize, Deserialize)]
enum ContentType {
    Absent,
    Spelled(String),
    /// An index in [`COMMON_TYPES`].
    Common(u8),
}

impl ContentType {
    fn of(content_type: Option<&str>) -> Self {
        let Some(name) = content_type else {
            return Self::Absent;
        };
        COMMON_TYPES
            .iter()
            .position(|t| *t == name)
            .and_then(|i| u8::try_from(i).ok())
            .map_or_else(|| Self::Spelled(name.into()), Self::Common)
    }

    /// The content type named; `None` for an index past [`COMMON_TYPES`]
    /// (a record from a later version).
    fn into_name(self) -> Option<Option<String>> {
        match self {
            Self::Absent => Some(None),
            Self::Spelled(name) => Some(Some(name)),
            Self::Common(i) => COMMON_TYPES
                .get(usize::from(i))
                .map(|t| Some(t.to_string())),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Compact {
    md5: [u8; 16],
    size: u64,
    mtime_s: i64,
    mtime_nanos: u32,
    ino: u64,
    content_type: ContentType,
    /// (index in [`ALGORITHMS`], the checksum's bytes).
    checksums: Vec<(u8, Vec<u8>)>,
}

/// `meta` in the compact form, if it can be expressed exactly.
pub fn encode(meta: &ObjectMeta) -> Option<Vec<u8>> {
    if !(meta.user.is_empty() && meta.headers.is_empty() && meta.parts.is_empty()) {
        return None;
    }
    let md5: [u8; 16] = hex::decode(&meta.etag).ok()?.try_into().ok()?;
    if hex::encode(md5) != meta.etag {
        return None;
    }
    let checksums = meta
        .checksums
        .iter()
        .map(|(name, value)| {
            let index = u8::try_from(ALGORITHMS.iter().position(|a| a == name)?).ok()?;
            let bytes = BASE64.decode(value).ok()?;
            (BASE64.encode(&bytes) == *value).then_some((index, bytes))
        })
        .collect::<Option<Vec<_>>>()?;
    let compact = Compact {
        md5,
        size: meta.size,
        mtime_s: i64::try_from(meta.mtime_ns.div_euclid(1_000_000_000)).ok()?,
        mtime_nanos: u32::try_from(meta.mtime_ns.rem_euclid(1_000_000_000)).ok()?,
        ino: meta.ino,
        content_type: ContentType::of(meta.content_type.as_deref()),
        checksums,
    };
    let mut raw = vec![VERSION];
    raw.extend(postcard::to_allocvec(&compact).ok()?);
    Some(raw)
}

/// The record `raw` holds in the compact form; `None` for any other bytes.
pub fn decode(raw: &[u8]) -> Option<ObjectMeta> {
    let (&VERSION, rest) = raw.split_first()? else {
        return None;
    };
    let compact: Compact = postcard::from_bytes(rest).ok()?;
    let checksums = compact
        .checksums
        .into_iter()
        .map(|(index, bytes)| {
            let name = ALGORITHMS.get(usize::from(index))?;
            Some((name.to_string(), BASE64.encode(bytes)))
        })
        .collect::<Option<_>>()?;
    Some(ObjectMeta {
        etag: hex::encode(compact.md5),
        size: compact.size,
        mtime_ns: i128::from(compact.mtime_s) * 1_000_000_000 + i128::from(compact.mtime_nanos),
        ino: compact.ino,
        content_type: compact.content_type.into_name()?,
        checksums,
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> ObjectMeta {
        ObjectMeta {
            etag: "5d41402abc4b2a76b9719d911017c592".into(),
            size: 4096,
            mtime_ns: 1_765_000_000_123_456_789,
            ino: 1_234_567,
            content_type: Some("image/jpeg".into()),
            checksums: [("CRC32".to_string(), "NhCmhg==".to_string())].into(),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_plain_record_round_trips_within_the_inodes_60_bytes() {
        let meta = plain();
        let raw = encode(&meta).expect("compact");
        assert!(raw.len() <= 60, "{} bytes", raw.len());
        assert_eq!(decode(&raw), Some(meta));
        let json = serde_json::to_vec(&plain()).expect("json");
        assert_eq!(decode(&json), None, "JSON is not the compact form");
    }

    /// What aws-sdk-s3 and the AWS CLI send by default: the 24-byte
    /// `application/octet-stream` and a CRC32, on a large file with a
    /// recent time and a high inode number.
    #[test]
    fn an_sdk_default_record_fits_in_the_inode() {
        for (content_type, checksum) in [
            ("application/octet-stream", ("CRC32", "NhCmhg==")),
            ("binary/octet-stream", ("CRC64NVME", "AAAAAAAAAAA=")),
        ] {
            let meta = ObjectMeta {
                size: 1 << 40,
                mtime_ns: 4_102_444_800_999_999_999,
                ino: u64::from(u32::MAX),
                content_type: Some(content_type.into()),
                checksums: [(checksum.0.to_string(), checksum.1.to_string())].into(),
                ..plain()
            };
            let raw = encode(&meta).expect("compact");
            assert!(raw.len() <= 60, "{content_type}: {} bytes", raw.len());
            assert_eq!(decode(&raw), Some(meta));
        }
    }

    /// Records written before common types were named by an index kept the
    /// content type as postcard's `Option<String>`.
    #[test]
    fn a_record_from_before_named_types_still_reads() {
        #[derive(Serialize)]
        struct Before {
            md5: [u8; 16],
            size: u64,
            mtime_s: i64,
            mtime_nanos: u32,
            ino: u64,
            content_type: Option<String>,
            checksums: Vec<(u8, Vec<u8>)>,
        }
        for content_type in [None, Some("image/jpeg".to_string())] {
            let before = Before {
                md5: [7; 16],
                size: 4096,
                mtime_s: 1_765_000_000,
                mtime_nanos: 5,
                ino: 42,
                content_type: content_type.clone(),
                checksums: vec![(0, vec![1, 2, 3, 4])],
            };
            let mut raw = vec![VERSION];
            raw.extend(postcard::to_allocvec(&before).expect("postcard"));
            let meta = decode(&raw).expect("an older record reads");
            assert_eq!(meta.content_type, content_type);
            assert_eq!((meta.size, meta.ino), (4096, 42));
            assert_eq!(
                meta.checksums.get("CRC32").map(String::as_str),
                Some("AQIDBA==")
            );
        }
    }

    #[test]
    fn an_unusual_content_type_is_spelled_out() {
        let mut meta = plain();
        meta.content_type = Some("Image/JPEG; charset=x".into());
        assert_eq!(decode(&encode(&meta).expect("compact")), Some(meta));
    }

    #[test]
    fn what_the_compact_form_cannot_say_stays_json() {
        let mut multipart = plain();
        multipart.etag = "5d41402abc4b2a76b9719d911017c592-3".into();
        let mut with_user = plain();
        with_user.user.insert("owner".into(), "ana".into());
        let mut odd_checksum = plain();
        odd_checksum
            .checksums
            .insert("MD5".into(), "XUFAKrxLKna5cZ2REBfFkg==".into());
        let mut upper = plain();
        upper.etag = upper.etag.to_uppercase();
        for meta in [multipart, with_user, odd_checksum, upper] {
            assert_eq!(encode(&meta), None, "{meta:?}");
        }
    }
}
