//! Where a running `tread up` answers: it writes its API and S3 URLs to
//! `<data dir>/tread-up.json` when it starts and removes the file when it
//! stops cleanly, so that the CLI finds a daemon started on any `--listen`.
//! A file left by a daemon that died is recognised by its address not
//! answering.

use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file's name in the data dir.
pub const ADDRESS_FILE: &str = "tread-up.json";

/// How long the CLI waits for a recorded address to accept a connection:
/// a daemon on this machine accepts in well under a millisecond.
const ANSWER_WITHIN: Duration = Duration::from_millis(300);

/// The URLs a running `tread up` serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonAddress {
    /// The management API, endpoints and `/metrics` (`http://host:port`).
    pub api: String,
    /// The S3 server (`http://host:port`).
    pub s3: String,
    /// The daemon's process id, for a person reading the file.
    pub pid: u32,
}

impl DaemonAddress {
    /// The file's path in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(ADDRESS_FILE)
    }

    /// Writes the file atomically (temp file, then rename), so a reader
    /// never sees half of it; returns a guard that removes it when
    /// dropped, as on a clean stop.
    pub fn publish(&self, data_dir: &Path) -> std::io::Result<PublishedAddress> {
        let path = Self::path(data_dir);
        let temp = data_dir.join(format!(".{ADDRESS_FILE}.{}", std::process::id()));
        std::fs::write(&temp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&temp, &path)?;
        Ok(PublishedAddress { path })
    }

    /// The daemon recorded in `data_dir`, if the file is there and its API
    /// accepts connections; a stale or unreadable file counts as none.
    pub fn find(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read(Self::path(data_dir)).ok()?;
        let address: Self = serde_json::from_slice(&text).ok()?;
        address.answers().then_some(address)
    }

    /// Whether something accepts connections at the API's address.
    fn answers(&self) -> bool {
        socket_addrs(&self.api)
            .iter()
            .any(|a| TcpStream::connect_timeout(a, ANSWER_WITHIN).is_ok())
    }
}

/// The host and port of an `http://host:port[/…]` URL, resolved.
fn socket_addrs(url: &str) -> Vec<SocketAddr> {
    url.parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|a| a.as_str().to_string()))
        .and_then(|authority| authority.to_socket_addrs().ok())
        .map(Iterator::collect)
        .unwrap_or_default()
}

/// The address file of a running daemon; dropping it removes the file.
#[derive(Debug)]
pub struct PublishedAddress {
    path: PathBuf,
}

impl Drop for PublishedAddress {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the daemon's address file; the CLI ignores it once nothing answers there");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: the CLI did not find a `tread up` on a non-default
    /// `--listen`; the daemon now records its address, and a recorded
    /// address that no longer answers is ignored.
    #[test]
    fn r17_a_published_address_is_found_while_it_answers() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = DaemonAddress {
            api: format!("http://{}", listener.local_addr()?),
            s3: "http://127.0.0.1:9".into(),
            pid: std::process::id(),
        };
        let published = address.publish(dir.path())?;
        assert_eq!(DaemonAddress::find(dir.path()), Some(address.clone()));
        drop(listener);
        assert_eq!(
            DaemonAddress::find(dir.path()),
            None,
            "stale: nothing answers"
        );
        drop(published);
        assert!(
            !DaemonAddress::path(dir.path()).exists(),
            "removed on a clean stop"
        );
        Ok(())
    }
}
