//! Running the `tread` binary against a temp data dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

/// The catalog of each data dir whose `tread` does not use the data dir's
/// own SQLite file: a world's on a PostgreSQL test run, and the data dirs of
/// daemons sharing a world's catalog.
static CATALOGS: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

/// The binary under test, on the catalog registered for `data_dir`.
pub fn tread(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tread"));
    cmd.env("TREAD_DATA_DIR", data_dir)
        .env("TREAD_LOG", "warn")
        .env_remove("TREAD_DATABASE_URL");
    let catalogs = CATALOGS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(url) = catalogs.get(data_dir) {
        cmd.env("TREAD_DATABASE_URL", url);
    }
    cmd
}

/// Runs `tread args…`, asserting success; returns stdout.
pub fn run_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = tread(data_dir).args(args).output().expect("run tread");
    assert!(
        out.status.success(),
        "tread {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `cmd args…` (a prepared `tread`), asserting success; returns stdout.
pub fn ok(mut cmd: Command, args: &[&str]) -> String {
    let out = cmd.args(args).output().expect("run tread");
    assert!(
        out.status.success(),
        "tread {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tread args…`, asserting failure; returns stderr.
pub fn run_err(data_dir: &Path, args: &[&str]) -> String {
    let out = tread(data_dir).args(args).output().expect("run tread");
    assert!(!out.status.success(), "tread {args:?} should have failed");
    String::from_utf8(out.stderr).expect("utf-8 output")
}

/// A data dir with the recipe's world: volume vol1, bucket fsxn-ontap, s3user in s3group (FullAccess).
pub struct World {
    /// Kept alive for the test.
    pub dir: tempfile::TempDir,
    /// Data dir.
    pub data: PathBuf,
    /// Volume root.
    pub volume: PathBuf,
    /// s3user's access key id.
    pub key_id: String,
    /// s3user's secret.
    pub secret: String,
    /// The catalog: the data dir's SQLite file, or (TREAD_TEST_DATABASE_URL
    /// set) a PostgreSQL schema of its own.
    pub catalog: tread_catalog::testing::TestDb,
}

impl World {
    /// Creates the world with the CLI. Its directory is open to every user,
    /// as a home directory is, so that only tread's isolation keeps steps
    /// (which run as `nobody` under root) out of the data dir in it.
    pub fn create() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the world");
        let data = dir.path().join("data");
        let volume = dir.path().join("vol1");
        let catalog = tread_catalog::testing::TestDb::new(&data);
        if let Some(url) = catalog.url() {
            register_catalog(&data, url);
        }
        run_ok(
            &data,
            &[
                "s3",
                "volume",
                "create",
                "vol1",
                "--path",
                volume.to_str().expect("utf-8"),
            ],
        );
        run_ok(
            &data,
            &["s3", "bucket", "create", "fsxn-ontap", "--volume", "vol1"],
        );
        let keys: serde_json::Value = serde_json::from_str(&run_ok(
            &data,
            &["s3", "user", "create", "s3user", "--json"],
        ))
        .expect("json");
        run_ok(
            &data,
            &[
                "s3",
                "group",
                "create",
                "s3group",
                "--users",
                "s3user",
                "--policy",
                "FullAccess",
            ],
        );
        let field = |k: &str| keys[k].as_str().expect("key field").to_string();
        Self {
            key_id: field("access_key_id"),
            secret: field("secret_access_key"),
            data,
            volume,
            dir,
            catalog,
        }
    }

    /// A data dir of its own for another daemon or gateway, on this world's
    /// catalog (and so its volumes, buckets and users).
    pub fn shared_data_dir(&self, name: &str) -> PathBuf {
        let data = self.dir.path().join(name);
        register_catalog(&data, self.catalog.shared_url());
        data
    }

    /// A directory every step may write to, for what a test's steps leave.
    pub fn step_dir(&self) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir.path().join("steps");
        std::fs::create_dir_all(&dir).expect("create the steps' directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))
            .expect("chmod the steps' directory");
        dir
    }

    /// `tread` as s3user against the store at `url`, with nothing from the
    /// developer's own AWS setup leaking in.
    pub fn tread_as_s3user(&self, url: &str) -> Command {
        let mut cmd = tread(&self.data);
        cmd.env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-aws-credentials"),
            )
            .env("AWS_ENDPOINT_URL", url)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_REGION", "us-east-1");
        cmd
    }

    /// A client for s3user against `url`.
    pub fn client(&self, url: &str) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &self.key_id,
                &self.secret,
                None,
                None,
                "test",
            ))
            .build();
        Client::from_conf(config)
    }
}

fn register_catalog(data_dir: &Path, url: String) {
    CATALOGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(data_dir.to_path_buf(), url);
}

/// A `tread s3 serve` child process; killed when dropped.
pub struct Server {
    /// The child.
    pub child: Child,
    /// Its URL.
    pub url: String,
}

impl Server {
    /// Starts `tread s3 serve` on a free port and waits until it answers.
    pub fn start(data: &Path) -> Self {
        Self::spawn(tread(data).args(["s3", "serve"]))
    }

    /// Starts `command --listen <free port>` and waits until it answers.
    /// A port free when free_port looked can be taken before the server
    /// binds it (other tests bind port 0 all the time): then again, on a
    /// new port, up to three times.
    pub fn spawn(command: &mut Command) -> Self {
        for _ in 0..3 {
            if let Some(server) = Self::try_spawn(command) {
                return server;
            }
        }
        panic!("{command:?} lost its port to another process three times over");
    }

    /// [`Server::spawn`] once: `None` if the server found its port taken;
    /// any other early end fails the test with what the server said.
    fn try_spawn(template: &Command) -> Option<Self> {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = tempfile::tempfile().expect("a log file");
        let mut child = copy_of(template)
            .args(["--listen", &listen])
            .stdout(Stdio::null())
            .stderr(log.try_clone().expect("the log file"))
            .spawn()
            .expect("spawn server");
        let what = format!("{template:?}");
        let started = wait_started(&mut child, &[port], Duration::from_secs(20), &what, || {
            read_all(&log)
        });
        started.then(|| Self {
            child,
            url: format!("http://{listen}"),
        })
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new command with `template`'s program, arguments, environment
/// changes and directory (a `Command` cannot be cloned).
fn copy_of(template: &Command) -> Command {
    let mut copy = Command::new(template.get_program());
    copy.args(template.get_args());
    for (name, value) in template.get_envs() {
        match value {
            Some(value) => copy.env(name, value),
            None => copy.env_remove(name),
        };
    }
    if let Some(dir) = template.get_current_dir() {
        copy.current_dir(dir);
    }
    copy
}

/// Waits until `child` accepts connections on each loopback port of
/// `ports`. `false` if it ended because another process had taken one (its
/// log, from `said`, names "Address already in use"): a port free when
/// free_port looked can be taken before the child binds it. Any other end
/// before listening, or `within` passing, fails the test with what it said.
pub fn wait_started(
    child: &mut Child,
    ports: &[u16],
    within: Duration,
    what: &str,
    said: impl Fn() -> String,
) -> bool {
    let deadline = Instant::now() + within;
    for &port in ports {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let said = said();
                if said.contains("Address already in use") {
                    return false;
                }
                panic!("{what} ended ({status}) before listening on {port}:\n{said}");
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    true
}

/// Everything written to `file` so far.
fn read_all(mut file: &std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.rewind()
        .and_then(|()| file.read_to_string(&mut text))
        .map_or_else(|e| format!("(the log could not be read: {e})"), |_| text)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something accepts connections on loopback `port`.
pub fn wait_listening(port: u16, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `work` to its end on a runtime of its own: HTTP and SDK calls from
/// a plain test thread.
pub fn block_on<F: Future>(work: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(work)
}

/// Packs an untrained resnet-small with `classes` and input side `size` as
/// `dir/<version>/model.tar.gz`; returns its path.
pub fn pack_model(dir: &Path, version: &str, classes: &[&str], size: u32) -> String {
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let mut network = tread_nn::Network::new(
        tread_nn::Architecture::ResnetSmall,
        classes.len(),
        size as usize,
        1,
    )
    .expect("a network");
    let input = tread_data::Preprocess {
        size,
        ..Default::default()
    };
    let mut card = tread_train::ModelCard::untrained(&mut network, &classes, input, version);
    let bytes = tread_train::pack(&mut card, &mut network).expect("pack");
    let path = dir.join(version).join("model.tar.gz");
    std::fs::create_dir_all(dir.join(version)).expect("model dir");
    std::fs::write(&path, bytes).expect("write model");
    path.to_string_lossy().into_owned()
}
