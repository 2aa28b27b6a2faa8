//! The store benchmark: tread's S3 server against the raw file system (and a
//! plain static file server, nginx) on the same disk, in one run.
//!
//! `bench/store.sh` sets up a data dir, starts `tread s3 serve` and nginx and
//! runs this program, which measures:
//!
//! - GET and PUT throughput of 1 MiB and 64 MiB objects: tread through
//!   presigned URLs with reqwest (so the client hashes nothing), nginx with the
//!   same reqwest client, and the raw file system in this process (a page-cache
//!   read with a 1 MiB buffer; write + fsync + MD5 of the same bytes);
//! - 4 KiB GET and PUT operations per second with 16 concurrent clients
//!   (aws-sdk-s3, signed as usual) against 16 threads on the raw file system;
//! - the time to LIST 10,000 keys under a prefix (ListObjectsV2, 1000 keys a
//!   page) against a recursive `read_dir` walk.
//!
//! It prints one table with the ratios and a verdict on each floor (issue 2's
//! large objects, issue 16's 4 KiB operations and listings), and writes every
//! sample as JSON.

mod listing;
mod measure;
mod report;
mod small_ops;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use clap::Parser;

/// Command-line options; `bench/store.sh` fills them in.
#[derive(Debug, Parser)]
#[command(name = "tread-bench-store", about)]
struct Args {
    /// tread's S3 endpoint.
    #[arg(long, default_value = "http://127.0.0.1:19000")]
    endpoint: String,
    /// Base URL of nginx serving the volume directory; no nginx column without it.
    #[arg(long)]
    nginx_url: Option<String>,
    /// The bucket (a NAS bucket over the whole volume directory).
    #[arg(long)]
    bucket: String,
    /// The volume directory, which is the bucket's root.
    #[arg(long)]
    volume: PathBuf,
    /// Scratch directory for the raw baselines, on the same file system as the volume.
    #[arg(long)]
    raw_dir: PathBuf,
    /// Access key id of a user with FullAccess.
    #[arg(long, env = "BENCH_ACCESS_KEY_ID")]
    access_key_id: String,
    /// Its secret access key.
    #[arg(long, env = "BENCH_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: String,
    /// Pid of the tread server, to report its CPU time.
    #[arg(long)]
    tread_pid: Option<u32>,
    /// Pid of the nginx master, to report its workers' CPU time.
    #[arg(long)]
    nginx_pid: Option<u32>,
    /// Samples per throughput figure (the median is reported).
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Seconds each 4 KiB operations run lasts.
    #[arg(long, default_value_t = 5.0)]
    small_secs: f64,
    /// Rounds of 4 KiB runs, each side once a round, interleaved (the
    /// median is reported): one run per side swung by ±10 % on shared VMs.
    #[arg(long, default_value_t = 3)]
    small_rounds: usize,
    /// Concurrent clients (tasks, or threads for the raw file system) for 4 KiB operations.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Keys to LIST.
    #[arg(long, default_value_t = 10_000)]
    list_keys: usize,
    /// Where to write every sample as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run one phase alone and print its samples as JSON (for profiling).
    #[arg(long, value_enum)]
    only: Option<Phase>,
}

/// The parts of the benchmark.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Phase {
    /// GET and PUT of 1 MiB objects.
    Mib1,
    /// GET and PUT of 64 MiB objects.
    Mib64,
    /// 4 KiB operations with concurrent clients.
    Small,
    /// LIST of many keys.
    List,
}

/// Objects per throughput sample: enough bytes that a sample takes tens of milliseconds.
const OPS_1MIB: usize = 32;
/// Objects per throughput sample for 64 MiB objects.
const OPS_64MIB: usize = 4;

/// What every phase needs: the clients, the directories and the knobs.
pub struct Bench {
    /// A signed aws-sdk-s3 client for tread.
    pub s3: aws_sdk_s3::Client,
    /// The plain HTTP client used for presigned URLs and for nginx.
    pub http: reqwest::Client,
    /// The bucket name.
    pub bucket: String,
    /// The bucket's root directory (the volume).
    pub volume: PathBuf,
    /// Scratch directory for raw writes.
    pub raw_dir: PathBuf,
    /// nginx base URL, if nginx is part of the run.
    pub nginx: Option<String>,
    /// tread server pid, for CPU accounting.
    pub tread_pid: Option<u32>,
    /// nginx master pid, for CPU accounting.
    pub nginx_pid: Option<u32>,
    /// Samples per throughput figure.
    pub reps: usize,
    /// Length of each 4 KiB operations run.
    pub small_run: Duration,
    /// Rounds of 4 KiB runs.
    pub small_rounds: usize,
    /// Concurrent clients for 4 KiB operations.
    pub clients: usize,
    /// Keys to LIST.
    pub list_keys: usize,
}

fn s3_client(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        // A failed request must fail the benchmark, not be retried unseen.
        .retry_config(RetryConfig::disabled())
        .credentials_provider(Credentials::new(id, secret, None, None, "bench"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Removes `raw_dir/.tmp`: the raw recipes create their temp files there
/// by name, and a run interrupted by hand (`--raw-dir` is kept between
/// runs) leaves names that the next run would fail to create.
fn empty_temp_dir(raw_dir: &std::path::Path) -> anyhow::Result<()> {
    let tmp = raw_dir.join(".tmp");
    match std::fs::remove_dir_all(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("emptying {}", tmp.display()))
        }
        _ => Ok(()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.reps == 0 || args.clients == 0 || args.small_rounds == 0 || args.small_secs <= 0.0 {
        bail!("--reps, --clients, --small-rounds and --small-secs must be positive");
    }
    std::fs::create_dir_all(&args.raw_dir)
        .with_context(|| format!("creating {}", args.raw_dir.display()))?;
    empty_temp_dir(&args.raw_dir)?;
    let bench = Bench {
        s3: s3_client(&args.endpoint, &args.access_key_id, &args.secret_access_key),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients.max(4))
            .build()
            .context("building the HTTP client")?,
        bucket: args.bucket,
        volume: args.volume,
        raw_dir: args.raw_dir,
        nginx: args.nginx_url.map(|u| u.trim_end_matches('/').to_string()),
        tread_pid: args.tread_pid,
        nginx_pid: args.nginx_pid,
        reps: args.reps,
        small_run: Duration::from_secs_f64(args.small_secs),
        small_rounds: args.small_rounds,
        clients: args.clients,
        list_keys: args.list_keys,
    };

    if let Some(phase) = args.only {
        let out = match phase {
            Phase::Mib1 => report::size_json(&throughput::run(&bench, 1 << 20, OPS_1MIB).await?),
            Phase::Mib64 => report::size_json(&throughput::run(&bench, 64 << 20, OPS_64MIB).await?),
            Phase::Small => report::small_json(&small_ops::run(&bench).await?),
            Phase::List => report::list_json(&listing::run(&bench).await?),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    eprintln!("[bench] PUT/GET 1 MiB");
    let mib1 = throughput::run(&bench, 1 << 20, OPS_1MIB).await?;
    eprintln!("[bench] PUT/GET 64 MiB");
    let mib64 = throughput::run(&bench, 64 << 20, OPS_64MIB).await?;
    eprintln!("[bench] 4 KiB operations, {} clients", bench.clients);
    let small = small_ops::run(&bench).await?;
    eprintln!("[bench] LIST {} keys", bench.list_keys);
    let list = listing::run(&bench).await?;

    let results = report::Results {
        mib1,
        mib64,
        small,
        list,
    };
    print!("{}", report::table(&bench, &results));
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&report::json(&bench, &results))?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
