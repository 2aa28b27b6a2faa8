//! Object keys and their mapping to relative paths inside a NAS bucket.
//!
//! Every path the store touches for an object comes from an [`ObjectKey`], and
//! an `ObjectKey` can only be built by [`ObjectKey::parse`], which refuses any
//! key that could leave the bucket root or confuse the file system.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// Longest key S3 (and ONTAP NAS buckets) accept, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest path component most file systems accept, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The bucket-root directory where tread keeps in-flight uploads and metadata.
pub const HIDDEN_DIR: &str = ".tread";

/// A validated S3 object key: safe to join under a bucket root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks `key` and returns it as an `ObjectKey`, or says what is wrong with it.
    ///
    /// Refused: empty keys, keys over 1,024 bytes, a leading `/`, empty segments
    /// (`a//b`), `.` and `..` segments (also percent-encoded, `%2e%2E`), NUL and
    /// other control characters, backslashes, segments over 255 bytes, and keys
    /// with a `.tread` segment (tread's hidden directory) at any depth. A
    /// trailing `/` is allowed: it names a
    /// directory marker.
    pub fn parse(key: &str) -> Result<Self, StoreError> {
        let invalid = |why: &str| Err(StoreError::InvalidKey(format!("{why}: {key:?}")));
        if key.is_empty() {
            return invalid("the key is empty");
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::KeyTooLong(key.len()));
        }
        if key.starts_with('/') {
            return invalid("the key starts with '/'");
        }
        if key.chars().any(|c| c.is_control()) {
            return invalid("the key holds a control character");
        }
        if key.contains('\\') {
            return invalid("the key holds a backslash");
        }
        let body = key.strip_suffix('/').unwrap_or(key);
        for segment in body.split('/') {
            if segment.is_empty() {
                return invalid("the key has an empty segment ('//')");
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return invalid("a segment of the key is longer than 255 bytes");
            }
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            if decoded == "." || decoded == ".." {
                return invalid("the key has a '.' or '..' segment");
            }
            if decoded.contains('\0') {
                return invalid("the key holds an encoded NUL");
            }
            // At any depth, since listings skip every `.tread` directory;
            // case-insensitively: on an SMB share `.TREAD` is the same one.
            if decoded.eq_ignore_ascii_case(HIDDEN_DIR) {
                return invalid("keys with a .tread/ segment are reserved for tread itself");
            }
        }
        Ok(Self(key.to_owned()))
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the key names a directory marker (ends in `/`).
    pub fn is_dir_marker(&self) -> bool {
        self.0.ends_with('/')
    }

    /// The key as a path relative to the bucket root (no trailing separator).
    pub fn rel_path(&self) -> PathBuf {
        Path::new(self.0.trim_end_matches('/')).to_path_buf()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a",
            "dataset/tyre/good/x.jpg",
            "dir/",
            "a b/ü/€.png",
            "%2F",
            "..a",
            "a..",
        ] {
            assert!(ObjectKey::parse(key).is_ok(), "{key} should be accepted");
        }
    }

    #[test]
    fn refuses_hostile_keys() {
        let long_segment = "x".repeat(256);
        let long_key = "a/".repeat(513);
        for key in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/%2e%2e/b",
            "%2E",
            "a\0b",
            "a%00b",
            "a\\..\\b",
            ".tread/tmp/x",
            ".TREAD/tmp/x",
            ".tread",
            "x/.tread/y",
            "x/y/.Tread/",
            "x/%2Etread/y",
            long_segment.as_str(),
            long_key.as_str(),
        ] {
            assert!(ObjectKey::parse(key).is_err(), "{key:?} should be refused");
        }
    }

    #[test]
    fn directory_marker_maps_to_its_directory() {
        let key = ObjectKey::parse("a/b/").expect("valid marker");
        assert!(key.is_dir_marker());
        assert_eq!(key.rel_path(), Path::new("a/b"));
    }

    proptest! {
        /// Whatever the key, an accepted one maps to a relative path of plain
        /// components: it cannot climb out of the bucket root.
        #[test]
        fn accepted_keys_stay_under_the_root(key in "[a-z./%0-9\\\\\u{0}-\u{1f}-]{1,40}") {
            if let Ok(k) = ObjectKey::parse(&key) {
                let path = k.rel_path();
                prop_assert!(path.components().all(|c| matches!(c, Component::Normal(_))), "{path:?}");
                prop_assert!(!path.starts_with(HIDDEN_DIR));
            }
        }
    }
}
