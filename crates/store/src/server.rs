//! The S3 endpoint: binds a TCP (optionally TLS) listener and serves the s3s
//! service over HTTP/1.1 and HTTP/2, with authentication, policies and both
//! path-style and virtual-host-style addressing.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::backend::NasStore;
use crate::front::{Front, Served, served};
use crate::iam::access::{CatalogAuth, PolicyAccess};

/// Where and how the S3 endpoint listens.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to bind, e.g. `127.0.0.1:9000` (port 0 picks a free one).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key, to serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Base domains for virtual-host-style requests (`bucket.<domain>`).
    pub domains: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            tls: None,
            domains: vec!["localhost".into()],
        }
    }
}

/// Errors starting the endpoint, worded for the person who ran `tread s3 serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another server using it? pass --listen ADDR")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Decides path style or virtual-host style from the Host header: `bucket.<domain>`
/// is virtual-host style; anything else (an IP address, `localhost`, an
/// unknown name) is path style.
struct AddressingStyle {
    domains: Vec<String>,
}

impl S3Host for AddressingStyle {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name =
            host.rsplit_once(':').map_or(
                host,
                |(h, port)| if port.parse::<u16>().is_ok() { h } else { host },
            );
        for domain in &self.domains {
            if let Some(bucket) = name
                .strip_suffix(domain.as_str())
                .and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(VirtualHost::new(domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

/// A bound S3 endpoint, ready to serve.
pub struct S3Server {
    listener: TcpListener,
    service: Served,
    tls: Option<TlsAcceptor>,
}

fn load_tls(cert: &PathBuf, key: &PathBuf) -> Result<TlsAcceptor, ServerError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| ServerError::Tls(format!("reading {}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{} holds no private key", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl S3Server {
    /// Binds the listener and assembles the service; nothing is served until [`Self::run`].
    pub async fn bind(store: NasStore, options: &ServerOptions) -> Result<Self, ServerError> {
        let tls = match &options.tls {
            Some((cert, key)) => Some(load_tls(cert, key)?),
            None => None,
        };
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let mut builder = S3ServiceBuilder::new(store.clone());
        builder.set_auth(CatalogAuth(store.clone()));
        builder.set_access(PolicyAccess(store));
        builder.set_host(AddressingStyle {
            domains: options.domains.clone(),
        });
        Ok(Self {
            listener,
            service: served(Front(builder.build())),
            tls,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The endpoint URL clients should use.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match self.local_addr() {
            Ok(addr) => format!("{scheme}://{addr}"),
            Err(_) => format!("{scheme}://?"),
        }
    }

    /// Serves until `shutdown` resolves, then lets open connections finish for up to 10 s.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let conn_builder = ConnBuilder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = self.service.clone();
            match &self.tls {
                None => {
                    let conn = conn_builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let builder = conn_builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let tls = match acceptor.accept(stream).await {
                            Ok(t) => t,
                            Err(e) => {
                                return tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            }
                        };
                        let conn = builder
                            .serve_connection(TokioIo::new(tls), service)
                            .into_owned();
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
            }
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
                tracing::warn!("connections still open after 10 s; closing them");
            }
        }
    }
}
