//! An object's record in its compact form, for an extended attribute: ext4
//! keeps an attribute inside the inode only up to 60 bytes (under tread's
//! name), and puts a larger one in a block of its own, which costs every
//! small PUT a second block written and synced, and every lookup a second
//! block read. The JSON of even a plain record takes about 110 bytes; this
//! form (postcard's varints, the MD5 as 16 bytes, checksums as raw bytes)
//! about 35 to 55. A record it cannot express (user metadata, kept
//! headers, parts, a multipart ETag) is kept as JSON, which starts with
//! `{` where this form starts with [`VERSION`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// The first byte of a compact record.
const VERSION: u8 = 1;

/// The checksum algorithms a compact record names, by their index here.
const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

#[derive(Serialize, Deserialize)]
struct Compact {
    md5: [u8; 16],
    size: u64,
    mtime_s: i64,
    mtime_nanos: u32,
    ino: u64,
    content_type: Option<String>,
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
        content_type: meta.content_type.clone(),
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
        content_type: compact.content_type,
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
