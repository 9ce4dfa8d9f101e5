//! TLS with `[server] tls_cert` and `tls_key`: both APIs serve only TLS with the configured
//! certificate, clients that do not trust it or speak plain HTTP are refused without harming
//! anyone else, the CLI trusts a private CA with `--ca-cert`, and a half or unreadable TLS
//! configuration stops the start with a sentence naming the file.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::brokers::free_port;
use common::{orders_repo, sluice_binary, valid_order, Gateway, Process, TestCertificate};
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::ProduceRequest;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[tokio::test]
async fn http_and_grpc_serve_tls_with_the_configured_certificate() {
    let repo = orders_repo("");
    let certificate = TestCertificate::new();
    let gw = Gateway::start_tls(&repo, "", &certificate).await;
    assert!(gw.base.starts_with("https://localhost:"));

    let (status, body) = gw.produce("orders", &valid_order("over-tls")).await;
    assert_eq!(status, 201, "{body}");

    let channel = Channel::from_shared(gw.grpc.clone())
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&certificate.cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("the gRPC API completes a TLS handshake");
    let accepted = GatewayClient::new(channel)
        .produce(ProduceRequest {
            station: "orders".into(),
            payload: Bytes::from(serde_json::to_vec(&valid_order("grpc-tls")).unwrap()),
            content_type: "application/json".into(),
            ..ProduceRequest::default()
        })
        .await
        .expect("produce over gRPC with TLS")
        .into_inner();
    assert_eq!(accepted.offset, 1);

    let read = gw.consume("orders", "readers", 10).await;
    let ids: Vec<&str> = read
        .iter()
        .map(|m| m["value"]["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["over-tls", "grpc-tls"]);
}

#[tokio::test]
async fn plain_http_silent_and_untrusting_clients_are_refused_and_others_are_served() {
    let repo = orders_repo("");
    let certificate = TestCertificate::new();
    let gw = Gateway::start_tls(&repo, "", &certificate).await;
    let port = gw.base.rsplit(':').next().unwrap().to_owned();

    // A connection that never starts its handshake holds nobody up.
    let silent = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();

    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP is not answered: {plain:?}");

    let untrusting = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap()
        .get(gw.url("/healthz"))
        .send()
        .await;
    let error = untrusting.expect_err("a client that does not trust the certificate gives up");
    assert!(error.is_connect(), "{error:?}");

    let (status, body) = gw.produce("orders", &valid_order("still-served")).await;
    assert_eq!(status, 201, "{body}");
    drop(silent);
    assert_eq!(gw.get("/readyz").await.0, 200);
}

#[test]
fn the_cli_trusts_the_gateway_certificate_given_with_ca_cert() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let certificate = TestCertificate::new();
    let cert = certificate.cert_file().display().to_string();
    let key = certificate.key_file().display().to_string();
    let gateway = Process::serve_with_env(
        repo.path(),
        data.path(),
        &[
            ("SLUICE_SERVER_TLS_CERT", &cert),
            ("SLUICE_SERVER_TLS_KEY", &key),
        ],
    );
    let url = format!("https://localhost:{}", gateway.port());
    let produce = |extra: &[&str]| {
        let mut child = Command::new(sluice_binary())
            .args(["produce", "orders", "--url", &url])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"{\"order_id\":\"cli-tls\",\"items\":[{\"qty\":1}]}\n")
            .unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let refused = produce(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot reach the gateway"), "{stderr}");

    let accepted = produce(&["--ca-cert", &cert]);
    let stdout = String::from_utf8_lossy(&accepted.stdout);
    let stderr = String::from_utf8_lossy(&accepted.stderr);
    assert!(accepted.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("1 accepted, 0 rejected"), "{stderr}");
    gateway.kill();
}

#[test]
fn half_or_unreadable_tls_settings_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[server]\ntls_cert = \"cert.pem\"\n").unwrap();
    let error = sluice::config::Config::load(&config, true, std::iter::empty()).unwrap_err();
    assert!(error.to_string().contains("server.tls_key"), "{error}");

    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    let repo = orders_repo("");
    let missing = dir.path().join("no-such-cert.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let output = Command::new(sluice_binary())
        .args(["serve", "--config"])
        .arg(dir.path().join("empty.toml"))
        .env("SLUICE_SERVER_HTTP", format!("127.0.0.1:{}", free_port()))
        .env("SLUICE_SERVER_GRPC", format!("127.0.0.1:{}", free_port()))
        .env("SLUICE_REGISTRY_SOURCE", repo.path())
        .env("SLUICE_STORAGE_DIR", dir.path().join("store"))
        .env("SLUICE_SERVER_TLS_CERT", &missing)
        .env("SLUICE_SERVER_TLS_KEY", &garbage)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-cert.pem"), "{stderr}");
}
