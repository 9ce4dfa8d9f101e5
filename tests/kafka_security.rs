//! The gateway against Kafka brokers that require TLS and SASL: tansu (which checks SCRAM proofs
//! against the credentials it stores) behind a TLS-terminating proxy whose certificate a throwaway
//! CA signed (tansu 0.6 cannot serve TLS itself) and that requires the gateway's client
//! certificate. Produce, consume through a group and the dead-letter topic all go through mutual
//! TLS with SCRAM-SHA-256; SCRAM-SHA-512 from a password file
//! goes on without a restart when the password is rotated; a CA that did not sign the brokers'
//! certificate, or a wrong password, leaves the gateway unready with a reason naming the key to
//! fix; no secret used here appears in anything the gateway shows.

mod common;

use common::brokers::Kafka;
use common::pki::{tls_proxy, TestCa};
use common::{answer, valid_order, GitRepo, Process, ORDER_SCHEMA};
use serde_json::{json, Value};

fn repo() -> GitRepo {
    GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\nbackend = { kafka = \"orders\" }\n",
        ),
    ])
}

const USER: &str = "sluice";
const PASSWORD: &str = "kafka-password-never-shown-9182";

/// tansu behind a TLS proxy with a certificate from `ca` that requires client certificates `ca`
/// signed (the broker advertises the proxy's port), knowing [`USER`] with [`PASSWORD`]: the
/// broker and the `[kafka] brokers` value.
async fn brokers_over_tls(ca: &TestCa) -> (Kafka, String) {
    let (cert, key) = ca.issue("kafka-broker");
    let proxy = common::brokers::free_port();
    let mut kafka = Kafka::start_behind(proxy);
    kafka.set_password(USER, PASSWORD);
    tls_proxy(&cert, &key, Some(&ca.ca_file()), kafka.port, proxy).await;
    (kafka, format!("127.0.0.1:{proxy}"))
}

/// `[kafka.sasl]` as [`USER`] with `mechanism`, the password found by `password_key`.
fn sasl(mechanism: &str, password_key: &str) -> String {
    format!("sasl = {{ mechanism = \"{mechanism}\", username = \"{USER}\", {password_key} }}")
}

/// Waits until `/readyz` answers `status` with `needle` in its body; that body.
async fn readiness(gw: &Process, status: u16, needle: &str) -> Value {
    gw.readiness(status, |body| body.to_string().contains(needle))
        .await
}

/// A gateway whose `[kafka]` section is `kafka`, on a fresh data dir.
fn gateway(repo: &GitRepo, kafka: &str, env: &[(&str, &str)]) -> (Process, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let config = format!("[kafka]\nrequest_timeout = \"5s\"\n{kafka}\n");
    let process = Process::serve_with_config(repo.path(), data.path(), &config, env);
    (process, data)
}

/// The `[kafka]` keys for `brokers` reached over mutual TLS, trusting `trusted` and showing a
/// client certificate `ca` issued, with SCRAM-SHA-256 credentials from the environment.
fn over_tls(brokers: &str, ca: &TestCa, trusted: &TestCa) -> String {
    let (cert, key) = ca.issue("sluice-gateway");
    format!(
        "brokers = \"{brokers}\"\n\
         tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}\n{}",
        trusted.ca_file().display(),
        cert.display(),
        key.display(),
        sasl(
            "SCRAM-SHA-256",
            "password_env = \"SLUICE_TEST_KAFKA_PASSWORD\""
        )
    )
}

const PASSWORD_ENV: &[(&str, &str)] = &[("SLUICE_TEST_KAFKA_PASSWORD", PASSWORD)];

async fn produce(gw: &Process, id: &str) -> (u16, Value) {
    let sent = reqwest::Client::new()
        .post(format!("{}/v1/stations/orders/messages", gw.base()))
        .json(&valid_order(id))
        .send()
        .await
        .unwrap();
    answer(sent).await
}

/// The order ids a read of group `group` gets (acking none).
async fn consume(gw: &Process, group: &str) -> Vec<String> {
    let (status, body) = gw
        .get(&format!(
            "/v1/stations/orders/messages?group={group}&max=10&wait_ms=5000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"]["order_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_and_dead_letters_go_through_mutual_tls_with_scram_credentials() {
    let ca = TestCa::new();
    let (_kafka, brokers) = brokers_over_tls(&ca).await;
    let repo = repo();
    let (gw, _data) = gateway(&repo, &over_tls(&brokers, &ca, &ca), PASSWORD_ENV);
    readiness(&gw, 200, "").await;
    let base = gw.base();
    let client = reqwest::Client::new();
    let (status, body) = produce(&gw, "tls-1").await;
    assert_eq!(status, 201, "{body}");
    let refused = client
        .post(format!("{base}/v1/stations/orders/messages"))
        .json(&json!({ "order_id": "tls-bad" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(refused).await.0, 422);
    assert_eq!(consume(&gw, "workers").await, ["tls-1"]);
    let (status, body) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["dead_letters"][0]["value"]["order_id"], "tls-bad",
        "{body}"
    );
    gw.assert_secrets_kept(&[PASSWORD]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_whose_certificate_another_ca_signed_are_refused_naming_the_ca_key() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let (_kafka, brokers) = brokers_over_tls(&ca).await;
    let repo = repo();
    let (gw, _data) = gateway(&repo, &over_tls(&brokers, &ca, &other), PASSWORD_ENV);
    let body = readiness(&gw, 503, "kafka.tls.ca_file").await;
    assert!(body.to_string().contains("TLS handshake failed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_that_require_a_client_certificate_refuse_a_gateway_without_one() {
    let ca = TestCa::new();
    let (_kafka, brokers) = brokers_over_tls(&ca).await;
    let repo = repo();
    let keys = format!(
        "brokers = \"{brokers}\"\ntls = {{ ca_file = \"{}\" }}\n{}",
        ca.ca_file().display(),
        sasl(
            "SCRAM-SHA-256",
            "password_env = \"SLUICE_TEST_KAFKA_PASSWORD\""
        )
    );
    let (gw, _data) = gateway(&repo, &keys, PASSWORD_ENV);
    let body = readiness(&gw, 503, "kafka.tls.cert_file").await;
    assert!(body.to_string().contains("TLS handshake failed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_file_is_picked_up_without_a_restart() {
    const ROTATED: &str = "rotated-kafka-password-5521";
    let mut kafka = Kafka::start_with_user(USER, PASSWORD);
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("kafka-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let repo = repo();
    let keys = format!(
        "brokers = \"{}\"\n{}",
        kafka.brokers(),
        sasl(
            "SCRAM-SHA-512",
            &format!("password_file = \"{}\"", password_file.display())
        )
    );
    let (gw, _data) = gateway(&repo, &keys, &[]);
    readiness(&gw, 200, "").await;
    assert_eq!(produce(&gw, "before").await.0, 201);
    assert_eq!(consume(&gw, "workers").await, ["before"]);

    // The brokers take the new password (and drop every connection: tansu restarts for it);
    // the operator writes it to the file. The gateway reconnects with it, unrestarted.
    kafka.set_password(USER, ROTATED);
    std::fs::write(&password_file, format!("{ROTATED}\n")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = produce(&gw, "after").await;
        if status == 201 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(consume(&gw, "workers").await.contains(&"after".to_owned()));
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(log.contains("kafka.sasl.password_file changed"), "{log}");
    gw.assert_secrets_kept(&[PASSWORD, ROTATED]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_leaves_the_gateway_unready_naming_the_sasl_key() {
    const WRONG: &str = "not-the-kafka-password-3307";
    let kafka = Kafka::start_with_user(USER, PASSWORD);
    let repo = repo();
    let keys = format!(
        "brokers = \"{}\"\n{}",
        kafka.brokers(),
        // Written into the file itself: `sluice config` must still not show it.
        sasl("SCRAM-SHA-512", &format!("password = \"{WRONG}\""))
    );
    let (gw, _data) = gateway(&repo, &keys, &[]);
    let body = readiness(&gw, 503, "kafka.sasl").await;
    assert!(body.to_string().contains("invalid-proof"), "{body}");
    let (status, body) = produce(&gw, "refused").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("kafka.sasl"), "{body}");
    gw.assert_secrets_kept(&[WRONG, PASSWORD]).await;
}
