//! A NAS bucket at run time: its directory, hidden staging area, metadata
//! store, and the one function that turns a key into a path.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::atomic::{self, FileOwnership};
use crate::catalog::BucketRecord;
use crate::error::{IoContext, StoreError};
use crate::hot::HotObjects;
use crate::key::{HIDDEN_DIR, ObjectKey};
use crate::meta::{At, ListedEtags, MetaStore};

/// How many lock files a bucket's keys share, by a stable hash of the key
/// (the same in every gateway): writes of one key take turns at their
/// commit, and so, rarely and briefly, do keys that hash alike.
const KEY_LOCK_STRIPES: u16 = 256;

/// A key's lock, held until dropped (closing the file releases it).
pub struct KeyLock {
    _file: fs::File,
}

/// A bucket served from a directory of a volume.
#[derive(Debug)]
pub struct NasBucket {
    /// Bucket name.
    pub name: String,
    /// The bucket's directory.
    pub root: PathBuf,
    /// tread's data dir, resolved, where the bucket must be kept out of it
    /// (the catalog holds secrets): no path may resolve into it. `None` for
    /// a bucket of the default volume, which lives in the data dir and so
    /// cannot reach the catalog beside it.
    guarded_data_dir: Option<PathBuf>,
    /// Mode and owner of files written through S3.
    pub ownership: FileOwnership,
    /// Where object metadata is kept.
    pub meta: MetaStore,
    /// The ETags listings last read (shared by the store's buckets).
    pub listed: Arc<ListedEtags>,
    /// Small objects GETs read lately (shared by the store's buckets);
    /// `None` on a network file system, whose timestamps are the server's
    /// and may lag, so a change could go unseen.
    pub hot: Option<Arc<HotObjects>>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The location constraint it was created with; none is `us-east-1`.
    pub location: Option<String>,
    /// Whether the bucket's file system is a local one, where looking up
    /// an object and reading a small one is quick (see
    /// `backend::quick_io`); a network file system may stall any call.
    pub is_local: bool,
    /// Whether a path beneath the root, followed lexically, may lead into
    /// tread's data dir: then every path is resolved and judged by
    /// [`Self::may_serve`], never opened directly.
    holds_data_dir: bool,
}

impl NasBucket {
    /// Opens the bucket of `record`: creates its hidden directories and
    /// picks the metadata store; `listed` remembers what listings read,
    /// `hot` what GETs of small objects read.
    /// Temp files a crash left behind are swept by age
    /// ([`crate::NasStore::sweep_leftovers`]), never here: another gateway
    /// on the same volume may be writing them.
    pub fn open(
        record: &BucketRecord,
        listed: Arc<ListedEtags>,
        hot: Arc<HotObjects>,
    ) -> Result<Self, StoreError> {
        let hidden = record.root.join(HIDDEN_DIR);
        let tmp = hidden.join("tmp");
        fs::create_dir_all(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
        let meta = MetaStore::detect(&tmp, hidden.join("meta"));
        // Canonical, as the resolved paths compared with it are.
        let root = fs::canonicalize(&record.root)
            .io_context(|| format!("resolving {}", record.root.display()))?;
        let guarded_data_dir = (!record.volume_root.starts_with(&record.data_dir))
            .then(|| fs::canonicalize(&record.data_dir).unwrap_or(record.data_dir.clone()));
        let is_local = is_local_file_system(&root);
        let holds_data_dir = guarded_data_dir
            .as_ref()
            .is_some_and(|data_dir| data_dir.starts_with(&root) || root.starts_with(data_dir));
        Ok(Self {
            name: record.name.clone(),
            root,
            guarded_data_dir,
            ownership: record.ownership,
            meta,
            listed,
            hot: is_local.then_some(hot),
            created: record.created.clone(),
            location: record.location.clone(),
            is_local,
            holds_data_dir,
        })
    }

    /// Directory for temp files, on the same file system as the objects.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(HIDDEN_DIR).join("tmp")
    }

    /// Takes `key`'s lock (blocking). A conditional write checks the object
    /// and replaces it under it, and every other write or delete of the key
    /// waits its turn, so the check still holds at the replace. The lock is
    /// advisory, on a file in the hidden directory: it holds between the
    /// gateways of one host and, over NFS v4, between hosts.
    pub fn lock_key(&self, key: &ObjectKey) -> Result<KeyLock, StoreError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_str().as_bytes());
        let stripe = u16::from_be_bytes([digest[0], digest[1]]) % KEY_LOCK_STRIPES;
        let dir = self.root.join(HIDDEN_DIR).join("locks");
        let path = dir.join(format!("{stripe:02x}"));
        let open = || {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
                open()
            }
            other => other,
        }
        .io_context(|| format!("opening the lock {}", path.display()))?;
        file.lock()
            .io_context(|| format!("locking {}", path.display()))?;
        Ok(KeyLock { _file: file })
    }

    /// Directory holding in-flight multipart uploads.
    pub fn multipart_dir(&self) -> PathBuf {
        self.root.join(HIDDEN_DIR).join("multipart")
    }

    /// The path of `key`. It never leaves the bucket lexically (ObjectKey
    /// guarantees that), and [`Self::check_inside_bucket`] guards against symlinks.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.rel_path())
    }

    /// Whether a resolved (canonical) path may be served: inside this
    /// bucket's own tree, so that a link a NAS user makes cannot lead into
    /// another bucket's (whose policies differ) or out of the volume; not
    /// inside any hidden directory; and outside tread's data dir where it
    /// is guarded.
    pub fn may_serve(&self, real: &Path) -> bool {
        real.strip_prefix(&self.root).is_ok_and(|rel| {
            !rel.components()
                .any(|c| c.as_os_str().eq_ignore_ascii_case(HIDDEN_DIR))
        }) && self
            .guarded_data_dir
            .as_ref()
            .is_none_or(|data_dir| !real.starts_with(data_dir))
    }

    /// Opens `key`'s file (or directory) for reading: without following
    /// any link when it can, else through the links once
    /// [`Self::check_inside_bucket`] has judged where they lead.
    pub fn open_key(&self, key: &ObjectKey) -> Result<io::Result<fs::File>, StoreError> {
        let path = self.path_of(key);
        if let Some(opened) = self.open_plainly(&path, OFlags::RDONLY) {
            return Ok(opened.map(fs::File::from));
        }
        self.check_inside_bucket(&path, key)?;
        Ok(fs::File::open(&path))
    }

    /// Opens `path` (the root joined with a key's path) in one call that
    /// follows no symbolic link (openat2 with RESOLVE_NO_SYMLINKS): the
    /// root is canonical and a key has no `..`, so what opens is inside
    /// the bucket and, as keys name no hidden directory, in none. Free of
    /// the races of resolving first and opening after, and cheaper than
    /// `canonicalize`, which reads every component. `None` when this
    /// cannot decide: the path crosses a link (which must be followed and
    /// judged), the kernel has no openat2 (before Linux 5.6), or a lexical
    /// path may lead into tread's data dir (see `holds_data_dir`).
    fn open_plainly(&self, path: &Path, flags: OFlags) -> Option<io::Result<OwnedFd>> {
        if self.holds_data_dir {
            return None;
        }
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = flags | OFlags::CLOEXEC;
        match rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve) {
            Ok(fd) => Some(Ok(fd)),
            Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::NOTDIR => {
                Some(Err(e.into()))
            }
            Err(_) => None,
        }
    }

    /// Whether the longest existing prefix of `path` (inside the root,
    /// lexically) is reached through no symbolic link: then it is inside
    /// the bucket and in no hidden directory. Decided without reading each
    /// component; `false` when it cannot be.
    fn is_plainly_inside(&self, path: &Path) -> bool {
        let mut probe = path;
        loop {
            match self.open_plainly(probe, OFlags::PATH) {
                Some(Ok(_)) => return true,
                Some(Err(_)) => match probe.parent() {
                    Some(parent) if parent.starts_with(&self.root) => probe = parent,
                    _ => return true,
                },
                None => return false,
            }
        }
    }

    /// Refuses `path` if its longest existing prefix resolves, through a
    /// symbolic link, to a place [`Self::may_serve`] refuses.
    pub fn check_inside_bucket(&self, path: &Path, key: &ObjectKey) -> Result<(), StoreError> {
        if path.starts_with(&self.root) && self.is_plainly_inside(path) {
            return Ok(());
        }
        let mut probe = path;
        loop {
            match fs::canonicalize(probe) {
                Ok(real) if self.may_serve(&real) => return Ok(()),
                Ok(_) => return Err(StoreError::OutsideBucket(key.to_string())),
                Err(_) => match probe.parent() {
                    Some(parent) if parent.starts_with(&self.root) => probe = parent,
                    _ => return Ok(()),
                },
            }
        }
    }

    /// Creates the parent directories of `path`, refusing when one of them is an object file.
    pub fn create_parents(&self, path: &Path, key: &ObjectKey) -> Result<(), StoreError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        // A parent that is a file counts as missing, so that creating it
        // fails as it should; when none is missing, nothing is made (a
        // `mkdir` of a directory that exists still takes its parent's lock).
        let missing: Vec<&Path> = parent
            .ancestors()
            .take_while(|d| *d != self.root && !d.is_dir())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        match fs::create_dir_all(parent) {
            Ok(()) => {}
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                return Err(StoreError::ParentIsObject(key.to_string()));
            }
            Err(e) => return Err(e).io_context(|| format!("creating {}", parent.display())),
        }
        // A new directory survives a crash only once its own parent is synced.
        for dir in missing.iter().rev() {
            if let Some(up) = dir.parent() {
                atomic::sync_dir(up).io_context(|| format!("syncing {}", up.display()))?;
            }
        }
        Ok(())
    }

    /// Refuses `path` early when one of its parents is an existing object file;
    /// creates nothing, so a refused upload leaves no empty directories behind.
    pub fn check_parents(&self, path: &Path, key: &ObjectKey) -> Result<(), StoreError> {
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
            match fs::metadata(d) {
                Ok(m) if m.is_dir() => return Ok(()),
                Ok(_) => return Err(StoreError::ParentIsObject(key.to_string())),
                Err(_) => dir = d.parent(),
            }
        }
        Ok(())
    }

    /// Removes the now-empty directories between `path` and the bucket root.
    pub fn remove_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root
                || !d.starts_with(&self.root)
                || self.is_marked(d)
                || fs::remove_dir(d).is_err()
            {
                break;
            }
            dir = d.parent();
        }
    }

    /// Whether directory `dir` was created as a directory-marker object
    /// (`PUT a/b/`), which outlives the objects under it, as in S3.
    pub fn is_marked(&self, dir: &Path) -> bool {
        let rel = dir.strip_prefix(&self.root).unwrap_or(dir);
        self.meta.get(At::Path(dir), rel).is_some()
    }
}

/// Whether `dir` is on a local disk file system (or in memory), by the
/// file system's magic number: a short list of known ones, so that any
/// other (NFS, SMB, FUSE, a cluster file system) counts as remote.
fn is_local_file_system(dir: &Path) -> bool {
    const LOCAL: [u64; 7] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x2FC1_2FC1, // zfs
        0xF2F5_2010, // f2fs
        0x794C_7630, // overlayfs
    ];
    rustix::fs::statfs(dir).is_ok_and(|fs| {
        #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
        let magic = fs.f_type as u64;
        LOCAL.contains(&magic)
    })
}
