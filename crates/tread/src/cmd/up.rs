//! `tread up`: the store, the endpoints with the management API and
//! metrics, and the pipeline scheduler, in one process.

use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tread_catalog::Lease;
use tread_data::S3Access;
use tread_pipeline::{
    Backends, Catalog, DaemonAddress, Identities, LocalBackend, PipelineMetrics, Pipelines, Runner,
    RunnerSettings,
};
use tread_serve::{ApiToken, ServeOptions, Server};
use tread_store::catalog::Catalog as StoreCatalog;
use tread_store::{NasStore, S3Server, ServerOptions, StoreOptions};
use tread_store_api::{API_USER, DAEMON_USER, StoreApi};

use crate::cmd::serve::BatchingArgs;

/// `tread up`'s default address of the API, the endpoints and /metrics.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `tread up`'s default address of the S3 server.
pub const DEFAULT_S3_LISTEN: &str = "127.0.0.1:9000";

/// Options of `tread up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address of the API, the endpoints and /metrics.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Address of the S3 server.
    #[arg(long, default_value = DEFAULT_S3_LISTEN)]
    pub s3_listen: SocketAddr,
    /// The S3 URL pipeline steps are given (`AWS_ENDPOINT_URL`); by default
    /// the S3 server's own address. Give one a cluster's nodes reach when
    /// runs go to Slurm, e.g. http://head.internal:9000.
    #[arg(long)]
    pub step_s3_url: Option<String>,
    #[command(flatten)]
    pub batching: BatchingArgs,
    /// Answer inference without the token even when listening beyond
    /// loopback: /endpoints/…/invocations, /v2/…, /ping and /metrics (model
    /// versions, URIs, request counts and pipeline runs) are then open to
    /// anyone who can reach the address.
    #[arg(long)]
    pub public_inference: bool,
}

/// A started `tread up`: S3 serving, the API bound but not yet answering.
pub struct Daemon {
    s3: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
    _lock: std::fs::File,
    /// Removed when the daemon stops cleanly (dropped at the end of `run`).
    _address: tread_pipeline::address::PublishedAddress,
    api: Server,
    pipelines: Arc<Pipelines>,
    /// The scheduler's lease among daemons sharing the catalog.
    lease: Lease,
    /// The S3 endpoint's URL.
    pub s3_url: String,
    /// The API's URL.
    pub api_url: String,
}

impl Daemon {
    /// Opens the data dir, starts serving S3 (endpoints restore their
    /// models from it) and binds the API; runs that were in flight when
    /// tread last stopped are failed and their instances stopped. Everything
    /// stops when `shutdown` is cancelled.
    pub async fn start(
        data_dir: &Path,
        args: &UpArgs,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        // Absolute, because instances' processes are found by their working
        // directory, which /proc reports absolute.
        let data_dir = &data_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", data_dir.display()))?;
        let lock = lock_data_dir(data_dir)?;
        tread_pipeline::isolation::protect_daemon()
            .context("making tread up non-dumpable, so that steps cannot read it")?;
        let db = super::open_database(data_dir).await?;
        let catalog = StoreCatalog::new(db.clone(), data_dir)
            .await
            .with_context(|| format!("opening the store's tables for {}", data_dir.display()))?;
        let store = NasStore::open(catalog, StoreOptions::default())
            .await
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        store.spawn_background_tasks();
        let s3 = S3Server::bind(
            store.clone(),
            &ServerOptions {
                listen: args.s3_listen,
                ..ServerOptions::default()
            },
        )
        .await?;
        let s3_url = s3.url();
        let daemon_access = own_access(store.catalog(), &s3_url, DAEMON_USER, "ReadOnlyAccess");
        tread_data::use_process_access(daemon_access.await?);
        let api_access = own_access(store.catalog(), &s3_url, API_USER, "FullAccess").await?;
        store.reload().await?;
        let s3_stop = shutdown.clone();
        let s3 = tokio::spawn(s3.run(async move { s3_stop.cancelled().await }));
        let metrics = Arc::new(PipelineMetrics::default());
        let registry = Arc::new(tread_serve::metrics::Metrics::with_host(|r| {
            metrics.register(r)
        }));
        let mut api = Server::bind_with_metrics(
            &ServeOptions {
                listen: args.listen,
                database: db.clone(),
                data_dir: data_dir.to_path_buf(),
                batch: args.batching.options(),
                public_inference: args.public_inference,
            },
            registry,
        )
        .await?;
        let catalog = Arc::new(
            Catalog::new(db)
                .await
                .context("opening the pipeline tables")?,
        );
        let runner = Arc::new(Runner::new(
            catalog.clone(),
            api.endpoints(),
            Backends::new(LocalBackend::new(
                std::env::temp_dir(),
                data_dir.to_path_buf(),
            )?),
            RunnerSettings {
                program: std::env::current_exe().context("finding the tread binary")?,
                s3_endpoint: Some(args.step_s3_url.clone().unwrap_or_else(|| s3_url.clone())),
                runs_dir: data_dir.join("runs"),
                metrics,
            },
        ));
        let daemon = tread_pipeline::daemon_name(data_dir);
        let lease = Lease::new(
            catalog.database().clone(),
            "pipeline-scheduler",
            &daemon,
            tread_pipeline::SCHEDULER_LEASE_TERM,
        );
        let pipelines = Pipelines::new(
            catalog,
            runner,
            Some(Identities::new(store.clone())),
            Some(s3_url.clone()),
            &daemon,
        );
        pipelines.recover().await?;
        let store_api = StoreApi::new(store.clone(), api_access);
        api.mount_management(
            tread_pipeline::http::router(pipelines.clone())
                .merge(tread_store_api::router(store_api)),
        );
        api.mount_front(Box::new(tread_console::router));
        let api_url = format!("http://{}", api.local_addr()?);
        let address = DaemonAddress {
            api: api_url.clone(),
            s3: s3_url.clone(),
            pid: std::process::id(),
        }
        .publish(data_dir)
        .with_context(|| format!("recording the daemon's address in {}", data_dir.display()))?;
        Ok(Self {
            s3,
            shutdown,
            _lock: lock,
            _address: address,
            api,
            pipelines,
            lease,
            s3_url,
            api_url,
        })
    }

    /// The pipeline service, for a host that drives it in-process (`tread demo`).
    pub fn pipelines(&self) -> Arc<Pipelines> {
        self.pipelines.clone()
    }

    /// Serves the API and runs the scheduler until the shutdown token is
    /// cancelled; then cancels the runs in flight, so that every instance
    /// is stopped before the process ends.
    pub async fn run(self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let scheduler = tokio::spawn(
            self.pipelines
                .clone()
                .run_scheduler(self.lease, shutdown.clone()),
        );
        let api_stop = shutdown.clone();
        let served = self
            .api
            .run(async move { api_stop.cancelled().await })
            .await;
        shutdown.cancel();
        self.pipelines.stop_all().await;
        let _ = tokio::join!(self.s3, scheduler);
        Ok(served?)
    }
}

/// One daemon per data dir: a second would fail the first one's runs as
/// "in flight" and change its S3 keys under it.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("tread-up.lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another tread up or tread demo is using {}: stop it first, or use another --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The keys of one of `tread up`'s own users, which belongs to a group of
/// its name with `policy`: made on first start, then kept, as every daemon
/// sharing the catalog uses them. `tread-daemon` (read-only) fetches models
/// for endpoints; [`API_USER`] (full access) acts on objects for the API.
async fn own_access(
    store: &StoreCatalog,
    s3_url: &str,
    user: &str,
    policy: &str,
) -> anyhow::Result<S3Access> {
    let keys = store
        .ensure_member(
            user,
            user,
            &[policy.to_string()],
            tread_store::catalog::KeepKeys::Any,
        )
        .await?
        .keys;
    Ok(S3Access {
        endpoint: s3_url.to_string(),
        access_key_id: keys.access_key_id,
        secret_access_key: keys.secret_access_key,
    })
}

/// Runs `tread up` until Ctrl-C or SIGTERM.
pub fn up(data_dir: &Path, args: UpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let daemon = Daemon::start(data_dir, &args, shutdown.clone()).await?;
        tracing::info!(
            s3 = %daemon.s3_url,
            api = %daemon.api_url,
            token = %ApiToken::path(data_dir).display(),
            data_dir = %data_dir.display(),
            "tread up: S3, endpoints, API, metrics and the scheduler are running"
        );
        tokio::spawn(async move {
            crate::cmd::s3::shutdown_signal().await;
            shutdown.cancel();
        });
        daemon.run().await
    })
}
