//! What keeps a step away from tread's own files. A `run` step is any
//! shell command of a pipeline file, and tread's data dir holds the API
//! token and the catalog with every S3 user's secret: a step must reach
//! data and models over S3 as its pipeline's user, never through the disk.
//!
//! Each step process starts in a user and mount namespace of its own in
//! which the data dir is covered by an empty, read-only tmpfs that nobody
//! may enter, so every path into it answers "permission denied". The step
//! keeps no capability after `exec`, so it cannot unmount the cover. When
//! tread runs as root, the step first drops to an unprivileged user
//! (`[instance] user`, `nobody` by default): a root step could unmount it.
//! The daemon itself is made non-dumpable, so a step running as the same
//! user cannot open the daemon's descriptors through `/proc/<pid>/fd`.
//! A program given by absolute path (tread's own binary, which may sit
//! under a directory the step's user cannot enter, such as `/root`) is
//! opened by the daemon and run through that descriptor.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use thiserror::Error;
use uzers::os::unix::UserExt;

/// The user steps run as when tread runs as root and the pipeline names none.
pub const DEFAULT_STEP_USER: &str = "nobody";

/// Why steps cannot run as asked.
#[derive(Debug, Error)]
pub enum IsolationError {
    /// The named Unix user does not exist.
    #[error(
        "instance.user {0:?}: no such user on this machine; create it (useradd --system {0}) or name another"
    )]
    NoSuchUser(String),
    /// Steps may not run as root: a root step could lift its isolation.
    #[error(
        "instance.user {0:?} is root: steps run as an unprivileged user; name one (useradd --system tread-step)"
    )]
    Root(String),
    /// tread is not root, so it cannot start steps as another user.
    #[error(
        "instance.user {user:?}: tread runs as uid {uid} and cannot start steps as another user; remove instance.user, or run tread as root"
    )]
    CannotSwitch {
        /// The user asked for.
        user: String,
        /// tread's own uid.
        uid: u32,
    },
    /// A path holds a NUL byte and cannot be given to the kernel.
    #[error("{0} holds a NUL byte")]
    Nul(String),
    /// The step's program could not be opened.
    #[error("opening {path}: {source}")]
    Program {
        /// The program.
        path: String,
        /// Why it could not be opened.
        source: std::io::Error,
    },
}

/// The Unix user a step runs as, when tread switches to one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory, from the password database.
    pub home: PathBuf,
}

impl StepUser {
    /// The user steps of a pipeline naming `user` run as: `None` when tread
    /// is not root (steps run as tread's own user, which must then name no
    /// other), otherwise `user` or [`DEFAULT_STEP_USER`], never root.
    pub fn resolve(user: Option<&str>) -> Result<Option<Self>, IsolationError> {
        let uid = rustix::process::geteuid().as_raw();
        if uid != 0 {
            return match user {
                Some(name) if uzers::get_user_by_name(name).is_none_or(|u| u.uid() != uid) => {
                    Err(IsolationError::CannotSwitch {
                        user: name.to_string(),
                        uid,
                    })
                }
                _ => Ok(None),
            };
        }
        let name = user.unwrap_or(DEFAULT_STEP_USER);
        let found = uzers::get_user_by_name(name)
            .ok_or_else(|| IsolationError::NoSuchUser(name.to_string()))?;
        if found.uid() == 0 {
            return Err(IsolationError::Root(name.to_string()));
        }
        Ok(Some(Self {
            name: name.to_string(),
            uid: found.uid(),
            gid: found.primary_group_id(),
            home: found.home_dir().to_path_buf(),
        }))
    }
}

/// Everything a step's process needs between `fork` and `exec`, prepared
/// beforehand: no allocation may happen in the child of a threaded process.
#[derive(Debug)]
pub struct Isolation {
    hidden: CString,
    uid_map: CString,
    gid_map: CString,
    /// The program, held open for a step user who may not reach its path.
    program: Option<OwnedFd>,
}

impl Isolation {
    /// Hides `hidden` from a step running `program` as `user` (tread's own
    /// user when `None`).
    pub fn new(
        hidden: &Path,
        user: Option<&StepUser>,
        program: &Path,
    ) -> Result<Self, IsolationError> {
        let (uid, gid) = match user {
            Some(u) => (u.uid, u.gid),
            None => (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
        };
        let hidden = CString::new(hidden.as_os_str().as_bytes())
            .map_err(|_| IsolationError::Nul(hidden.display().to_string()))?;
        let map = |id: u32| CString::new(format!("{id} {id} 1")).unwrap_or_default();
        let held = user.is_some() && program.is_absolute();
        let program = held
            .then(|| {
                use rustix::fs::{Mode, OFlags};
                rustix::fs::open(program, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(
                    |e| IsolationError::Program {
                        path: program.display().to_string(),
                        source: e.into(),
                    },
                )
            })
            .transpose()?;
        Ok(Self {
            hidden,
            uid_map: map(uid),
            gid_map: map(gid),
            program,
        })
    }

    /// What the step execs: `program` itself, or the descriptor held open
    /// for it, which the step's user may run without reaching its path.
    pub fn program_path(&self, program: &Path) -> PathBuf {
        match &self.program {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => program.to_path_buf(),
        }
    }

    /// Makes `command` start isolated, as `user` when given.
    pub fn apply(self, command: &mut tokio::process::Command, user: Option<&StepUser>) {
        if let Some(user) = user {
            // std switches gid, then uid (dropping supplementary groups),
            // before the closure below runs.
            command.uid(user.uid).gid(user.gid);
        }
        // SAFETY: the closure runs in the forked child before `exec` and only
        // makes system calls on data prepared above: no allocation, no lock.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || self.enter().map_err(std::io::Error::from));
        }
    }

    /// Runs in the child: a user and mount namespace of its own with the
    /// hidden directory covered.
    fn enter(&self) -> rustix::io::Result<()> {
        use rustix::mount::{MountFlags, MountPropagationFlags};
        use rustix::thread::UnshareFlags;
        if let Some(program) = &self.program {
            // Kept across `exec`, which runs it as /proc/self/fd/N.
            rustix::io::fcntl_setfd(program, rustix::io::FdFlags::empty())?;
        }
        // SAFETY: no FILES flag, so no descriptor table is split.
        #[allow(unsafe_code)]
        unsafe {
            rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS)?;
        }
        // The daemon is not dumpable, nor is a process that just changed
        // uid; its /proc/self files then belong to root and the maps
        // below could not be written.
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)?;
        write_file(c"/proc/self/setgroups", c"deny")?;
        write_file(c"/proc/self/uid_map", &self.uid_map)?;
        write_file(c"/proc/self/gid_map", &self.gid_map)?;
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )?;
        rustix::mount::mount(
            c"tread-hidden",
            self.hidden.as_c_str(),
            c"tmpfs",
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"mode=000,size=4k",
        )
    }
}

fn write_file(path: &CStr, text: &CStr) -> rustix::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let written = rustix::io::write(&fd, text.to_bytes())?;
    if written == text.to_bytes().len() {
        Ok(())
    } else {
        Err(rustix::io::Errno::IO)
    }
}

/// Makes this process non-dumpable: a process of the same user (a step,
/// when tread is not root) can then neither read its memory or environment
/// nor open its descriptors (the catalog, the token) through `/proc`.
pub fn protect_daemon() -> std::io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_never_run_as_root_or_as_a_missing_user() {
        if !rustix::process::geteuid().is_root() {
            let other = StepUser::resolve(Some("root")).expect_err("cannot switch");
            assert!(other.to_string().contains("cannot start steps"), "{other}");
            assert_eq!(StepUser::resolve(None).expect("own user"), None);
            return;
        }
        let nobody = StepUser::resolve(None).expect("nobody exists");
        assert_eq!(nobody.map(|u| u.name).as_deref(), Some(DEFAULT_STEP_USER));
        let missing = StepUser::resolve(Some("no-such-user-r17")).expect_err("missing user");
        assert!(missing.to_string().contains("no such user"), "{missing}");
        let root = StepUser::resolve(Some("root")).expect_err("root");
        assert!(root.to_string().contains("unprivileged"), "{root}");
    }
}
