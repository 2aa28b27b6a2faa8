//! Receiving a request body into a temp file beside the bucket: the network
//! side runs on the async runtime, hashing and writing on a blocking thread,
//! so the two overlap.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::TrailingHeaders;
use s3s::dto::StreamingBlob;
use tokio::sync::mpsc;

use crate::atomic::AtomicFile;
use crate::checksum::ExpectedDigests;
use crate::error::{IoContext, StoreError};

/// Chunks in flight between the network and the writer thread.
const CHANNEL_DEPTH: usize = 16;
/// Write buffer of the writer thread: large writes keep syscalls few.
const WRITE_BUFFER: usize = 1 << 20;

/// A body written to a temp file and verified, not yet committed.
#[derive(Debug)]
pub struct ReceivedBody {
    /// The temp file holding the bytes.
    pub file: AtomicFile,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// Number of bytes.
    pub size: u64,
    /// Checksums computed and verified (algorithm → base64).
    pub checksums: BTreeMap<String, String>,
}

/// What is known of a body once its file is committed.
#[derive(Debug)]
pub struct BodySummary {
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// Number of bytes.
    pub size: u64,
    /// Checksums computed and verified (algorithm → base64).
    pub checksums: BTreeMap<String, String>,
}

impl ReceivedBody {
    /// The body's digests and size, to answer the client after the file is committed.
    pub fn summary(&self) -> BodySummary {
        BodySummary {
            md5: self.md5,
            size: self.size,
            checksums: self.checksums.clone(),
        }
    }
}

/// Streams `body` into a temp file in `tmp_dir`, verifying the declared length
/// and digests. On any error the temp file is gone.
pub async fn receive(
    tmp_dir: &Path,
    body: Option<StreamingBlob>,
    declared_len: Option<i64>,
    expected: &ExpectedDigests,
    trailers: Option<&TrailingHeaders>,
) -> Result<ReceivedBody, StoreError> {
    let file = AtomicFile::new_in(tmp_dir)
        .io_context(|| format!("creating a temp file in {}", tmp_dir.display()))?;
    // Hashing (MD5 is the slowest step) and writing run on two threads, so a
    // large upload uses both while the runtime receives the next chunks.
    let (to_writer, from_net) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (to_hasher, for_hash) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = tokio::task::spawn_blocking(move || write_all(file, from_net));
    let hasher = expected.hasher();
    let hashing = tokio::task::spawn_blocking(move || hash_all(for_hash, hasher));

    let received = forward(body, &to_writer, &to_hasher).await;
    drop((to_writer, to_hasher));
    let stopped = |e: tokio::task::JoinError| StoreError::Io {
        context: "an upload thread stopped".into(),
        source: std::io::Error::other(e),
    };
    let written = writer.await.map_err(stopped)?;
    let (md5, size, computed) = hashing.await.map_err(stopped)?;
    received?;
    finish(
        written?,
        (md5, size, computed),
        declared_len,
        expected,
        trailers,
    )
}

/// Checks the declared length and the digests of a fully written body.
fn finish(
    file: AtomicFile,
    (md5, size, computed): Hashed,
    declared_len: Option<i64>,
    expected: &ExpectedDigests,
    trailers: Option<&TrailingHeaders>,
) -> Result<ReceivedBody, StoreError> {
    if let Some(expected_len) = declared_len
        && u64::try_from(expected_len).ok() != Some(size)
    {
        return Err(StoreError::IncompleteBody {
            expected: u64::try_from(expected_len).unwrap_or(0),
            got: size,
        });
    }
    let checksums = expected.verify(&md5, computed, trailers)?;
    Ok(ReceivedBody {
        file,
        md5,
        size,
        checksums,
    })
}

/// Bodies declared up to this size are gathered in memory and stored in one
/// blocking step, which saves small PUTs the thread hand-offs of streaming.
pub const IN_MEMORY_LIMIT: i64 = 1 << 20;

/// Reads a small body into memory, refusing one that grows past `IN_MEMORY_LIMIT`.
pub async fn gather(body: Option<StreamingBlob>) -> Result<Vec<Bytes>, StoreError> {
    let mut chunks = Vec::new();
    let mut total = 0usize;
    let Some(mut body) = body else {
        return Ok(chunks);
    };
    while let Some(chunk) = body.next().await {
        let bytes = chunk
            .map_err(|e| StoreError::InvalidArgument(format!("reading the request body: {e}")))?;
        total += bytes.len();
        if total > usize::try_from(IN_MEMORY_LIMIT).unwrap_or(usize::MAX) {
            return Err(StoreError::InvalidArgument(
                "the body is longer than its Content-Length".into(),
            ));
        }
        chunks.push(bytes);
    }
    Ok(chunks)
}

/// Writes a gathered body to a temp file in `tmp_dir` and verifies it (blocking).
pub fn write_gathered(
    tmp_dir: &Path,
    chunks: &[Bytes],
    declared_len: Option<i64>,
    expected: &ExpectedDigests,
    trailers: Option<&TrailingHeaders>,
) -> Result<ReceivedBody, StoreError> {
    let mut file = AtomicFile::new_in(tmp_dir)
        .io_context(|| format!("creating a temp file in {}", tmp_dir.display()))?;
    let mut md5 = Md5::new();
    let mut hasher = expected.hasher();
    let mut size = 0u64;
    for chunk in chunks {
        md5.update(chunk);
        hasher.update(chunk);
        size += chunk.len() as u64;
        file.write_all(chunk)
            .io_context(|| "writing an upload to its temp file".into())?;
    }
    finish(
        file,
        (md5.finalize().into(), size, hasher.finalize()),
        declared_len,
        expected,
        trailers,
    )
}

/// Hands each chunk of `body` to the writer and the hasher.
async fn forward(
    body: Option<StreamingBlob>,
    to_writer: &mpsc::Sender<Bytes>,
    to_hasher: &mpsc::Sender<Bytes>,
) -> Result<(), StoreError> {
    let Some(mut body) = body else { return Ok(()) };
    while let Some(chunk) = body.next().await {
        let bytes = chunk
            .map_err(|e| StoreError::InvalidArgument(format!("reading the request body: {e}")))?;
        // A closed channel means its thread failed; that error is reported by the caller.
        if to_hasher.send(bytes.clone()).await.is_err() || to_writer.send(bytes).await.is_err() {
            break;
        }
    }
    Ok(())
}

fn write_all(
    mut file: AtomicFile,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<AtomicFile, StoreError> {
    {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file.file());
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)
                .io_context(|| "writing an upload to its temp file".into())?;
        }
        out.flush()
            .io_context(|| "writing an upload to its temp file".into())?;
    }
    Ok(file)
}

/// MD5, size and the requested checksums of a body.
type Hashed = ([u8; 16], u64, s3s::dto::Checksum);

fn hash_all(mut rx: mpsc::Receiver<Bytes>, mut hasher: s3s::checksum::ChecksumHasher) -> Hashed {
    let mut md5 = Md5::new();
    let mut size = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        md5.update(&chunk);
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    (md5.finalize().into(), size, hasher.finalize())
}
