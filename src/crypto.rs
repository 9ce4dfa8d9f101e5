//! The process's one cryptography provider for TLS: rustls with ring, as the servers use it
//! explicitly (`ingress::tls`) and every client takes it from here.

/// Installs ring as the process's default rustls provider, unless one is installed already.
/// Call before building an HTTP client; calling again does nothing.
pub fn install_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
