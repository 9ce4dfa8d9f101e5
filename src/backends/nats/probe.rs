//! Says why a TLS connection to a NATS server failed. The client reports a failed handshake only
//! as an I/O error; this repeats the handshake the way the client makes it (the server's INFO
//! line in clear, then TLS with the configured CA and client certificate) and returns rustls's
//! own reason, such as an unknown issuer or a name the certificate does not hold.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncBufReadExt;

use crate::model::TlsFiles;

const PATIENCE: Duration = Duration::from_secs(3);

/// Why a TLS connection to `host:port` fails with `tls`, or none if the handshake succeeds (or
/// cannot be judged without a CA file).
pub(super) async fn tls_failure(host: &str, port: u16, tls: &TlsFiles) -> Option<String> {
    let ca_file = tls.ca_file.as_ref()?;
    let config = match client_config(tls, ca_file) {
        Ok(config) => config,
        Err(problem) => return Some(problem),
    };
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
        let mut stream = tokio::io::BufReader::new(stream);
        let mut info = String::new();
        stream
            .read_line(&mut info)
            .await
            .map_err(|e| format!("{host}:{port} sent no INFO line: {e}"))?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("`{host}` is not a name TLS can check: {e}"))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream.into_inner())
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "the TLS handshake with {host}:{port} failed ({e}): the server's certificate \
                     must be signed by a CA in nats.tls.ca_file and name `{host}`; a server that \
                     asks for a client certificate needs nats.tls.cert_file and nats.tls.key_file"
                )
            })
    };
    match tokio::time::timeout(PATIENCE, attempt).await {
        Ok(Ok(())) | Err(_) => None,
        Ok(Err(problem)) => Some(problem),
    }
}

fn client_config(
    tls: &TlsFiles,
    ca_file: &std::path::Path,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("nats.tls.ca_file: cannot read {}: {e}", ca_file.display()))?;
    for certificate in certificates {
        let certificate = certificate
            .map_err(|e| format!("nats.tls.ca_file: {} is not PEM: {e}", ca_file.display()))?;
        roots
            .add(certificate)
            .map_err(|e| format!("nats.tls.ca_file: {}: {e}", ca_file.display()))?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|chain| chain.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("nats.tls.cert_file: {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("nats.tls.key_file: {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("nats.tls.cert_file and key_file do not match: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}
