//! 4 KiB GET and PUT operations per second with concurrent clients.
//!
//! tread: `clients` tokio tasks sharing one aws-sdk-s3 client, signed as
//! usual (the SDK hashes each PUT body for SigV4 and adds its default CRC32),
//! each cycling over its own [`KEYS_PER_CLIENT`] keys for a fixed time.
//! Raw: `clients` threads on the same kind of key set as files: a PUT is
//! open(O_CREAT|O_TRUNC) + write 4 KiB + MD5 + fsync + close; a GET is
//! open + read + close from the page cache. For information: tread through
//! reqwest and presigned URLs (the client nginx gets), and nginx's GETs.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use md5::{Digest, Md5};
use tokio::task::JoinSet;

use crate::Bench;
use crate::measure::{Figure, Span, pattern};
use crate::throughput::{
    Presigned, http_get, http_put, presign_get, presign_put, raw_write_atomic,
};

/// Object size.
pub const SIZE: usize = 4096;
/// Keys each client cycles over.
pub const KEYS_PER_CLIENT: usize = 32;
/// Untimed run before each timed one.
const WARM_UP: Duration = Duration::from_secs(1);

/// Figures in operations per second.
#[derive(Debug, Default)]
pub struct SmallResults {
    /// tread PUT with aws-sdk-s3.
    pub put_tread: Figure,
    /// Raw write + MD5 + fsync.
    pub put_raw: Figure,
    /// Raw PUT with tread's durability recipe, for information.
    pub put_raw_atomic: Figure,
    /// tread GET with aws-sdk-s3.
    pub get_tread: Figure,
    /// Raw open + read + close.
    pub get_raw: Figure,
    /// nginx GET with reqwest, for information.
    pub get_nginx: Option<Figure>,
    /// tread PUT with reqwest and presigned URLs (no client-side hashing), for information.
    pub put_tread_presigned: Figure,
    /// tread GET with reqwest and presigned URLs, for information.
    pub get_tread_presigned: Figure,
}

fn key(client: usize, i: usize) -> String {
    format!("small/c{client:02}/k{:02}", i % KEYS_PER_CLIENT)
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
    /// Raw only: a PUT with tread's durability recipe.
    PutAtomic,
}

/// Who the HTTP clients talk to, and how.
#[derive(Clone)]
enum Client {
    /// tread through aws-sdk-s3, signed as usual.
    Sdk(aws_sdk_s3::Client, String),
    /// tread through reqwest and presigned URLs: per client, per key, (PUT, GET).
    Presigned(reqwest::Client, Arc<Vec<Vec<(Presigned, Presigned)>>>),
    /// nginx through reqwest: the base URL.
    Nginx(reqwest::Client, String),
}

impl Client {
    async fn call(&self, op: Op, c: usize, i: usize, body: &Bytes) -> anyhow::Result<()> {
        let k = key(c, i);
        match (self, op) {
            (Client::Sdk(s3, bucket), Op::Put) => {
                s3.put_object()
                    .bucket(bucket)
                    .key(&k)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await
                    .with_context(|| format!("PUT {k}"))?;
            }
            (Client::Sdk(s3, bucket), Op::Get) => {
                let out = s3
                    .get_object()
                    .bucket(bucket)
                    .key(&k)
                    .send()
                    .await
                    .with_context(|| format!("GET {k}"))?;
                let got = out.body.collect().await?.into_bytes().len();
                ensure!(got == SIZE, "GET {k}: {got} bytes");
            }
            (Client::Presigned(http, urls), Op::Put) => {
                http_put(http, &urls[c][i % KEYS_PER_CLIENT].0, body.clone()).await?;
            }
            (Client::Presigned(http, urls), Op::Get) => {
                http_get(http, &urls[c][i % KEYS_PER_CLIENT].1.uri, SIZE).await?;
            }
            (Client::Nginx(http, base), Op::Get) => {
                http_get(http, &format!("{base}/{k}"), SIZE).await?;
            }
            (Client::Nginx(..), Op::Put) => bail!("nginx takes no PUT"),
            (_, Op::PutAtomic) => bail!("the durability recipe is a raw baseline"),
        }
        Ok(())
    }
}

/// Runs `b.clients` tasks doing `op` through `client` until `run` has
/// passed; returns the operations done and the usage span, charged to `server`.
async fn http_ops(
    b: &Bench,
    client: &Client,
    server: Option<u32>,
    op: Op,
    run: Duration,
    body: &Bytes,
) -> anyhow::Result<(u64, Span)> {
    let span = Span::start(server);
    let deadline = Instant::now() + run;
    let mut tasks = JoinSet::new();
    for c in 0..b.clients {
        let (client, body) = (client.clone(), body.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                client.call(op, c, n as usize, &body).await?;
                n += 1;
            }
            anyhow::Ok(n)
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done??;
    }
    Ok((total, span))
}

fn raw_put(path: &Path, body: &[u8]) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let digest = Md5::digest(body);
    std::hint::black_box(digest);
    f.write_all(body)?;
    f.sync_all()?;
    Ok(())
}

/// Runs `clients` threads doing `op` on raw files until `run` has passed.
fn raw_ops(dir: &Path, clients: usize, op: Op, run: Duration, body: &[u8]) -> anyhow::Result<u64> {
    let deadline = Instant::now() + run;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let path = dir.join(key(c, n as usize));
                        match op {
                            Op::Put => raw_put(&path, body)?,
                            Op::PutAtomic => raw_write_atomic(
                                &dir.join(".tmp"),
                                &format!("c{c}-{n}"),
                                &path,
                                body,
                            )?,
                            Op::Get => {
                                let got = fs::read(&path)
                                    .with_context(|| format!("reading {}", path.display()))?
                                    .len();
                                ensure!(got == SIZE, "{}: {got} bytes", path.display());
                            }
                        }
                        n += 1;
                    }
                    anyhow::Ok(n)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| anyhow::anyhow!("a raw client thread panicked"))??;
        }
        Ok(total)
    })
}

async fn raw_timed(
    dir: &Arc<PathBuf>,
    clients: usize,
    op: Op,
    run: Duration,
    body: &Bytes,
) -> anyhow::Result<(u64, Span)> {
    let (d, body) = (Arc::clone(dir), body.clone());
    let span = Span::start(None);
    let n = tokio::task::spawn_blocking(move || raw_ops(&d, clients, op, run, &body)).await??;
    Ok((n, span))
}

fn push(fig: &mut Figure, (n, span): (u64, Span)) {
    let u = span.stop();
    fig.push(n as f64 / u.wall, u);
}

/// One round: 4 KiB PUT then GET, each side one timed run after its warm-up.
async fn round(
    b: &Bench,
    r: &mut SmallResults,
    [sdk, presigned]: [&Client; 2],
    raw_dir: &Arc<PathBuf>,
    body: &Bytes,
) -> anyhow::Result<()> {
    let t = b.tread_pid;
    http_ops(b, sdk, t, Op::Put, WARM_UP, body).await?;
    raw_timed(raw_dir, b.clients, Op::Put, WARM_UP, body).await?;
    // The floor's two sides run back to back, so that the disk's drift
    // (its rate swings by 2x within minutes on shared VMs) hits both alike.
    push(
        &mut r.put_tread,
        http_ops(b, sdk, t, Op::Put, b.small_run, body).await?,
    );
    push(
        &mut r.put_raw_atomic,
        raw_timed(raw_dir, b.clients, Op::PutAtomic, b.small_run, body).await?,
    );
    push(
        &mut r.put_raw,
        raw_timed(raw_dir, b.clients, Op::Put, b.small_run, body).await?,
    );
    push(
        &mut r.put_tread_presigned,
        http_ops(b, presigned, t, Op::Put, b.small_run, body).await?,
    );

    http_ops(b, sdk, t, Op::Get, WARM_UP, body).await?;
    raw_timed(raw_dir, b.clients, Op::Get, WARM_UP, body).await?;
    push(
        &mut r.get_tread,
        http_ops(b, sdk, t, Op::Get, b.small_run, body).await?,
    );
    push(
        &mut r.get_raw,
        raw_timed(raw_dir, b.clients, Op::Get, b.small_run, body).await?,
    );
    push(
        &mut r.get_tread_presigned,
        http_ops(b, presigned, t, Op::Get, b.small_run, body).await?,
    );
    if let (Some(base), Some(fig)) = (&b.nginx, r.get_nginx.as_mut()) {
        let nginx = Client::Nginx(b.http.clone(), base.clone());
        http_ops(b, &nginx, b.nginx_pid, Op::Get, WARM_UP, body).await?;
        push(
            fig,
            http_ops(b, &nginx, b.nginx_pid, Op::Get, b.small_run, body).await?,
        );
    }
    Ok(())
}

/// Measures 4 KiB PUT then GET, tread and raw, in `b.small_rounds` rounds.
pub async fn run(b: &Bench) -> anyhow::Result<SmallResults> {
    let body = Bytes::from(pattern(SIZE, 4096));
    let mut r = SmallResults {
        get_nginx: b.nginx.as_ref().map(|_| Figure::default()),
        ..Default::default()
    };
    let raw_dir = Arc::new(b.raw_dir.clone());
    let sdk = Client::Sdk(b.s3.clone(), b.bucket.clone());
    let mut urls = Vec::with_capacity(b.clients);
    for c in 0..b.clients {
        let mut mine = Vec::with_capacity(KEYS_PER_CLIENT);
        for i in 0..KEYS_PER_CLIENT {
            let k = key(c, i);
            mine.push((presign_put(b, &k).await?, presign_get(b, &k).await?));
        }
        urls.push(mine);
        if let Some(parent) = raw_dir.join(key(c, 0)).parent() {
            fs::create_dir_all(parent)?;
        }
    }
    let presigned = Client::Presigned(b.http.clone(), Arc::new(urls));

    // Populate every key on both sides, then warm up.
    for c in 0..b.clients {
        for i in 0..KEYS_PER_CLIENT {
            sdk.call(Op::Put, c, i, &body).await?;
            raw_put(&raw_dir.join(key(c, i)), &body)?;
        }
    }
    fs::create_dir_all(raw_dir.join(".tmp"))?;
    for _ in 0..b.small_rounds {
        round(b, &mut r, [&sdk, &presigned], &raw_dir, &body).await?;
    }
    Ok(r)
}
