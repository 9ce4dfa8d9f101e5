//! The PEM files a TLS client is configured with: the CA to verify servers against, and a client
//! certificate with its key for mutual TLS. `[kafka.tls]` and `[nats.tls]` are both this.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `{ ca_file, cert_file, key_file }`, each optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM CA certificates to verify the servers with, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS, with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// Refuses half a client certificate; `section` names the table (`kafka.tls`).
    pub fn check(&self, section: &str) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(format!(
                "{section}: cert_file and key_file go together (mutual TLS)"
            ));
        }
        Ok(())
    }
}
