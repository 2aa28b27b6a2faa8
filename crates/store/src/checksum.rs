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
        let mut h = ChecksumHasher::default();
        for name in self.checksums.keys() {
            match *name {
                "CRC32" => h.crc32 = Some(Crc32::default()),
                "CRC32C" => h.crc32c = Some(Crc32c::default()),
                "CRC64NVME" => h.crc64nvme = Some(Crc64Nvme::default()),
                "SHA1" => h.sha1 = Some(Sha1::default()),
                _ => h.sha256 = Some(Sha256::default()),
            }
        }
        h
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
            let value = match name {
                "CRC32" => computed.checksum_crc32.clone(),
                "CRC32C" => computed.checksum_crc32c.clone(),
                "CRC64NVME" => computed.checksum_crc64nvme.clone(),
                "SHA1" => computed.checksum_sha1.clone(),
                _ => computed.checksum_sha256.clone(),
            }
            .unwrap_or_default();
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

/// Fills the `checksum_*` fields of an S3 output from stored checksums.
pub fn to_dto(stored: &BTreeMap<String, String>) -> s3s::dto::Checksum {
    s3s::dto::Checksum {
        checksum_crc32: stored.get("CRC32").cloned(),
        checksum_crc32c: stored.get("CRC32C").cloned(),
        checksum_crc64nvme: stored.get("CRC64NVME").cloned(),
        checksum_sha1: stored.get("SHA1").cloned(),
        checksum_sha256: stored.get("SHA256").cloned(),
        checksum_type: None,
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
