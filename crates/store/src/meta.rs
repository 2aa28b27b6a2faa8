//! Object metadata (ETag, content type, user metadata, checksums) kept beside
//! the file: in a `user.tread.meta` extended attribute where the file system
//! has them (in the compact form of [`crate::compact`] where it fits, so
//! that it stays inside the inode; else JSON), else in a JSON sidecar file
//! under the bucket's hidden directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

use crate::compact;
use serde::{Deserialize, Serialize};

const XATTR_NAME: &str = "user.tread.meta";

/// What tread knows of an object beyond its bytes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The ETag without quotes: hex MD5, or `md5-of-parts-N` for multipart objects.
    pub etag: String,
    /// Size of the file when the ETag was computed.
    pub size: u64,
    /// Modification time (ns since the epoch) when the ETag was computed; a
    /// file changed by a NAS user since then has a different one.
    pub mtime_ns: i128,
    /// The file's inode number (0 in records of older versions): a file
    /// replaced by a rename (every write through S3, from any gateway) is a
    /// new inode, even where the NAS keeps coarse modification times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ino: u64,
    /// Content-Type given at upload, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `x-amz-meta-*` headers given at upload, without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    /// Checksums given at upload, by algorithm name (`CRC32`, `SHA256`, …), base64.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    /// The standard headers given at upload.
    #[serde(default, skip_serializing_if = "ContentHeaders::is_empty")]
    pub headers: ContentHeaders,
    /// The sizes of the parts a multipart upload joined, in order; empty
    /// for an object written whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<u64>,
}

/// The standard headers S3 keeps with an object, as sent at upload, and
/// answers on GET and HEAD.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContentHeaders {
    /// Cache-Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// Content-Disposition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// Content-Encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Content-Language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// Expires, as an HTTP date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl ContentHeaders {
    /// Whether none was given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl ObjectMeta {
    /// Whether this record still describes the file with these attributes.
    pub fn is_fresh_for(&self, attrs: &fs::Metadata) -> bool {
        self.size == attrs.len()
            && self.mtime_ns == mtime_ns(attrs)
            && !self.is_of_another_file(attrs)
    }

    /// Whether this record was written for another file than the one with
    /// these attributes (the key's file was replaced since).
    fn is_of_another_file(&self, attrs: &fs::Metadata) -> bool {
        self.ino != 0 && self.ino != attrs.ino()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Modification time of a file in nanoseconds since the epoch.
pub fn mtime_ns(attrs: &fs::Metadata) -> i128 {
    i128::from(attrs.mtime()) * 1_000_000_000 + i128::from(attrs.mtime_nsec())
}

/// Status-change time of a file in nanoseconds since the epoch: any write,
/// rename, link or attribute change moves it.
pub fn ctime_ns(attrs: &fs::Metadata) -> i128 {
    i128::from(attrs.ctime()) * 1_000_000_000 + i128::from(attrs.ctime_nsec())
}

/// How long a file must have been left alone before what was read of it
/// is kept (its ETag, its bytes, a listing page). On a file system with
/// coarse timestamps (a clock tick of several milliseconds; NFS, kernels
/// before 6.13), a write in the same tick as the one before it leaves
/// size, mtime and ctime as they were, so a read racing it could be taken
/// for current ever after; a file older than this gets a later time from
/// any write after the read.
pub const SETTLED: Duration = Duration::from_secs(1);

/// Whether something that last changed at `changed_ns` (see [`mtime_ns`]
/// and [`ctime_ns`]) had been left alone for [`SETTLED`] at `at`.
pub fn settled_by(changed_ns: i128, at: SystemTime) -> bool {
    ns_before(at, SETTLED).is_some_and(|settled| changed_ns <= settled)
}

/// Whether the file with these attributes had changed neither its data
/// nor its attributes in the [`SETTLED`] before `at`.
fn file_settled_by(attrs: &fs::Metadata, at: SystemTime) -> bool {
    settled_by(mtime_ns(attrs).max(ctime_ns(attrs)), at)
}

/// Waits until files written before have [settled](SETTLED), for tests:
/// ctime cannot be set back.
#[cfg(test)]
pub(crate) fn settle() {
    std::thread::sleep(SETTLED + Duration::from_millis(50));
}

/// `ago` before `at`, in nanoseconds since the epoch, to compare with
/// [`mtime_ns`] and [`ctime_ns`]; `None` before the epoch.
fn ns_before(at: SystemTime, ago: Duration) -> Option<i128> {
    let since_epoch = at.checked_sub(ago)?.duration_since(UNIX_EPOCH).ok()?;
    Some(i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX))
}

/// The object whose metadata is read or written: by path, or by an open file
/// (so that attributes, metadata and data all come from the same inode even
/// if the object is replaced meanwhile).
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// The file at this path.
    Path(&'a Path),
    /// This open file.
    File(&'a fs::File),
}

impl At<'_> {
    fn get_xattr(self) -> Option<Vec<u8>> {
        use xattr::FileExt;
        match self {
            At::Path(p) => xattr::get(p, XATTR_NAME).ok().flatten(),
            At::File(f) => {
                // One call into a buffer the compact record fits (~45 bytes),
                // where the crate makes two (the length, then the bytes): a
                // GET's one metadata read. A larger record takes the crate's way.
                let mut record = [0u8; 256];
                match rustix::fs::fgetxattr(f, XATTR_NAME, &mut record) {
                    Ok(len) => record.get(..len).map(<[u8]>::to_vec),
                    Err(rustix::io::Errno::RANGE) => f.get_xattr(XATTR_NAME).ok().flatten(),
                    Err(_) => None,
                }
            }
        }
    }

    fn set_xattr(self, raw: &[u8]) -> io::Result<()> {
        use xattr::FileExt;
        match self {
            At::Path(p) => xattr::set(p, XATTR_NAME, raw),
            At::File(f) => f.set_xattr(XATTR_NAME, raw),
        }
    }

    fn md5(self, len: u64) -> io::Result<String> {
        match self {
            At::Path(p) => md5_of(&mut fs::File::open(p)?, len),
            At::File(mut f) => {
                f.seek(io::SeekFrom::Start(0))?;
                md5_of(&mut f, len)
            }
        }
    }
}

/// Where a bucket keeps object metadata.
#[derive(Debug, Clone)]
pub enum MetaStore {
    /// Extended attributes on the object file itself.
    Xattr,
    /// JSON files under `<bucket>/.tread/meta/<key>.json`, for file systems without xattrs.
    Sidecar(PathBuf),
}

impl MetaStore {
    /// Picks xattrs if `probe_dir` supports them, else sidecar files in `sidecar_dir`.
    pub fn detect(probe_dir: &Path, sidecar_dir: PathBuf) -> Self {
        let probe = probe_dir.join(format!(".xattr-probe-{}", std::process::id()));
        let supported =
            fs::write(&probe, b"").is_ok() && xattr::set(&probe, XATTR_NAME, b"{}").is_ok();
        let _ = fs::remove_file(&probe);
        if supported {
            Self::Xattr
        } else {
            Self::Sidecar(sidecar_dir)
        }
    }

    /// Reads the stored record of the object `at` (key `rel` inside the bucket).
    pub fn get(&self, at: At<'_>, rel: &Path) -> Option<ObjectMeta> {
        let raw = match self {
            Self::Xattr => at.get_xattr()?,
            Self::Sidecar(dir) => fs::read(sidecar_path(dir, rel)).ok()?,
        };
        compact::decode(&raw).or_else(|| serde_json::from_slice(&raw).ok())
    }

    /// Stores `meta` for the object at `path`. For xattrs this may be called
    /// on the open temp file before it is renamed into place, so data and
    /// metadata appear together.
    pub fn set(&self, at: At<'_>, rel: &Path, meta: &ObjectMeta) -> io::Result<()> {
        let raw = serde_json::to_vec(meta)?;
        match self {
            // Compact where it can be: small enough to stay in the inode.
            Self::Xattr => match compact::encode(meta) {
                Some(compact) => at.set_xattr(&compact),
                None => at.set_xattr(&raw),
            },
            Self::Sidecar(dir) => {
                let dest = sidecar_path(dir, rel);
                if let Some(parent) = dest.parent() {
                    fs::create_dir_all(parent)?;
                }
                // Unique across gateways on other hosts, whose pids may match.
                let tmp = dest.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
                fs::write(&tmp, raw)?;
                fs::rename(tmp, dest)
            }
        }
    }

    /// Whether metadata travels with the file (xattrs) rather than beside it.
    pub fn travels_with_file(&self) -> bool {
        matches!(self, Self::Xattr)
    }

    /// Forgets the record of the object at `path`: its sidecar, or its xattr
    /// where the path still exists (a directory that stops being a marker).
    pub fn remove(&self, path: &Path, rel: &Path) {
        match self {
            Self::Xattr => {
                let _ = xattr::remove(path, XATTR_NAME);
            }
            Self::Sidecar(dir) => {
                let _ = fs::remove_file(sidecar_path(dir, rel));
            }
        }
    }

    /// The object's metadata, recomputing the ETag when the file changed (or
    /// was never written through S3) and caching it for the next caller,
    /// once the file has [settled](SETTLED). A file edited in place keeps
    /// its content type and user metadata; a replaced one does not inherit
    /// its predecessor's. `path` is where the object lives, `attrs` what
    /// was read of it just before.
    pub fn load_or_compute(
        &self,
        at: At<'_>,
        path: &Path,
        rel: &Path,
        attrs: &fs::Metadata,
    ) -> io::Result<ObjectMeta> {
        let stored = match self.get(at, rel).filter(|m| !m.is_of_another_file(attrs)) {
            Some(meta) if meta.is_fresh_for(attrs) => return Ok(meta),
            stored => stored,
        };
        let hashed = SystemTime::now();
        let etag = at.md5(attrs.len())?;
        // What the uploader said of the object stays; its checksums do not.
        let (content_type, user, headers) = stored
            .map(|m| (m.content_type, m.user, m.headers))
            .unwrap_or_default();
        let meta = ObjectMeta {
            etag,
            size: attrs.len(),
            mtime_ns: mtime_ns(attrs),
            ino: attrs.ino(),
            content_type,
            user,
            checksums: BTreeMap::new(),
            headers,
            parts: Vec::new(),
        };
        if !file_settled_by(attrs, hashed) {
            // A writer may still be at it within the tick of its last
            // write: what was hashed is served, and hashed again next time.
            return Ok(meta);
        }
        if !self.travels_with_file()
            && fs::metadata(path).map(|m| m.ino()).ok() != Some(attrs.ino())
        {
            // Another gateway replaced the file while its ETag was computed,
            // and may have written the new file's record: keep that one.
            return Ok(meta);
        }
        // A NAS user's file may not be ours to annotate; the ETag is then
        // recomputed next time, which is correct, only slower.
        if let Err(e) = self.set(at, rel, &meta) {
            tracing::debug!(key = %rel.display(), error = %e, "could not cache the ETag");
        }
        Ok(meta)
    }

    /// [`Self::load_or_compute`] for a listing, which has only a path.
    /// A regular file (`regular`) is opened once, not through a link, and
    /// its record read, its bytes hashed and the record written through
    /// that open file: one walk of the path where the path takes three (a
    /// cold listing of 10,000 files walks 20,000 fewer; a record already
    /// kept costs an open and a close more). A link, already
    /// checked to stay inside the bucket, and a file this cannot open
    /// (swapped for a link, unreadable yet recorded) go by path as before.
    pub fn load_or_compute_listed(
        &self,
        path: &Path,
        regular: bool,
        rel: &Path,
        attrs: &fs::Metadata,
    ) -> io::Result<ObjectMeta> {
        use rustix::fs::{Mode, OFlags};
        // Not blocking: a file swapped for a FIFO since the walk read it.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let opened = if regular {
            rustix::fs::open(path, flags, Mode::empty()).ok()
        } else {
            None
        };
        match opened {
            Some(fd) => self.load_or_compute(At::File(&fs::File::from(fd)), path, rel, attrs),
            None => self.load_or_compute(At::Path(path), path, rel, attrs),
        }
    }
}

fn sidecar_path(dir: &Path, rel: &Path) -> PathBuf {
    let mut p = dir.join(rel).into_os_string();
    p.push(".json");
    PathBuf::from(p)
}

/// How many files' ETags [`ListedEtags`] remembers (about 100 bytes each).
const LISTED_ETAGS: usize = 1 << 18;

/// The ETags that listings last read, in memory, by file (device and inode),
/// each with the size and modification time it holds for: the test the
/// stored record passes ([`ObjectMeta::is_fresh_for`]). A warm listing then
/// reads no extended attribute or sidecar, only what its directory walk
/// stats anyway. Least recently listed files are forgotten first.
#[derive(Debug)]
pub struct ListedEtags {
    files: Mutex<lru::LruCache<(u64, u64), ListedEtag>>,
}

#[derive(Debug)]
struct ListedEtag {
    size: u64,
    mtime_ns: i128,
    etag: String,
}

impl Default for ListedEtags {
    /// Empty, growing as listings read (a bounded `LruCache` would allocate
    /// its whole table up front).
    fn default() -> Self {
        Self {
            files: Mutex::new(lru::LruCache::unbounded()),
        }
    }
}

impl ListedEtags {
    /// The ETag last listed for the file with these attributes, if it has
    /// not changed since.
    pub fn get(&self, attrs: &fs::Metadata) -> Option<String> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = files.get(&(attrs.dev(), attrs.ino()))?;
        (seen.size == attrs.len() && seen.mtime_ns == mtime_ns(attrs)).then(|| seen.etag.clone())
    }

    /// Remembers `etag` for the file with these attributes, read just
    /// before, if the file had [settled](SETTLED).
    pub fn put(&self, attrs: &fs::Metadata, etag: &str) {
        if !file_settled_by(attrs, SystemTime::now()) {
            return;
        }
        let seen = ListedEtag {
            size: attrs.len(),
            mtime_ns: mtime_ns(attrs),
            etag: etag.to_string(),
        };
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if files.len() >= LISTED_ETAGS {
            files.pop_lru();
        }
        files.put((attrs.dev(), attrs.ino()), seen);
    }
}

/// Hex MD5 of a whole file.
pub fn md5_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    md5_of(&mut file, len)
}

/// Hex MD5 of everything `file` yields from its current position, about
/// `len` bytes: read through a buffer of that size up to 1 MiB (a listing
/// hashes many small files, and zeroing a 1 MiB buffer for each cost more
/// than hashing them).
fn md5_of(file: &mut impl Read, len: u64) -> io::Result<String> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; usize::try_from(len.clamp(1, 1 << 20)).unwrap_or(1 << 20)];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(store: &MetaStore, dir: &Path) {
        let file = dir.join("obj");
        fs::write(&file, b"hello").expect("write");
        settle();
        let attrs = fs::metadata(&file).expect("stat");
        let meta = store
            .load_or_compute(At::Path(&file), &file, Path::new("obj"), &attrs)
            .expect("compute");
        assert_eq!(meta.etag, "5d41402abc4b2a76b9719d911017c592");
        let cached = store
            .get(At::Path(&file), Path::new("obj"))
            .expect("cached");
        assert_eq!(cached, meta);

        fs::write(&file, b"hello, world").expect("rewrite");
        let attrs = fs::metadata(&file).expect("stat");
        let fresh = store
            .load_or_compute(At::Path(&file), &file, Path::new("obj"), &attrs)
            .expect("recompute");
        assert_eq!(fresh.etag, hex::encode(Md5::digest(b"hello, world")));
    }

    /// A record of any length reads back from the open file: the compact
    /// ones in one call, one with a kilobyte of user metadata too.
    #[test]
    fn records_short_and_long_read_back_from_the_open_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::detect(dir.path(), dir.path().join("sidecars"));
        if !matches!(store, MetaStore::Xattr) {
            return; // No xattrs here (the sidecar store reads files whole).
        }
        let (path, rel) = (dir.path().join("obj"), Path::new("obj"));
        fs::write(&path, b"x").expect("write");
        let file = fs::File::open(&path).expect("open");
        for value_len in [0, 1000] {
            let meta = ObjectMeta {
                etag: "9dd4e461268c8034f5c8564e155c67a6".into(),
                size: 1,
                user: [("long".to_string(), "v".repeat(value_len))].into(),
                ..ObjectMeta::default()
            };
            store.set(At::File(&file), rel, &meta).expect("record");
            assert_eq!(store.get(At::File(&file), rel), Some(meta));
        }
    }

    /// What another gateway does to a key: a new file renamed over it. On a
    /// NAS with coarse times, it may have the old one's size and mtime.
    #[test]
    fn a_file_replaced_with_the_same_size_and_time_gets_its_own_etag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::Sidecar(dir.path().join(".tread/meta"));
        let (file, rel) = (dir.path().join("obj"), Path::new("obj"));
        fs::write(&file, b"first").expect("write");
        let attrs = fs::metadata(&file).expect("stat");
        let mut typed = store
            .load_or_compute(At::Path(&file), &file, rel, &attrs)
            .expect("compute");
        typed.content_type = Some("text/first".into());
        store.set(At::Path(&file), rel, &typed).expect("record");

        let replacement = dir.path().join("replacement");
        fs::write(&replacement, b"other").expect("write");
        fs::File::options()
            .write(true)
            .open(&replacement)
            .and_then(|f| f.set_modified(attrs.modified()?))
            .expect("the same mtime");
        fs::rename(&replacement, &file).expect("replace");
        let attrs = fs::metadata(&file).expect("stat");
        let seen = store
            .load_or_compute(At::Path(&file), &file, rel, &attrs)
            .expect("recompute");
        assert_eq!(seen.etag, hex::encode(Md5::digest(b"other")));
        assert_eq!(seen.content_type, None, "not the replaced file's");
    }

    /// A writer still at a file may write again within the clock tick of
    /// its last write, leaving size and times as they were: until the file
    /// has settled, its ETag is computed each time and kept nowhere.
    #[test]
    fn an_etag_is_kept_only_once_its_file_has_settled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::detect(dir.path(), dir.path().join(".tread/meta"));
        let (file, rel) = (dir.path().join("obj"), Path::new("obj"));
        let listed = ListedEtags::default();
        fs::write(&file, b"being written").expect("write");
        let attrs = fs::metadata(&file).expect("stat");
        let meta = store
            .load_or_compute(At::Path(&file), &file, rel, &attrs)
            .expect("compute");
        assert_eq!(meta.etag, hex::encode(Md5::digest(b"being written")));
        assert_eq!(store.get(At::Path(&file), rel), None, "not stored yet");
        listed.put(&attrs, &meta.etag);
        assert_eq!(listed.get(&attrs), None, "not remembered yet");

        settle();
        let settled = store
            .load_or_compute(At::Path(&file), &file, rel, &attrs)
            .expect("compute");
        assert_eq!(store.get(At::Path(&file), rel), Some(settled.clone()));
        listed.put(&attrs, &settled.etag);
        assert_eq!(listed.get(&attrs), Some(settled.etag));
    }

    #[test]
    fn a_listed_etag_holds_only_while_its_file_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, other) = (dir.path().join("obj"), dir.path().join("other"));
        fs::write(&file, b"first").expect("write");
        fs::write(&other, b"first").expect("write");
        settle();
        let listed = ListedEtags::default();
        let attrs = fs::metadata(&file).expect("stat");
        listed.put(&attrs, "etag-of-first");
        assert_eq!(listed.get(&attrs).as_deref(), Some("etag-of-first"));
        let twin = fs::metadata(&other).expect("stat");
        assert_eq!(listed.get(&twin), None, "another file, same size");

        fs::write(&file, b"longer now").expect("rewrite");
        assert_eq!(listed.get(&fs::metadata(&file).expect("stat")), None);
        let later = attrs.modified().expect("mtime") + std::time::Duration::from_secs(1);
        fs::write(&file, b"other").expect("same size");
        fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        assert_eq!(listed.get(&fs::metadata(&file).expect("stat")), None);
    }

    #[test]
    fn a_record_older_versions_wrote_as_json_is_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::detect(dir.path(), dir.path().join(".tread/meta"));
        if !store.travels_with_file() {
            return; // no xattrs here: the sidecar is JSON alone
        }
        let file = dir.path().join("obj");
        fs::write(&file, b"hello").expect("write");
        let older = ObjectMeta {
            etag: "5d41402abc4b2a76b9719d911017c592".into(),
            size: 5,
            ..ObjectMeta::default()
        };
        let json = serde_json::to_vec(&older).expect("json");
        xattr::set(&file, XATTR_NAME, &json).expect("an older record");
        assert_eq!(store.get(At::Path(&file), Path::new("obj")), Some(older));
    }

    /// A listing reads, computes and keeps a record through the one file
    /// it opens, as by path; a link, and a link where the walk saw a
    /// regular file, are read by path.
    #[test]
    fn a_listed_file_keeps_its_record_and_a_link_is_read_by_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::detect(dir.path(), dir.path().join(".tread/meta"));
        let (file, link) = (dir.path().join("obj"), dir.path().join("link"));
        fs::write(&file, b"hello").expect("write");
        std::os::unix::fs::symlink(&file, &link).expect("link");
        settle();
        let attrs = fs::metadata(&file).expect("stat");
        let listed = store
            .load_or_compute_listed(&file, true, Path::new("obj"), &attrs)
            .expect("compute");
        assert_eq!(listed.etag, "5d41402abc4b2a76b9719d911017c592");
        let kept = store.get(At::Path(&file), Path::new("obj"));
        assert_eq!(kept, Some(listed.clone()), "kept on the file");
        let again = store
            .load_or_compute_listed(&file, true, Path::new("obj"), &attrs)
            .expect("read back");
        assert_eq!(again, listed);

        let through_link = store
            .load_or_compute_listed(&link, false, Path::new("link"), &attrs)
            .expect("by path");
        assert_eq!(through_link.etag, listed.etag);
        let as_regular = store.load_or_compute_listed(&link, true, Path::new("link"), &attrs);
        assert_eq!(
            as_regular
                .expect("a link where a file was falls back to the path")
                .etag,
            listed.etag
        );
    }

    #[test]
    fn sidecar_caches_and_refreshes_etag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::Sidecar(dir.path().join(".tread/meta"));
        roundtrip(&store, dir.path());
        assert!(dir.path().join(".tread/meta/obj.json").exists());
    }

    #[test]
    fn detected_store_caches_and_refreshes_etag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetaStore::detect(dir.path(), dir.path().join(".tread/meta"));
        roundtrip(&store, dir.path());
    }
}
