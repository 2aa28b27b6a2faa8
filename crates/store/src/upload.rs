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
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let hasher = expected.hasher();
    let writer = tokio::task::spawn_blocking(move || write_all(file, rx, hasher));

    let mut send_result = Ok(());
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(bytes).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    send_result = Err(StoreError::InvalidArgument(format!(
                        "reading the request body: {e}"
                    )));
                    break;
                }
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| StoreError::Io {
        context: "the upload writer stopped".into(),
        source: std::io::Error::other(e),
    })?;
    send_result?;
    let (file, md5, size, computed) = written?;
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

type Written = (AtomicFile, [u8; 16], u64, s3s::dto::Checksum);

fn write_all(
    mut file: AtomicFile,
    mut rx: mpsc::Receiver<Bytes>,
    mut hasher: s3s::checksum::ChecksumHasher,
) -> Result<Written, StoreError> {
    let mut md5 = Md5::new();
    let mut size = 0u64;
    {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file.file());
        while let Some(chunk) = rx.blocking_recv() {
            md5.update(&chunk);
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk)
                .io_context(|| "writing an upload to its temp file".into())?;
        }
        out.flush()
            .io_context(|| "writing an upload to its temp file".into())?;
    }
    Ok((file, md5.finalize().into(), size, hasher.finalize()))
}
