//! GET and PUT throughput of one object size: tread (presigned URLs through
//! reqwest, and aws-sdk-s3 GET for information), nginx through the same
//! reqwest client, and the raw file system in this process.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use bytes::Bytes;
use md5::{Digest, Md5};

use crate::Bench;
use crate::measure::{Figure, Span, mb_per_s, pattern};

/// Buffer of the raw read, and chunk of the raw write.
const RAW_BUFFER: usize = 1 << 20;

/// Figures for one object size, each in MB/s (10^6 bytes per second).
#[derive(Debug, Default)]
pub struct SizeResults {
    /// Object size in bytes.
    pub size: usize,
    /// Objects transferred back to back per sample.
    pub ops_per_sample: usize,
    /// PUT to tread through a presigned URL.
    pub put_tread: Figure,
    /// Raw write + fsync + MD5 of the same bytes to a new file.
    pub put_raw: Figure,
    /// Raw write with tread's durability recipe (temp file in a shared
    /// directory, MD5, fsync, rename over the object, fsync its directory), for information.
    pub put_raw_atomic: Figure,
    /// GET from tread through a presigned URL.
    pub get_tread: Figure,
    /// GET from tread with aws-sdk-s3 (signed, streamed), for information.
    pub get_sdk: Figure,
    /// Raw read of the object's file from the page cache, 1 MiB buffer.
    pub get_raw: Figure,
    /// GET of the object's file from nginx (sendfile).
    pub get_nginx: Option<Figure>,
}

fn label(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        format!("{}KiB", size >> 10)
    }
}

/// A presigned request: the URL, and the headers that were signed with it.
#[derive(Debug, Clone)]
pub struct Presigned {
    /// The URL with the signature in its query.
    pub uri: String,
    /// Headers to send as they are.
    pub headers: Vec<(String, String)>,
}

impl From<PresignedRequest> for Presigned {
    fn from(p: PresignedRequest) -> Self {
        Self {
            uri: p.uri().to_string(),
            headers: p
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

fn presigning() -> anyhow::Result<PresigningConfig> {
    Ok(PresigningConfig::expires_in(Duration::from_secs(3600))?)
}

/// A presigned PutObject of `key`.
pub async fn presign_put(b: &Bench, key: &str) -> anyhow::Result<Presigned> {
    Ok(b.s3
        .put_object()
        .bucket(&b.bucket)
        .key(key)
        .presigned(presigning()?)
        .await?
        .into())
}

/// A presigned GetObject of `key`.
pub async fn presign_get(b: &Bench, key: &str) -> anyhow::Result<Presigned> {
    Ok(b.s3
        .get_object()
        .bucket(&b.bucket)
        .key(key)
        .presigned(presigning()?)
        .await?
        .into())
}

/// PUTs `body` to a presigned URL.
pub async fn http_put(http: &reqwest::Client, req: &Presigned, body: Bytes) -> anyhow::Result<()> {
    let mut r = http.put(&req.uri);
    for (name, value) in &req.headers {
        r = r.header(name, value);
    }
    let resp = r.body(body).send().await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("PUT {}: {status}: {text}", req.uri);
    }
    Ok(())
}

/// GETs `url`, reading the body chunk by chunk without keeping it; checks its length.
pub async fn http_get(http: &reqwest::Client, url: &str, size: usize) -> anyhow::Result<()> {
    let mut resp = http.get(url).send().await?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    let mut got = 0;
    while let Some(chunk) = resp.chunk().await? {
        got += chunk.len();
    }
    ensure!(got == size, "GET {url}: {got} bytes, expected {size}");
    Ok(())
}

async fn sdk_get(b: &Bench, key: &str, size: usize) -> anyhow::Result<()> {
    let mut body =
        b.s3.get_object()
            .bucket(&b.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("aws-sdk-s3 GET {key}"))?
            .body;
    let mut got = 0;
    while let Some(chunk) = body.next().await {
        got += chunk?.len();
    }
    ensure!(
        got == size,
        "aws-sdk-s3 GET {key}: {got} bytes, expected {size}"
    );
    Ok(())
}

/// Reads the whole file with a 1 MiB buffer; returns the bytes read.
fn raw_read(path: &Path, buf: &mut [u8]) -> anyhow::Result<usize> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut total = 0;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Writes `data` to a new file in 1 MiB writes, hashing each chunk with MD5
/// as it goes, then fsyncs it.
fn raw_write(path: &Path, data: &[u8]) -> anyhow::Result<[u8; 16]> {
    let mut f = File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
    let mut md5 = Md5::new();
    for chunk in data.chunks(RAW_BUFFER) {
        md5.update(chunk);
        f.write_all(chunk)?;
    }
    f.sync_all()?;
    Ok(md5.finalize().into())
}

/// Replaces `dest` the way tread stores an object: a new temp file in
/// `tmp_dir`, written in 1 MiB writes with MD5, fsynced, renamed over `dest`,
/// then `dest`'s directory fsynced. Not a baseline of the floors: it shows what
/// the durability recipe itself costs on this disk.
pub fn raw_write_atomic(
    tmp_dir: &Path,
    tmp_name: &str,
    dest: &Path,
    data: &[u8],
) -> anyhow::Result<()> {
    let tmp = tmp_dir.join(tmp_name);
    raw_write(&tmp, data)?;
    fs::rename(&tmp, dest).with_context(|| format!("renaming onto {}", dest.display()))?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Measures PUT then GET of `size`-byte objects, `ops_per_sample` objects per
/// sample, `b.reps` samples, interleaving tread, raw and nginx in each round
/// so drift over time hits them alike.
pub async fn run(b: &Bench, size: usize, ops_per_sample: usize) -> anyhow::Result<SizeResults> {
    let name = label(size);
    let data = Bytes::from(pattern(size, size as u64));
    let mut r = SizeResults {
        size,
        ops_per_sample,
        get_nginx: b.nginx.as_ref().map(|_| Figure::default()),
        ..Default::default()
    };
    let bytes_per_sample = size * ops_per_sample;

    // PUT: tread overwrites one key; raw writes new files, removed between rounds.
    let put = presign_put(b, &format!("bench/put-{name}")).await?;
    http_put(&b.http, &put, data.clone()).await?; // warm-up (connection, directories)
    let raw_paths: Vec<PathBuf> = (0..ops_per_sample)
        .map(|i| b.raw_dir.join(format!("put-{name}-{i}")))
        .collect();
    for _ in 0..b.reps {
        let span = Span::start(b.tread_pid);
        for _ in 0..ops_per_sample {
            http_put(&b.http, &put, data.clone()).await?;
        }
        let u = span.stop();
        r.put_tread.push(mb_per_s(bytes_per_sample, u.wall), u);

        for p in &raw_paths {
            let _ = fs::remove_file(p);
        }
        let (paths, d) = (raw_paths.clone(), data.clone());
        let span = Span::start(None);
        blocking(move || {
            for p in &paths {
                raw_write(p, &d)?;
            }
            Ok(())
        })
        .await?;
        let u = span.stop();
        r.put_raw.push(mb_per_s(bytes_per_sample, u.wall), u);

        let (dir, d, n) = (b.raw_dir.clone(), data.clone(), name.clone());
        let span = Span::start(None);
        blocking(move || {
            let tmp_dir = dir.join(".tmp");
            fs::create_dir_all(&tmp_dir)?;
            for i in 0..ops_per_sample {
                let dest = dir.join(format!("atomic-{n}-{i}"));
                raw_write_atomic(&tmp_dir, &format!("put-{n}-{i}"), &dest, &d)?;
            }
            Ok(())
        })
        .await?;
        let u = span.stop();
        r.put_raw_atomic.push(mb_per_s(bytes_per_sample, u.wall), u);
    }
    for p in &raw_paths {
        let _ = fs::remove_file(p);
    }

    // GET: one object, written through tread, read by everyone.
    let key = format!("bench/get-{name}");
    http_put(&b.http, &presign_put(b, &key).await?, data.clone()).await?;
    let get = presign_get(b, &key).await?;
    let file = b.volume.join(&key);
    let nginx_url = b.nginx.as_ref().map(|n| format!("{n}/{key}"));
    let raw_ops = move |file: PathBuf| {
        blocking(move || {
            let mut buf = vec![0u8; RAW_BUFFER];
            for _ in 0..ops_per_sample {
                let n = raw_read(&file, &mut buf)?;
                ensure!(n == size, "read {n} bytes of {}", file.display());
            }
            Ok(())
        })
    };
    // Warm-up: page cache, connections.
    http_get(&b.http, &get.uri, size).await?;
    sdk_get(b, &key, size).await?;
    raw_ops(file.clone()).await?;
    if let Some(url) = &nginx_url {
        http_get(&b.http, url, size).await?;
    }
    for _ in 0..b.reps {
        let span = Span::start(b.tread_pid);
        for _ in 0..ops_per_sample {
            http_get(&b.http, &get.uri, size).await?;
        }
        let u = span.stop();
        r.get_tread.push(mb_per_s(bytes_per_sample, u.wall), u);

        let span = Span::start(None);
        raw_ops(file.clone()).await?;
        let u = span.stop();
        r.get_raw.push(mb_per_s(bytes_per_sample, u.wall), u);

        if let (Some(url), Some(fig)) = (&nginx_url, r.get_nginx.as_mut()) {
            let span = Span::start(b.nginx_pid);
            for _ in 0..ops_per_sample {
                http_get(&b.http, url, size).await?;
            }
            let u = span.stop();
            fig.push(mb_per_s(bytes_per_sample, u.wall), u);
        }

        let span = Span::start(b.tread_pid);
        for _ in 0..ops_per_sample {
            sdk_get(b, &key, size).await?;
        }
        let u = span.stop();
        r.get_sdk.push(mb_per_s(bytes_per_sample, u.wall), u);
    }
    Ok(r)
}
