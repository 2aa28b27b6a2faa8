//! Verification of the digests a client sends with a body: Content-MD5 and
//! the `x-amz-checksum-*` family, as headers or as aws-chunked trailers.
//! s3s parses the protocol but leaves verification to the backend.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};

use crate::error::StoreError;

/// The checksum algorithms S3 defines, with their wire names.
const ALGORITHMS: [(&str, &str); 5] = [
    ("CRC32", "x-amz-checksum-crc32"),
    ("CRC32C", "x-amz-checksum-crc32c"),
    ("CRC64NVME", "x-amz-checksum-crc64nvme"),
    ("SHA1", "x-amz-checksum-sha1"),
    ("SHA256", "x-amz-checksum-sha256"),
];

/// What a request asks us to check: a Content-MD5 and any S3 checksums,
/// with their values if sent as headers (trailer values arrive after the body).
#[derive(Debug, Default, Clone)]
pub struct ExpectedDigests {
    content_md5: Option<[u8; 16]>,
    /// Algorithm name → value from a header, or `None` when it comes in a trailer
    /// or the client only asked the server to compute it.
    checksums: BTreeMap<&'static str, Option<String>>,
}

impl ExpectedDigests {
    /// Reads Content-MD5, `x-amz-checksum-*`, `x-amz-trailer` and
    /// `x-amz-sdk-checksum-algorithm` from the request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, StoreError> {
        let content_md5 = match headers.get("content-md5") {
            None => None,
            Some(v) => {
                let bytes = BASE64
                    .decode(v.as_bytes())
                    .map_err(|_| StoreError::InvalidDigest)?;
                Some(bytes.try_into().map_err(|_| StoreError::InvalidDigest)?)
            }
        };
        let mut checksums = BTreeMap::new();
        let header_str = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
        };
        let trailer = header_str("x-amz-trailer");
        let asked = header_str("x-amz-sdk-checksum-algorithm")
            .or_else(|| header_str("x-amz-checksum-algorithm"));
        for (name, header) in ALGORITHMS {
            if let Some(v) = headers.get(header) {
                let value = v
                    .to_str()
                    .map_err(|_| StoreError::InvalidArgument(format!("{header} is not ASCII")))?;
                checksums.insert(name, Some(value.to_owned()));
            } else if trailer.as_deref() == Some(header)
                || asked.as_deref() == Some(&name.to_ascii_lowercase())
            {
                checksums.insert(name, None);
            }
        }
        Ok(Self {
            content_md5,
            checksums,
        })
    }

    /// A hasher computing every checksum this request involves.
    pub fn hasher(&self) -> ChecksumHasher {
        hasher_of(self.checksums.keys().copied())
    }

    /// Makes a part of `upload` carry the upload's checksum: computed here
    /// when the client sent none, refused (as S3 does) when the client sent
    /// another algorithm's.
    pub fn for_part_of(&mut self, upload: &UploadChecksum) -> Result<(), StoreError> {
        if let Some(other) = self.checksums.keys().find(|n| **n != upload.algorithm) {
            return Err(StoreError::InvalidRequest(format!(
                "the upload was created with the {} checksum, and this part carries {other}; send x-amz-checksum-{} with each part",
                upload.algorithm,
                upload.algorithm.to_ascii_lowercase()
            )));
        }
        self.checksums.entry(upload.algorithm).or_insert(None);
        Ok(())
    }

    /// Compares what was computed over the body with what the client sent;
    /// returns the computed checksums (algorithm → base64) to store.
    pub fn verify(
        &self,
        md5: &[u8; 16],
        computed: s3s::dto::Checksum,
        trailers: Option<&TrailingHeaders>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        if let Some(expected) = self.content_md5
            && &expected != md5
        {
            return Err(StoreError::BadDigest(
                "the Content-MD5 you specified did not match what we received".into(),
            ));
        }
        let mut out = BTreeMap::new();
        for (name, header) in ALGORITHMS {
            let Some(given) = self.checksums.get(name) else {
                continue;
            };
            let value = value_of(&computed, name).cloned().unwrap_or_default();
            let expected = given.clone().or_else(|| {
                trailers.and_then(|t| {
                    t.read(|h| {
                        h.get(header)
                            .and_then(|v| v.to_str().ok())
                            .map(String::from)
                    })
                    .flatten()
                })
            });
            if let Some(expected) = expected
                && expected != value
            {
                return Err(StoreError::BadDigest(format!(
                    "the {name} you specified did not match the calculated checksum"
                )));
            }
            out.insert(name.to_owned(), value);
        }
        Ok(out)
    }
}

/// A hasher computing the checksums of `names` (wire names of [`ALGORITHMS`]).
fn hasher_of<'a>(names: impl IntoIterator<Item = &'a str>) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    for name in names {
        match name {
            "CRC32" => h.crc32 = Some(Crc32::default()),
            "CRC32C" => h.crc32c = Some(Crc32c::default()),
            "CRC64NVME" => h.crc64nvme = Some(Crc64Nvme::default()),
            "SHA1" => h.sha1 = Some(Sha1::default()),
            _ => h.sha256 = Some(Sha256::default()),
        }
    }
    h
}

/// The value of algorithm `name` among checksums.
pub fn value_of<'a>(sums: &'a s3s::dto::Checksum, name: &str) -> Option<&'a String> {
    match name {
        "CRC32" => sums.checksum_crc32.as_ref(),
        "CRC32C" => sums.checksum_crc32c.as_ref(),
        "CRC64NVME" => sums.checksum_crc64nvme.as_ref(),
        "SHA1" => sums.checksum_sha1.as_ref(),
        _ => sums.checksum_sha256.as_ref(),
    }
}

/// The checksum a multipart upload gives its object, chosen at
/// CreateMultipartUpload: one algorithm, computed over the whole object
/// (`FULL_OBJECT`, the CRCs only) or over the parts' own checksums
/// (`COMPOSITE`, written `<base64>-<parts>`), as S3 defines them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChecksum {
    /// The algorithm's wire name, one of [`ALGORITHMS`].
    pub algorithm: &'static str,
    /// `FULL_OBJECT` rather than `COMPOSITE`.
    pub full_object: bool,
}

impl UploadChecksum {
    /// The checksum asked for by `x-amz-checksum-algorithm` and
    /// `x-amz-checksum-type`, with S3's defaults (CRC64NVME is whole-object,
    /// the others composite) and its refusals (a type without an algorithm,
    /// a whole-object SHA, a composite CRC64NVME).
    pub fn requested(
        algorithm: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Option<Self>, StoreError> {
        let Some(asked) = algorithm else {
            return match kind {
                None => Ok(None),
                Some(kind) => Err(StoreError::InvalidRequest(format!(
                    "x-amz-checksum-type {kind} needs x-amz-checksum-algorithm too"
                ))),
            };
        };
        let algorithm = ALGORITHMS
            .iter()
            .map(|(name, _)| *name)
            .find(|name| name.eq_ignore_ascii_case(asked))
            .ok_or_else(|| {
                StoreError::InvalidArgument(format!(
                    "unknown checksum algorithm {asked}: use CRC32, CRC32C, CRC64NVME, SHA1 or SHA256"
                ))
            })?;
        let is_crc = algorithm.starts_with("CRC");
        let full_object = match kind.map(str::to_ascii_uppercase).as_deref() {
            None => algorithm == "CRC64NVME",
            Some(s3s::dto::ChecksumType::FULL_OBJECT) if is_crc => true,
            Some(s3s::dto::ChecksumType::COMPOSITE) if algorithm != "CRC64NVME" => false,
            Some(other) => {
                return Err(StoreError::InvalidRequest(format!(
                    "the {algorithm} checksum cannot be of type {other}: FULL_OBJECT takes CRC32, CRC32C or CRC64NVME, COMPOSITE takes CRC32, CRC32C, SHA1 or SHA256"
                )));
            }
        };
        Ok(Some(Self {
            algorithm,
            full_object,
        }))
    }

    /// The algorithm's wire form.
    pub fn algorithm(&self) -> s3s::dto::ChecksumAlgorithm {
        s3s::dto::ChecksumAlgorithm::from_static(self.algorithm)
    }

    /// The type's wire form.
    pub fn kind(&self) -> s3s::dto::ChecksumType {
        s3s::dto::ChecksumType::from_static(if self.full_object {
            s3s::dto::ChecksumType::FULL_OBJECT
        } else {
            s3s::dto::ChecksumType::COMPOSITE
        })
    }

    /// A hasher for the whole object (used when the type is `FULL_OBJECT`).
    pub fn hasher(&self) -> ChecksumHasher {
        hasher_of([self.algorithm])
    }

    /// The value `hasher` computed, in base64.
    pub fn value(&self, hasher: ChecksumHasher) -> String {
        value_of(&hasher.finalize(), self.algorithm)
            .cloned()
            .unwrap_or_default()
    }

    /// The composite checksum of parts whose own checksums (base64) are
    /// `parts`: the checksum of their bytes one after another, then `-N`.
    pub fn composite<'a>(
        &self,
        parts: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<String, StoreError> {
        let count = parts.len();
        let mut hasher = self.hasher();
        for part in parts {
            let raw = BASE64.decode(part).map_err(|_| {
                StoreError::InvalidPart(format!(
                    "a part's {} checksum is not base64",
                    self.algorithm
                ))
            })?;
            hasher.update(&raw);
        }
        Ok(format!("{}-{count}", self.value(hasher)))
    }
}

/// `$Output { fields… }`, an s3s output or part, with its five `checksum_*`
/// fields taken from `$sums` (an `s3s::dto::Checksum`) and the rest default.
macro_rules! with_checksums {
    ($sums:expr, $Output:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let sums: s3s::dto::Checksum = $sums;
        // Some outputs have no fields beyond those given.
        #[allow(clippy::needless_update)]
        let output = $Output {
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            $($field $(: $value)?,)*
            ..Default::default()
        };
        output
    }};
}
pub(crate) use with_checksums;

/// [`with_checksums!`] for an output that also names the checksums' type
/// (`checksum_type`), taken from `$sums` too.
macro_rules! with_typed_checksums {
    ($sums:expr, $Output:ident { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let sums: s3s::dto::Checksum = $sums;
        let kind = sums.checksum_type.clone();
        $crate::checksum::with_checksums!(sums, $Output {
            checksum_type: kind,
            $($field $(: $value)?,)*
        })
    }};
}
pub(crate) use with_typed_checksums;

/// The five `checksum_*` fields of `$from` (an s3s input or listed part
/// that carries them), as an `s3s::dto::Checksum` without a type.
macro_rules! checksums_of {
    ($from:expr) => {
        s3s::dto::Checksum {
            checksum_crc32: $from.checksum_crc32.clone(),
            checksum_crc32c: $from.checksum_crc32c.clone(),
            checksum_crc64nvme: $from.checksum_crc64nvme.clone(),
            checksum_sha1: $from.checksum_sha1.clone(),
            checksum_sha256: $from.checksum_sha256.clone(),
            checksum_type: None,
        }
    };
}
pub(crate) use checksums_of;

/// Fills the `checksum_*` fields of an S3 output from stored checksums, with
/// their type: a composite value ends in `-<parts>`.
pub fn to_dto(stored: &BTreeMap<String, String>) -> s3s::dto::Checksum {
    let composite = stored.values().any(|v| v.contains('-'));
    let kind = match composite {
        true => s3s::dto::ChecksumType::COMPOSITE,
        false => s3s::dto::ChecksumType::FULL_OBJECT,
    };
    s3s::dto::Checksum {
        checksum_crc32: stored.get("CRC32").cloned(),
        checksum_crc32c: stored.get("CRC32C").cloned(),
        checksum_crc64nvme: stored.get("CRC64NVME").cloned(),
        checksum_sha1: stored.get("SHA1").cloned(),
        checksum_sha256: stored.get("SHA256").cloned(),
        checksum_type: (!stored.is_empty()).then(|| s3s::dto::ChecksumType::from_static(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::crypto::Checksum as _;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    fn run(
        expected: &ExpectedDigests,
        body: &[u8],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut hasher = expected.hasher();
        hasher.update(body);
        let md5 = s3s::crypto::Md5::checksum(body);
        expected.verify(&md5, hasher.finalize(), None)
    }

    #[test]
    fn matching_crc32_header_is_accepted_and_stored() {
        let crc = BASE64.encode(crc32fast_value(b"hello"));
        let e = ExpectedDigests::from_headers(&headers(&[("x-amz-checksum-crc32", &crc)]))
            .expect("parse");
        let stored = run(&e, b"hello").expect("verify");
        assert_eq!(stored.get("CRC32"), Some(&crc));
    }

    #[test]
    fn wrong_checksum_and_wrong_md5_are_bad_digests() {
        let e = ExpectedDigests::from_headers(&headers(&[("x-amz-checksum-sha256", "AAAA")]))
            .expect("parse");
        assert!(matches!(run(&e, b"hello"), Err(StoreError::BadDigest(_))));
        let md5_of_other = BASE64.encode(s3s::crypto::Md5::checksum(b"other"));
        let e = ExpectedDigests::from_headers(&headers(&[("content-md5", &md5_of_other)]))
            .expect("parse");
        assert!(matches!(run(&e, b"hello"), Err(StoreError::BadDigest(_))));
    }

    #[test]
    fn malformed_content_md5_is_invalid_digest() {
        let err = ExpectedDigests::from_headers(&headers(&[("content-md5", "not-base64!")]))
            .expect_err("invalid");
        assert!(matches!(err, StoreError::InvalidDigest));
    }

    fn crc32fast_value(data: &[u8]) -> [u8; 4] {
        Crc32::checksum(data)
    }
}
