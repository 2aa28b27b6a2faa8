//! Instances: the compute a run holds, started when the run starts and
//! stopped the moment it ends. [`InstanceBackend`] is what a backend
//! implements; [`LocalBackend`] runs each step as a process group of this
//! machine in a working directory of its own, outside tread's data dir and
//! isolated from it (see [`crate::isolation`]); [`crate::slurm`] runs a run
//! as a Slurm job. A Kubernetes backend (one Job per run, README's design
//! notes) implements the same calls.

use crate::isolation::{Isolation, IsolationError, StepUser};
use crate::log::StepLog;
use crate::slurm::SlurmBackend;
use crate::spec::{BackendKind, InstanceSpec};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Why an instance could not start, run a command or stop.
#[derive(Debug, Error)]
pub enum InstanceError {
    /// The backend failed at the operating-system level.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Steps cannot run as the pipeline asks.
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    /// The cluster refused the instance, ended it, or did not answer; the
    /// message is the cluster's own where it gave one.
    #[error("{0}")]
    Cluster(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstanceError {
    let context = context.into();
    move |source| InstanceError::Io { context, source }
}

/// A command to run on an instance.
#[derive(Clone, Debug)]
pub struct Command {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables added to a clean environment.
    pub env: Vec<(String, String)>,
}

/// Starts instances.
#[async_trait]
pub trait InstanceBackend: Send + Sync {
    /// The backend's name, recorded with each instance.
    fn name(&self) -> &'static str;
    /// Checks, when a pipeline is applied, that instances as `spec` asks
    /// for can be started.
    async fn check(&self, spec: &InstanceSpec) -> Result<(), InstanceError>;
    /// Starts an instance for run `run` of `pipeline`, as `spec` asks; a
    /// backend with a queue returns once the instance runs.
    async fn start(
        &self,
        pipeline: &str,
        run: i64,
        spec: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, InstanceError>;
    /// Stops whatever the instance with this [`Instance::handle`] left
    /// running when tread itself stopped under it.
    async fn reclaim(&self, handle: &str);
    /// Stops what run `run` of `pipeline` may have started before its
    /// instance was recorded (a job still queued when tread stopped).
    async fn reclaim_run(&self, _pipeline: &str, _run: i64) {}
    /// Whether every daemon reaches this backend's instances (a cluster),
    /// so that one can stop those of another daemon that died; a local
    /// instance is reached only on its own machine.
    fn cluster_wide(&self) -> bool {
        false
    }
}

/// A started instance. Nothing in it assumes the daemon's disk: a step's
/// files are read through the instance.
#[async_trait]
pub trait Instance: Send + Sync {
    /// Where the instance is, recorded in the catalog and given back to
    /// [`InstanceBackend::reclaim`]: a working directory, `slurm:<job>`.
    fn handle(&self) -> String;
    /// Seconds the instance waited for its compute before it ran (a
    /// cluster's queue); not billed.
    fn queued_seconds(&self) -> f64 {
        0.0
    }
    /// Runs a command to its end, its output going to `log` line by line
    /// as it comes; returns whether it exited with success.
    async fn exec(&self, command: &Command, log: &StepLog) -> Result<bool, InstanceError>;
    /// Reads a file a command wrote in the working directory; `None` when
    /// there is none.
    async fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, InstanceError>;
    /// Stops the instance: every process it still runs, then its files.
    /// Returns the billed seconds when the backend accounts them itself
    /// (a cluster's allocation times); the caller's clock otherwise.
    async fn stop(&self) -> Option<f64>;
}

/// The backends a daemon offers, one per [`BackendKind`]; each pipeline's
/// `[instance] backend` picks one.
#[derive(Clone)]
pub struct Backends {
    local: Arc<dyn InstanceBackend>,
    slurm: Arc<dyn InstanceBackend>,
}

impl Backends {
    /// This machine's backend beside a Slurm backend that reaches the
    /// cluster its commands are configured for (`SLURM_CONF`).
    pub fn new(local: LocalBackend) -> Self {
        Self {
            local: Arc::new(local),
            slurm: Arc::new(SlurmBackend),
        }
    }

    /// The backend a pipeline asks for.
    pub fn of(&self, kind: BackendKind) -> &dyn InstanceBackend {
        match kind {
            BackendKind::Local => self.local.as_ref(),
            BackendKind::Slurm => self.slurm.as_ref(),
        }
    }

    /// Every backend, for recovery after a restart.
    pub fn all(&self) -> [&dyn InstanceBackend; 2] {
        [self.local.as_ref(), self.slurm.as_ref()]
    }

    /// The backend recorded under `name` with an instance.
    pub fn named(&self, name: &str) -> Option<&dyn InstanceBackend> {
        self.all().into_iter().find(|b| b.name() == name)
    }
}

/// Instances as process groups on this machine.
pub struct LocalBackend {
    root: PathBuf,
    hidden: PathBuf,
}

impl LocalBackend {
    /// Instances get working directories under `root` (the system's temp
    /// dir for `tread up`); their steps cannot see `hidden` (tread's data
    /// dir), which may not contain `root`.
    pub fn new(root: PathBuf, hidden: PathBuf) -> Result<Self, InstanceError> {
        if root.starts_with(&hidden) {
            return Err(InstanceError::Io {
                context: format!(
                    "instances in {} would be inside the data dir {} that steps may not see",
                    root.display(),
                    hidden.display()
                ),
                source: std::io::ErrorKind::InvalidInput.into(),
            });
        }
        Ok(Self { root, hidden })
    }
}

#[async_trait]
impl InstanceBackend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn check(&self, spec: &InstanceSpec) -> Result<(), InstanceError> {
        StepUser::resolve(spec.user.as_deref())?;
        Ok(())
    }

    async fn start(
        &self,
        _pipeline: &str,
        run: i64,
        spec: &InstanceSpec,
    ) -> Result<Box<dyn Instance>, InstanceError> {
        let user = StepUser::resolve(spec.user.as_deref())?;
        let workdir = tempfile::Builder::new()
            .prefix(&format!("tread-run-{run}-"))
            .tempdir_in(&self.root)
            .map_err(io(format!(
                "creating a working directory in {}",
                self.root.display()
            )))?
            .keep();
        if let Some(user) = &user {
            std::os::unix::fs::chown(&workdir, Some(user.uid), Some(user.gid))
                .map_err(io(format!("giving {} to {}", workdir.display(), user.name)))?;
        }
        Ok(Box::new(LocalInstance {
            workdir,
            hidden: self.hidden.clone(),
            user,
            groups: Mutex::default(),
        }))
    }

    async fn reclaim(&self, handle: &str) {
        let workdir = Path::new(handle);
        kill_processes_in(workdir);
        let _ = tokio::fs::remove_dir_all(workdir).await;
    }
}

struct LocalInstance {
    workdir: PathBuf,
    /// What its steps may not see.
    hidden: PathBuf,
    /// Who its steps run as, when tread runs as root.
    user: Option<StepUser>,
    /// Process groups started, with their leader's start time.
    groups: Mutex<Vec<(i32, Option<u64>)>>,
}

#[async_trait]
impl Instance for LocalInstance {
    fn handle(&self) -> String {
        self.workdir.display().to_string()
    }

    async fn exec(&self, command: &Command, log: &StepLog) -> Result<bool, InstanceError> {
        let isolation = Isolation::new(&self.hidden, self.user.as_ref(), &command.program)?;
        let mut process = tokio::process::Command::new(isolation.program_path(&command.program));
        process
            .args(&command.args)
            .env_clear()
            .envs(inherited_env())
            .envs(self.user.as_ref().map(|u| ("HOME", self.home_of(u))))
            .envs(command.env.iter().cloned())
            .current_dir(&self.workdir);
        isolation.apply(&mut process, self.user.as_ref());
        let mut child = process
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own group, so stopping the instance reaches every
            // process a shell step starts, not just the shell.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.not_started(&command.program, e))?;
        if let Some(pid) = child.id() {
            let pid = pid as i32;
            lock(&self.groups).push((pid, start_time(pid)));
        }
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let copy = async {
            let keep_all = |_: &str| false;
            tokio::join!(
                copy_lines(stdout, log, keep_all),
                copy_lines(stderr, log, keep_all)
            );
        };
        tokio::pin!(copy);
        let mut copied = false;
        let status = {
            let wait = child.wait();
            tokio::pin!(wait);
            tokio::select! {
                status = &mut wait => status,
                () = &mut copy => {
                    copied = true;
                    wait.await
                }
            }
        }
        .map_err(io(format!("waiting for {}", command.program.display())))?;
        if !copied {
            // A process the step left in the background may hold the pipes
            // open; the step is over when its own process is.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), copy).await;
        }
        Ok(status.success())
    }

    async fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, InstanceError> {
        let path = self.workdir.join(name);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("reading {}", path.display()))(e)),
        }
    }

    async fn stop(&self) -> Option<f64> {
        for (group, started) in lock(&self.groups).drain(..) {
            // A group whose leader's pid now belongs to a process started
            // later has ended and its id was reused: not ours to kill.
            let reused = start_time(group).is_some_and(|now| Some(now) != started);
            if let (false, Some(pid)) = (reused, rustix::process::Pid::from_raw(group)) {
                // ESRCH (the group is gone) is the usual, good outcome.
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        kill_processes_in(&self.workdir);
        let _ = tokio::fs::remove_dir_all(&self.workdir).await;
        None
    }
}

impl LocalInstance {
    /// Why a step did not start, with a hint when something was refused.
    fn not_started(&self, program: &Path, source: std::io::Error) -> InstanceError {
        let user = self.user.as_ref().map(|u| u.name.as_str());
        let hint = if source.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                ": check that {} may run it (every directory above it included), and that unprivileged user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1, no AppArmor restriction on them)",
                user.unwrap_or("tread's user")
            )
        } else {
            String::new()
        };
        let as_user = user.map(|u| format!(" as {u}")).unwrap_or_default();
        InstanceError::Io {
            context: format!(
                "starting {}{as_user}, isolated from {}{hint}",
                program.display(),
                self.hidden.display()
            ),
            source,
        }
    }

    /// The step user's home, or the working directory when it has none
    /// (`nobody`'s is `/nonexistent`).
    fn home_of(&self, user: &StepUser) -> PathBuf {
        if user.home.is_dir() {
            user.home.clone()
        } else {
            self.workdir.clone()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The few variables a step needs from tread's own environment; the rest
/// (the developer's AWS keys among them) stay out.
fn inherited_env() -> impl Iterator<Item = (String, String)> {
    env_of(&["PATH", "HOME", "LANG", "TMPDIR", "TREAD_LOG"])
}

/// The daemon's own values of the variables `names`, those it has.
pub(crate) fn env_of(names: &'static [&'static str]) -> impl Iterator<Item = (String, String)> {
    names
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
}

/// Copies `stream` into `log` line by line as it comes, leaving out the
/// lines `skip` picks.
pub(crate) async fn copy_lines(
    stream: Option<impl AsyncRead + Unpin>,
    log: &StepLog,
    skip: fn(&str) -> bool,
) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                if !skip(&text) {
                    log.line(&text);
                }
            }
        }
    }
}

/// When process `pid` started (clock ticks since boot, field 22 of
/// `/proc/<pid>/stat`), telling a process from a later one with its pid.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Kills every process whose working directory is `dir` or below: what a
/// step left behind, found even after tread restarted and forgot the
/// process groups it started.
fn kill_processes_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let inside =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir));
        if let (true, Some(pid)) = (inside, rustix::process::Pid::from_raw(pid)) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[tokio::test]
    async fn stopping_an_instance_kills_what_its_steps_left_running() -> anyhow::Result<()> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir(root.path().join("data"))?;
        let backend = LocalBackend::new(std::env::temp_dir(), root.path().join("data"))?;
        let instance = backend.start("p", 1, &InstanceSpec::default()).await?;
        let log = StepLog::create(&root.path().join("step.log"), vec![])?;
        let command = Command {
            program: "sh".into(),
            args: vec!["-c".into(), "sleep 60 & echo $! > pid; echo started".into()],
            env: vec![],
        };
        assert!(instance.exec(&command, &log).await?);
        let written = instance.read_file("pid").await?;
        let pid: i32 = String::from_utf8(written.unwrap_or_default())?
            .trim()
            .parse()?;
        let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists();
        assert!(alive(pid), "the background sleep runs after its step");
        instance.stop().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(pid)
            && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "process {pid} survived the stop"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!Path::new(&instance.handle()).exists());
        Ok(())
    }

    /// A data dir anyone could read but for the isolation: the parent
    /// directory open to all, the token world-readable.
    fn open_data_dir() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        std::fs::write(data.join("api-token"), "r17-secret-token")?;
        std::fs::set_permissions(
            data.join("api-token"),
            std::fs::Permissions::from_mode(0o644),
        )?;
        Ok((dir, data))
    }

    #[tokio::test]
    async fn r17_a_step_cannot_read_the_data_dir() -> anyhow::Result<()> {
        let (dir, data) = open_data_dir()?;
        let token = data.join("api-token");
        let read_token = format!("cat {0}; ls {1}; id -u", token.display(), data.display());
        let unisolated = std::process::Command::new("sh")
            .args(["-c", &read_token])
            .uid(StepUser::resolve(None)?.map_or(rustix::process::geteuid().as_raw(), |u| u.uid))
            .output()?;
        assert!(
            String::from_utf8_lossy(&unisolated.stdout).contains("r17-secret-token"),
            "without isolation the step's user can read the token"
        );

        let backend = LocalBackend::new(std::env::temp_dir(), data.clone())?;
        let instance = backend.start("p", 2, &InstanceSpec::default()).await?;
        let log_path = dir.path().join("step.log");
        let log = StepLog::create(&log_path, vec![])?;
        let command = Command {
            program: "sh".into(),
            args: vec!["-c".into(), read_token],
            env: vec![],
        };
        instance.exec(&command, &log).await?;
        instance.stop().await;
        let printed = std::fs::read_to_string(&log_path)?;
        assert!(!printed.contains("r17-secret-token"), "{printed}");
        assert_eq!(printed.matches("Permission denied").count(), 2, "{printed}");
        let uid = printed.lines().find_map(|l| l.trim().parse::<u32>().ok());
        let uid = uid.expect("the step printed its uid");
        assert_ne!(uid, 0, "a step never runs as root: {printed}");
        Ok(())
    }

    #[tokio::test]
    async fn a_step_runs_a_program_in_a_directory_its_user_cannot_enter() -> anyhow::Result<()> {
        let private = tempfile::tempdir()?;
        let program = private.path().join("echo");
        std::fs::copy("/bin/echo", &program)?;
        std::fs::create_dir(private.path().join("data"))?;
        let backend = LocalBackend::new(std::env::temp_dir(), private.path().join("data"))?;
        let instance = backend.start("p", 3, &InstanceSpec::default()).await?;
        let log_path = private.path().join("step.log");
        let log = StepLog::create(&log_path, vec![])?;
        let command = Command {
            program,
            args: vec!["reached".into()],
            env: vec![],
        };
        let succeeded = instance.exec(&command, &log).await;
        instance.stop().await;
        assert!(succeeded?, "{}", std::fs::read_to_string(&log_path)?);
        assert_eq!(std::fs::read_to_string(&log_path)?.trim(), "reached");
        Ok(())
    }
}
