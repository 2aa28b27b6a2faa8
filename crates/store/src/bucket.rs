//! A NAS bucket at run time: its directory, hidden staging area, metadata
//! store, and the one function that turns a key into a path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::{self, FileOwnership};
use crate::catalog::BucketRecord;
use crate::error::{IoContext, StoreError};
use crate::key::{HIDDEN_DIR, ObjectKey};
use crate::meta::MetaStore;

/// A bucket served from a directory of a volume.
#[derive(Debug)]
pub struct NasBucket {
    /// Bucket name.
    pub name: String,
    /// The bucket's directory.
    pub root: PathBuf,
    /// The volume's root: no path may resolve outside it.
    pub volume_root: PathBuf,
    /// Mode and owner of files written through S3.
    pub ownership: FileOwnership,
    /// Where object metadata is kept.
    pub meta: MetaStore,
    /// Creation time, RFC 3339.
    pub created: String,
}

impl NasBucket {
    /// Opens the bucket of `record`: creates its hidden directories, sweeps
    /// temp files a crash left behind, and picks the metadata store.
    pub fn open(record: &BucketRecord) -> Result<Self, StoreError> {
        let hidden = record.root.join(HIDDEN_DIR);
        let tmp = hidden.join("tmp");
        fs::create_dir_all(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
        atomic::sweep_tmp_dir(&tmp);
        let meta = MetaStore::detect(&tmp, hidden.join("meta"));
        Ok(Self {
            name: record.name.clone(),
            root: record.root.clone(),
            volume_root: record.volume_root.clone(),
            ownership: record.ownership,
            meta,
            created: record.created.clone(),
        })
    }

    /// Directory for temp files, on the same file system as the objects.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(HIDDEN_DIR).join("tmp")
    }

    /// Directory holding in-flight multipart uploads.
    pub fn multipart_dir(&self) -> PathBuf {
        self.root.join(HIDDEN_DIR).join("multipart")
    }

    /// The path of `key`. It never leaves the bucket lexically (ObjectKey
    /// guarantees that), and [`Self::check_inside_volume`] guards against symlinks.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.rel_path())
    }

    /// Refuses `path` if an existing prefix of it resolves, through a symbolic
    /// link, outside the volume.
    pub fn check_inside_volume(&self, path: &Path, key: &ObjectKey) -> Result<(), StoreError> {
        let mut probe = path;
        loop {
            match fs::canonicalize(probe) {
                Ok(real) if real.starts_with(&self.volume_root) => return Ok(()),
                Ok(_) => return Err(StoreError::OutsideVolume(key.to_string())),
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
        match fs::create_dir_all(parent) {
            Ok(()) => Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Err(StoreError::ParentIsObject(key.to_string()))
            }
            Err(e) => Err(e).io_context(|| format!("creating {}", parent.display())),
        }
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
            if d == self.root || !d.starts_with(&self.root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}
