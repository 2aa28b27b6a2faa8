//! The records and bytes of small objects read lately, by file (device and
//! inode), for the GETs that come back for them (a data loader's next
//! epoch): a hit skips reading the record's extended attribute and the
//! file's bytes. The file is still opened beneath its bucket's root and
//! its attributes read on every GET; an entry serves only while those are
//! the ones it was read with.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;

use crate::meta::{ObjectMeta, ctime_ns, mtime_ns, settled_by};

/// Objects up to this size are kept.
pub const HOT_OBJECT: u64 = 64 << 10;
/// What all kept objects may take, each weighed as its bytes and
/// [`RECORD_WEIGHT`].
const HOT_BYTES: usize = 64 << 20;
/// About what an entry's record and place in the table take, so that even
/// empty objects are bounded in number.
const RECORD_WEIGHT: usize = 256;
/// Small objects' records and bytes, least recently read forgotten first.
#[derive(Debug)]
pub struct HotObjects {
    kept: Mutex<Kept>,
    /// What the kept objects may weigh together.
    budget: usize,
}

#[derive(Debug)]
struct Kept {
    files: lru::LruCache<(u64, u64), HotObject>,
    bytes: usize,
}

#[derive(Debug)]
struct HotObject {
    /// What the file's attributes were: size, mtime and ctime, which any
    /// write, rename, link or attribute change moves.
    seen: Seen,
    meta: ObjectMeta,
    body: Bytes,
}

impl HotObject {
    fn weight(&self) -> usize {
        self.body.len() + RECORD_WEIGHT
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Seen {
    fn of(attrs: &fs::Metadata) -> Self {
        Self {
            size: attrs.size(),
            mtime_ns: mtime_ns(attrs),
            ctime_ns: ctime_ns(attrs),
        }
    }

    fn is_settled(&self) -> bool {
        settled_by(self.ctime_ns, SystemTime::now())
    }
}

impl Default for HotObjects {
    fn default() -> Self {
        Self::with_budget(HOT_BYTES)
    }
}

impl HotObjects {
    /// Empty, growing as GETs read up to `budget` (a bounded `LruCache`
    /// would allocate its whole table up front).
    fn with_budget(budget: usize) -> Self {
        Self {
            kept: Mutex::new(Kept {
                files: lru::LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    /// The record and bytes kept for the file with these attributes, if it
    /// has not changed since; an entry of a file that has is dropped.
    pub fn get(&self, attrs: &fs::Metadata) -> Option<(ObjectMeta, Bytes)> {
        let file = (attrs.dev(), attrs.ino());
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let hot = kept.files.get(&file)?;
        if hot.seen == Seen::of(attrs) {
            return Some((hot.meta.clone(), hot.body.clone()));
        }
        if let Some(stale) = kept.files.pop(&file) {
            kept.bytes -= stale.weight();
        }
        None
    }

    /// Keeps `meta` and `body`, the whole of the file with these attributes,
    /// if it is small and settled.
    pub fn put(&self, attrs: &fs::Metadata, meta: &ObjectMeta, body: &Bytes) {
        let seen = Seen::of(attrs);
        if seen.size > HOT_OBJECT || body.len() as u64 != seen.size || !seen.is_settled() {
            return;
        }
        let hot = HotObject {
            seen,
            meta: meta.clone(),
            body: body.clone(),
        };
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.bytes += hot.weight();
        if let Some(old) = kept.files.put((attrs.dev(), attrs.ino()), hot) {
            kept.bytes -= old.weight();
        }
        while kept.bytes > self.budget {
            let Some((_, old)) = kept.files.pop_lru() else {
                break;
            };
            kept.bytes -= old.weight();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::settle;
    use std::io::Write;
    use std::time::Duration;

    fn settled_file(dir: &std::path::Path, body: &[u8]) -> std::path::PathBuf {
        let path = dir.join("obj");
        fs::write(&path, body).expect("write");
        let long_ago = SystemTime::now() - Duration::from_secs(60);
        // Only mtime can be set back; ctime is now. Wait until it settles instead.
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(long_ago))
            .expect("mtime");
        settle();
        path
    }

    fn meta(etag: &str) -> ObjectMeta {
        ObjectMeta {
            etag: etag.into(),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_kept_object_serves_until_its_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = settled_file(dir.path(), b"hello");
        let hot = HotObjects::default();
        let attrs = fs::metadata(&path).expect("stat");
        hot.put(&attrs, &meta("a"), &Bytes::from_static(b"hello"));
        let (m, body) = hot.get(&attrs).expect("kept");
        assert_eq!((m.etag.as_str(), &body[..]), ("a", &b"hello"[..]));

        // Same size, written in place: ctime moves even if mtime is put back.
        let mtime = attrs.modified().expect("mtime");
        let mut f = fs::File::options().write(true).open(&path).expect("open");
        f.write_all(b"HELLO").expect("overwrite");
        f.set_modified(mtime).expect("mtime back");
        let changed = fs::metadata(&path).expect("stat");
        assert_eq!((changed.len(), changed.modified().ok()), (5, Some(mtime)));
        assert!(hot.get(&changed).is_none(), "a changed file is read again");
        assert!(hot.get(&attrs).is_none(), "and its entry is gone");
    }

    #[test]
    fn the_least_recently_read_go_first_past_the_budget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<_> = (0..3)
            .map(|i| {
                let path = dir.path().join(format!("o{i}"));
                fs::write(&path, [b'x'; 100]).expect("write");
                path
            })
            .collect();
        settle();
        let hot = HotObjects::with_budget(2 * (100 + RECORD_WEIGHT));
        let attrs: Vec<_> = paths
            .iter()
            .map(|p| fs::metadata(p).expect("stat"))
            .collect();
        let body = Bytes::from_static(&[b'x'; 100]);
        hot.put(&attrs[0], &meta("0"), &body);
        hot.put(&attrs[1], &meta("1"), &body);
        assert!(
            hot.get(&attrs[0]).is_some(),
            "read again: now the most recent"
        );
        hot.put(&attrs[2], &meta("2"), &body);
        assert!(hot.get(&attrs[1]).is_none(), "the least recently read went");
        assert!(hot.get(&attrs[0]).is_some() && hot.get(&attrs[2]).is_some());
    }

    #[test]
    fn a_fresh_large_or_partial_file_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = dir.path().join("fresh");
        fs::write(&fresh, b"new").expect("write");
        let hot = HotObjects::default();
        let attrs = fs::metadata(&fresh).expect("stat");
        hot.put(&attrs, &meta("f"), &Bytes::from_static(b"new"));
        assert!(hot.get(&attrs).is_none(), "changed within the last second");

        let big = vec![7u8; usize::try_from(HOT_OBJECT).expect("usize") + 1];
        let path = settled_file(dir.path(), &big);
        let attrs = fs::metadata(&path).expect("stat");
        hot.put(&attrs, &meta("b"), &Bytes::from(big.clone()));
        assert!(hot.get(&attrs).is_none(), "over HOT_OBJECT");
        hot.put(&attrs, &meta("b"), &Bytes::from(big[..10].to_vec()));
        assert!(hot.get(&attrs).is_none(), "a range is not the object");
    }
}
