//! TLS for both front ends, with rustls (ring): reads `[server] tls_cert` and `tls_key` (PEM) once
//! at start-up, and turns a bound TCP listener into a stream of connections whose handshake has
//! finished — an axum [`Listener`] for HTTP/1.1 and an incoming stream for gRPC over HTTP/2.
//!
//! Handshakes run on their own tasks with a deadline, so a client that connects and says nothing
//! holds neither the accept loop nor other clients. A failed handshake (plain HTTP on the TLS
//! port, an untrusted certificate) closes that connection only and is logged at debug level.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPT_BACKLOG: usize = 256;

/// A certificate or key that cannot serve TLS, naming the file and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {file}: {message}")]
    Certificate { file: String, message: String },
    #[error("TLS key {file}: {message}")]
    Key { file: String, message: String },
    #[error("TLS certificate {cert} and key {key} do not make a server identity: {message}")]
    Identity {
        cert: String,
        key: String,
        message: String,
    },
}

/// The server identity, ready for both front ends.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Offers HTTP/1.1 by ALPN.
    http: Arc<ServerConfig>,
    /// Offers HTTP/2 (`h2`) by ALPN, as gRPC requires.
    grpc: Arc<ServerConfig>,
}

impl TlsIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let cert_file = cert.display().to_string();
        let key_file = key.display().to_string();
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::Certificate {
                file: cert_file.clone(),
                message: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Certificate {
                file: cert_file,
                message: "no PEM CERTIFICATE block in the file".into(),
            });
        }
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            file: key_file.clone(),
            message: e.to_string(),
        })?;
        let config = |alpn: &[u8]| -> Result<Arc<ServerConfig>, TlsError> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|builder| {
                    builder
                        .with_no_client_auth()
                        .with_single_cert(chain.clone(), private_key.clone_key())
                })
                .map_err(|e| TlsError::Identity {
                    cert: cert_file.clone(),
                    key: key_file.clone(),
                    message: e.to_string(),
                })?;
            config.alpn_protocols = vec![alpn.to_vec()];
            Ok(Arc::new(config))
        };
        Ok(Self {
            http: config(b"http/1.1")?,
            grpc: config(b"h2")?,
        })
    }

    /// `listener` serving HTTP/1.1 over TLS.
    pub fn http_listener(&self, listener: TcpListener) -> io::Result<TlsListener> {
        TlsListener::new(listener, self.http.clone())
    }

    /// `listener` serving gRPC over TLS.
    pub fn grpc_listener(&self, listener: TcpListener) -> io::Result<TlsListener> {
        TlsListener::new(listener, self.grpc.clone())
    }
}

/// Connections on one TCP listener whose TLS handshake has finished.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(ACCEPT_BACKLOG);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), ready_tx));
        Ok(Self { ready, local_addr })
    }

    /// The connections as the stream tonic serves from.
    pub fn into_incoming(
        self,
    ) -> impl futures_util::Stream<Item = io::Result<TlsStream<TcpStream>>> + Send {
        futures_util::stream::unfold(self.ready, |mut ready| async move {
            let (stream, _) = ready.recv().await?;
            Some((Ok(stream), ready))
        })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is gone; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Accepts TCP connections and hands each to its own handshake task until the server that reads
/// `ready` is gone.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ready.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a TLS connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = ready.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}
