//! The gateway against `nats-server`s that require TLS and credentials, as production clusters do:
//! a throwaway CA signs the servers' certificates (and the gateway's, for mutual TLS); each kind of
//! credential (user and password, token, NKey seed, a `.creds` file of a user an operator's
//! account signed) produces and consumes; a wrong password or a wrong CA leaves the gateway
//! unready with a reason naming the key to fix, and its 503s say the same; a rotated password file
//! is picked up without a restart; no secret used here appears in anything the gateway shows (see
//! `Process::assert_secrets_kept`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::brokers::Nats;
use common::pki::TestCa;
use common::{answer, valid_order, GitRepo, Process, ORDER_SCHEMA};
use serde_json::Value;
use tempfile::TempDir;

const PASSWORD: &str = "correct-horse-battery-staple-7731";
const TOKEN: &str = "s3cr3t-token-5d41402abc4b2a76";

fn repo() -> GitRepo {
    GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\nbackend = { nats = \"orders.new\" }\n",
        ),
    ])
}

/// nats-server's `tls` block: the server's certificate from `ca`, client certificates required
/// and checked against `ca` when `verify`.
fn server_tls(ca: &TestCa, verify: bool) -> String {
    let (cert, key) = ca.issue("nats-server");
    format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: {verify} }}",
        cert.display(),
        key.display(),
        ca.ca_file().display()
    )
}

/// A gateway whose `[nats]` section is `nats`, on a fresh data dir.
fn gateway(repo: &GitRepo, nats: &str, env: &[(&str, &str)]) -> (Process, TempDir) {
    let data = tempfile::tempdir().unwrap();
    let config = format!("[nats]\nrequest_timeout = \"2s\"\n{nats}\n");
    let process = Process::serve_with_config(repo.path(), data.path(), &config, env);
    (process, data)
}

async fn produce(base: &str, id: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/stations/orders/messages"))
        .json(&valid_order(id))
        .send()
        .await
        .unwrap();
    answer(response).await
}

/// The reason `/readyz` gives, once it mentions `needle`.
async fn unready_because(gw: &Process, needle: &str) -> String {
    let body = gw
        .readiness(503, |body| {
            body["message"].as_str().is_some_and(|m| m.contains(needle))
        })
        .await;
    body["message"].as_str().unwrap().to_owned()
}

/// Produces one order and reads it back through a consumer group, acking it.
async fn produce_and_consume(gw: &Process, id: &str) {
    gw.readiness(200, |_| true).await;
    let base = &gw.base();
    let (status, body) = produce(base, id).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = gw
        .get(&format!(
            "/v1/stations/orders/messages?group=g-{id}&max=10&wait_ms=3000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["value"]["order_id"].as_str())
        .collect();
    assert!(ids.contains(&id), "{id} not consumed: {body}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_over_tls_from_a_file_that_is_rotated_without_a_restart() {
    let ca = TestCa::new();
    let users = |password: &str| {
        format!(
            "{}\nauthorization {{ users = [ {{ user: sluice, password: \"{password}\" }} ] }}",
            server_tls(&ca, false)
        )
    };
    let nats = Nats::start_with_config(&users(PASSWORD));
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("nats-password");
    write(&password_file, &format!("{PASSWORD}\n"));
    let repo = repo();
    let (gw, _data) = gateway(
        &repo,
        &format!(
            "url = \"tls://127.0.0.1:{}\"\nuser = \"sluice\"\npassword_file = \"{}\"\ntls = {{ ca_file = \"{}\" }}",
            nats.port,
            password_file.display(),
            ca.ca_file().display()
        ),
        &[],
    );
    produce_and_consume(&gw, "tls-user-1").await;

    // The operator rotates the password: the server's configuration and the file the gateway
    // reads. The server drops the connection it no longer authorizes; the gateway reconnects
    // with the file as it is now.
    const ROTATED: &str = "rotated-password-of-the-second-week";
    write(&password_file, ROTATED);
    std::fs::write(nats.config_file(), {
        let text = std::fs::read_to_string(nats.config_file()).unwrap();
        text.replace(PASSWORD, ROTATED)
    })
    .unwrap();
    nats.reload();
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce_and_consume(&gw, "tls-user-2").await;
    gw.assert_secrets_kept(&[PASSWORD, ROTATED]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_leaves_the_gateway_unready_naming_the_keys_to_fix() {
    let nats = Nats::start_with_config(&format!(
        "authorization {{ users = [ {{ user: sluice, password: \"{PASSWORD}\" }} ] }}"
    ));
    let repo = repo();
    let (gw, _data) = gateway(
        &repo,
        &format!(
            // Written into the file itself: `sluice config` must still not show it.
            "url = \"{}\"\nuser = \"sluice\"\npassword = \"not-the-password-0451\"",
            nats.url()
        ),
        &[],
    );
    let reason = unready_because(&gw, "authorization violation").await;
    assert!(reason.contains("nats.user and nats.password"), "{reason}");
    let (status, body) = produce(&gw.base(), "refused").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("nats.password"),
        "{body}"
    );
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(log.contains("authorization violation"), "{log}");
    gw.assert_secrets_kept(&["not-the-password-0451", PASSWORD])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_environment_produces_and_consumes() {
    let nats = Nats::start_with_config(&format!("authorization {{ token: \"{TOKEN}\" }}"));
    let repo = repo();
    let (gw, _data) = gateway(
        &repo,
        &format!(
            "url = \"{}\"\ntoken_env = \"SLUICE_TEST_NATS_TOKEN\"",
            nats.url()
        ),
        &[("SLUICE_TEST_NATS_TOKEN", TOKEN)],
    );
    produce_and_consume(&gw, "token-1").await;
    gw.assert_secrets_kept(&[TOKEN]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_seed_over_mutual_tls_produces_and_consumes() {
    let ca = TestCa::new();
    let user = nkeys::KeyPair::new_user();
    let nats = Nats::start_with_config(&format!(
        "{}\nauthorization {{ users = [ {{ nkey: \"{}\" }} ] }}",
        server_tls(&ca, true),
        user.public_key()
    ));
    let seed = user.seed().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let seed_file = secrets.path().join("sluice.nk");
    write(&seed_file, &seed);
    let (cert, key) = ca.issue("sluice-gateway");
    let repo = repo();
    let (gw, _data) = gateway(
        &repo,
        &format!(
            "url = \"{}\"\nnkey_seed_file = \"{}\"\n[nats.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
            nats.url(),
            seed_file.display(),
            ca.ca_file().display(),
            cert.display(),
            key.display()
        ),
        &[],
    );
    produce_and_consume(&gw, "nkey-1").await;
    gw.assert_secrets_kept(&[&seed]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused_naming_the_ca_key() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let nats = Nats::start_with_config(&server_tls(&ca, false));
    let repo = repo();
    let (gw, _data) = gateway(
        &repo,
        &format!(
            "url = \"{}\"\ntls = {{ ca_file = \"{}\" }}",
            nats.url(),
            other.ca_file().display()
        ),
        &[],
    );
    let reason = unready_because(&gw, "nats.tls.ca_file").await;
    assert!(
        reason.contains("TLS handshake with 127.0.0.1")
            && reason.contains("invalid peer certificate"),
        "{reason}"
    );
    let (status, _) = produce(&gw.base(), "untrusted").await;
    assert_eq!(status, 503);
}

/// A NATS JWT: `claims` from `issuer` about `subject`, signed with the issuer's key.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{name}-{subject}"),
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{claims}");
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creds_file_of_an_operator_signed_user_produces_and_consumes() {
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
        "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1,
        "consumer": -1
    });
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({ "system_account": system.public_key(), "type": "operator", "version": 2 }),
    );
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({ "type": "account", "version": 2 }),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "test-account",
        serde_json::json!({ "limits": unlimited, "type": "account", "version": 2 }),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "sluice",
        serde_json::json!({ "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                            "type": "user", "version": 2 }),
    );
    let nats = Nats::start_with_config(&format!(
        "operator: \"{operator_jwt}\"\nsystem_account: {}\nresolver: MEMORY\n\
         resolver_preload: {{ {}: \"{system_jwt}\", {}: \"{account_jwt}\" }}",
        system.public_key(),
        system.public_key(),
        account.public_key()
    ));
    let seed = user.seed().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let creds = secrets.path().join("sluice.creds");
    write(
        &creds,
        &format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    );
    let repo = repo();
    let (gw, _data) = gateway(
        &repo,
        &format!(
            "url = \"{}\"\ncreds_file = \"{}\"",
            nats.url(),
            creds.display()
        ),
        &[],
    );
    produce_and_consume(&gw, "creds-1").await;
    gw.assert_secrets_kept(&[&seed]).await;
}
