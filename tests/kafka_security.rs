//! The gateway against Kafka brokers that require TLS: tansu behind a TLS-terminating proxy whose
//! certificate a throwaway CA signed (tansu 0.6 cannot serve TLS itself). Produce, consume through
//! a group and the dead-letter topic all go through TLS; a CA that did not sign the brokers'
//! certificate leaves the gateway unready with a reason naming `kafka.tls.ca_file`. SASL reaches
//! tansu's handshake, which its 0.6 release ends without naming a mechanism: the gateway says so,
//! naming `kafka.sasl`, and never shows the password.

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

/// tansu behind a TLS proxy with a certificate from `ca` (the broker advertises the proxy's
/// port): the broker and the `[kafka] brokers` value.
async fn brokers_over_tls(ca: &TestCa) -> (Kafka, String) {
    let (cert, key) = ca.issue("kafka-broker");
    let proxy = common::brokers::free_port();
    let kafka = Kafka::start_behind(proxy);
    tls_proxy(&cert, &key, kafka.port, proxy).await;
    (kafka, format!("127.0.0.1:{proxy}"))
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

/// The `[kafka]` keys for `brokers` reached over TLS, trusting the CA of `ca_file`.
fn over_tls(brokers: &str, ca_file: &std::path::Path) -> String {
    format!(
        "brokers = \"{brokers}\"\ntls = {{ ca_file = \"{}\" }}",
        ca_file.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_and_dead_letters_go_through_tls() {
    let ca = TestCa::new();
    let (_kafka, brokers) = brokers_over_tls(&ca).await;
    let repo = repo();
    let (gw, _data) = gateway(&repo, &over_tls(&brokers, &ca.ca_file()), &[]);
    readiness(&gw, 200, "").await;
    let base = gw.base();
    let client = reqwest::Client::new();
    let sent = client
        .post(format!("{base}/v1/stations/orders/messages"))
        .json(&valid_order("tls-1"))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(sent).await;
    assert_eq!(status, 201, "{body}");
    let refused = client
        .post(format!("{base}/v1/stations/orders/messages"))
        .json(&json!({ "order_id": "tls-bad" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(refused).await.0, 422);
    let (status, body) = gw
        .get("/v1/stations/orders/messages?group=workers&max=10&wait_ms=5000")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["value"]["order_id"], "tls-1", "{body}");
    let (status, body) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["dead_letters"][0]["value"]["order_id"], "tls-bad",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_whose_certificate_another_ca_signed_are_refused_naming_the_ca_key() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let (_kafka, brokers) = brokers_over_tls(&ca).await;
    let repo = repo();
    let (gw, _data) = gateway(&repo, &over_tls(&brokers, &other.ca_file()), &[]);
    let body = readiness(&gw, 503, "kafka.tls.ca_file").await;
    assert!(body.to_string().contains("TLS handshake failed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_ending_the_sasl_handshake_leaves_the_gateway_unready_naming_the_sasl_key() {
    const PASSWORD: &str = "kafka-password-never-shown-9182";
    let kafka = Kafka::start_authenticating();
    let repo = repo();
    let sasl = format!(
        "brokers = \"{}\"\nsasl = {{ mechanism = \"SCRAM-SHA-256\", username = \"sluice\", \
         password_env = \"SLUICE_TEST_KAFKA_PASSWORD\" }}",
        kafka.brokers()
    );
    let (gw, _data) = gateway(&repo, &sasl, &[("SLUICE_TEST_KAFKA_PASSWORD", PASSWORD)]);
    let body = readiness(&gw, 503, "kafka.sasl").await;
    assert!(body.to_string().contains("SASL"), "{body}");
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(!log.contains(PASSWORD) && !body.to_string().contains(PASSWORD));
}
