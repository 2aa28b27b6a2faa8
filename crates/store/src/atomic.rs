//! Atomic, durable file replacement: write a temp file on the same file system,
//! fsync it, rename it over the destination, fsync the directory. A crash at
//! any point leaves the old file or the new one, never a partial one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Ownership and mode given to files the store creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwnership {
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Owner to set, if not the server's own user.
    pub uid: Option<u32>,
    /// Group to set, if not the server's own group.
    pub gid: Option<u32>,
}

impl Default for FileOwnership {
    fn default() -> Self {
        Self {
            mode: 0o644,
            uid: None,
            gid: None,
        }
    }
}

/// A temp file that becomes `dest` on [`AtomicFile::commit`] and disappears if dropped first.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates a fresh temp file in `tmp_dir`, which must be on the destination's file system.
    pub fn new_in(tmp_dir: &Path) -> io::Result<Self> {
        // Random, so that gateways on several hosts sharing the volume never collide.
        let tmp = tmp_dir.join(format!("put-{}", uuid::Uuid::new_v4().simple()));
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        // The directory is made only when missing: a `mkdir` of one that
        // exists still takes its parent's lock, which every upload shares.
        let file = match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(tmp_dir)?;
                create()?
            }
            created => created?,
        };
        Ok(Self {
            file,
            tmp,
            committed: false,
        })
    }

    /// The open temp file, for writing data and setting attributes.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Path of the temp file (for attribute calls that take a path).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Applies `owner`, fsyncs, renames over `dest`, and fsyncs `dest`'s directory.
    pub fn commit(mut self, dest: &Path, owner: FileOwnership) -> io::Result<()> {
        self.sync(owner)?;
        self.rename_to(dest)?;
        sync_dir(dest.parent().unwrap_or(Path::new(".")))
    }

    /// Applies `owner` and makes the data durable, before the file is placed.
    pub fn sync(&mut self, owner: FileOwnership) -> io::Result<()> {
        self.file.flush()?;
        self.file
            .set_permissions(fs::Permissions::from_mode(owner.mode))?;
        if owner.uid.is_some() || owner.gid.is_some() {
            std::os::unix::fs::fchown(&self.file, owner.uid, owner.gid)?;
        }
        self.file.sync_all()
    }

    /// Renames the synced file over `dest`; the caller then fsyncs `dest`'s
    /// directory. On failure the temp file stays, so the caller may fix the
    /// cause and retry.
    pub fn rename_to(&mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.tmp, dest)?;
        self.committed = true;
        Ok(())
    }

    /// Like [`Self::rename_to`], but fails with `AlreadyExists` instead of
    /// replacing `dest`: a hard link never overwrites, so of several
    /// create-only writers exactly one wins.
    pub fn link_new(&mut self, dest: &Path) -> io::Result<()> {
        fs::hard_link(&self.tmp, dest)?;
        self.committed = true;
        fs::remove_file(&self.tmp)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes temp files left behind by a crash: those unmodified for longer
/// than `max_age`. A file being written (by this gateway or another on the
/// same volume) is modified as its bytes arrive, so it is never this old.
pub fn sweep_tmp_dir(tmp_dir: &Path, max_age: std::time::Duration) {
    let Ok(entries) = fs::read_dir(tmp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if idle.is_none_or(|idle| idle <= max_age) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                tracing::info!(path = %entry.path().display(), "swept a temp file a crash left behind");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "could not sweep a stale temp file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_discards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join("tmp");
        let dest = dir.path().join("obj");
        fs::write(&dest, b"old").expect("old");

        let mut f = AtomicFile::new_in(&tmp).expect("new");
        f.write_all(b"half").expect("write");
        drop(f);
        assert_eq!(fs::read(&dest).expect("read"), b"old");
        assert_eq!(
            fs::read_dir(&tmp).expect("ls").count(),
            0,
            "dropped temp file must vanish"
        );

        let mut f = AtomicFile::new_in(&tmp).expect("new");
        f.write_all(b"new").expect("write");
        f.commit(&dest, FileOwnership::default()).expect("commit");
        assert_eq!(fs::read(&dest).expect("read"), b"new");
        let mode = fs::metadata(&dest).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    /// A concurrent delete can remove the destination's directory before the
    /// rename; the temp file must survive that so the caller can retry.
    #[test]
    fn a_failed_place_keeps_the_temp_file_for_a_retry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("gone/obj");
        let mut f = AtomicFile::new_in(&dir.path().join("tmp")).expect("new");
        f.write_all(b"data").expect("write");
        f.sync(FileOwnership::default()).expect("sync");
        let err = f.rename_to(&dest).expect_err("parent missing");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            f.tmp_path().exists(),
            "the temp file must survive a failed rename"
        );
        fs::create_dir(dir.path().join("gone")).expect("mkdir");
        f.rename_to(&dest).expect("retry");
        assert_eq!(fs::read(&dest).expect("read"), b"data");
    }
}
