//! TLS for both front ends, with rustls (ring): reads `[server] tls_cert` and `tls_key` (PEM) once
//! at start-up into a server configuration for each listener — HTTP/1.1 or HTTP/2 (gRPC) by
//! ALPN. The front door (`connections.rs`) runs each handshake on its own task with a deadline.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

    /// The server configuration of the HTTP listener (HTTP/1.1 by ALPN).
    pub fn http(&self) -> Arc<ServerConfig> {
        self.http.clone()
    }

    /// The server configuration of the gRPC listener (`h2` by ALPN).
    pub fn grpc(&self) -> Arc<ServerConfig> {
        self.grpc.clone()
    }
}
