//! The registry served from a real git repository: commits reach the gateway through the sync
//! webhook; a bad commit is refused whole while the last good one serves; published versions are
//! immutable; ids and the served commit survive a restart, even with the remote gone; and
//! `sluice check --base` runs the same rules offline.

mod common;

use std::time::Duration;

use common::{sluice_check, valid_order, Gateway, GitRepo, Process};
use serde_json::{json, Value};

/// v1 of `orders`, with a closed content model so optional properties can be added compatibly.
const ORDERS_V1: &str = r#"{"type":"object","additionalProperties":false,
  "required":["order_id","items"],
  "properties":{"order_id":{"type":"string"},
    "items":{"type":"array","items":{"type":"object","properties":{"qty":{"type":"integer"}}}}}}"#;
/// v2: adds an optional `note` (backward compatible).
const ORDERS_V2_COMPATIBLE: &str = r#"{"type":"object","additionalProperties":false,
  "required":["order_id","items"],
  "properties":{"order_id":{"type":"string"},"note":{"type":"string"},
    "items":{"type":"array","items":{"type":"object","properties":{"qty":{"type":"integer"}}}}}}"#;
/// v2: requires a new `total` (old data lacks it: not backward compatible).
const ORDERS_V2_REQUIRES_TOTAL: &str = r#"{"type":"object","additionalProperties":false,
  "required":["order_id","items","total"],
  "properties":{"order_id":{"type":"string"},"total":{"type":"number"},
    "items":{"type":"array","items":{"type":"object","properties":{"qty":{"type":"integer"}}}}}}"#;
const STATIONS: &str = "[[station]]\nname = \"orders\"\nschema = \"orders\"\n";

fn orders_git_repo() -> GitRepo {
    GitRepo::new(&[
        ("schemas/orders/v1.json", ORDERS_V1),
        ("stations.toml", STATIONS),
    ])
}

async fn sync(gw: &Gateway) -> (u16, Value) {
    gw.post_json("/v1/registry/sync", &json!({})).await
}

#[tokio::test]
async fn a_commit_is_served_after_the_webhook() {
    let repo = orders_git_repo();
    let first = repo.head();
    let gw = Gateway::start(&repo, "").await;
    let (_, status) = gw.get("/v1/registry/status").await;
    assert_eq!(status["serving_commit"], first.as_str(), "{status}");

    repo.write("schemas/orders/v2.json", ORDERS_V2_COMPATIBLE);
    let second = repo.commit("orders v2: optional note");
    let (code, status) = sync(&gw).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["serving_commit"], second.as_str());
    assert_eq!(status["refused_commit"], Value::Null);

    let (_, schema) = gw.get("/v1/schemas/orders").await;
    assert_eq!(schema["versions"].as_array().unwrap().len(), 2, "{schema}");
    let mut order = valid_order("with-note");
    order["note"] = json!("leave at the door");
    let (code, body) = gw.produce("orders", &order).await;
    assert_eq!(
        (code, body["schema_version"].as_u64()),
        (201, Some(2)),
        "{body}"
    );
}

#[tokio::test]
async fn an_incompatible_commit_is_refused_whole_while_the_last_good_one_serves() {
    let repo = orders_git_repo();
    let good = repo.head();
    let gw = Gateway::start(&repo, "").await;

    // One commit: an incompatible orders v2 plus a perfectly fine new schema.
    repo.write("schemas/orders/v2.json", ORDERS_V2_REQUIRES_TOTAL);
    repo.write("schemas/clicks/v1.json", r#"{"type":"object"}"#);
    let bad = repo.commit("orders v2 requires total; clicks");
    let (code, status) = sync(&gw).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["serving_commit"], good.as_str(), "{status}");
    assert_eq!(status["refused_commit"], bad.as_str(), "{status}");
    let errors = status["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{status}");
    assert_eq!(errors[0]["file"], "schemas/orders/v2.json");
    assert_eq!(errors[0]["version"], 2);
    assert_eq!(errors[0]["rule"], "required_added");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("not backward compatible with v1"),
        "{status}"
    );
    assert_eq!(status["refusals_total"], 1);

    // Nothing of the refused commit is served, not even its good part; the gateway stays ready.
    assert_eq!(gw.get("/v1/schemas/clicks").await.0, 404);
    let (code, ready) = gw.get("/readyz").await;
    assert_eq!(code, 200, "{ready}");
    let (code, body) = gw.produce("orders", &valid_order("still-v1")).await;
    assert_eq!(
        (code, body["schema_version"].as_u64()),
        (201, Some(1)),
        "{body}"
    );

    // A good commit after the bad one is served.
    repo.write("schemas/orders/v2.json", ORDERS_V2_COMPATIBLE);
    let fixed = repo.commit("orders v2: optional note instead");
    let (_, status) = sync(&gw).await;
    assert_eq!(status["serving_commit"], fixed.as_str(), "{status}");
    assert_eq!(status["refused_commit"], Value::Null);
    assert_eq!(gw.get("/v1/schemas/clicks").await.0, 200);
}

#[tokio::test]
async fn published_versions_cannot_be_edited_or_deleted() {
    let repo = orders_git_repo();
    let good = repo.head();
    let gw = Gateway::start(&repo, "").await;

    repo.write("schemas/orders/v1.json", ORDERS_V2_COMPATIBLE);
    let edit = repo.commit("edit v1 in place");
    let (_, status) = sync(&gw).await;
    assert_eq!(status["serving_commit"], good.as_str());
    assert_eq!(status["refused_commit"], edit.as_str());
    assert_eq!(
        status["errors"][0]["rule"], "published_version_edited",
        "{status}"
    );
    assert_eq!(status["errors"][0]["file"], "schemas/orders/v1.json");

    repo.remove("schemas/orders/v1.json");
    repo.write("stations.toml", "[[station]]\nname = \"raw\"\n");
    let delete = repo.commit("delete orders");
    let (_, status) = sync(&gw).await;
    assert_eq!(status["refused_commit"], delete.as_str());
    assert_eq!(
        status["errors"][0]["rule"], "published_version_deleted",
        "{status}"
    );
    assert_eq!(status["serving_commit"], good.as_str());
}

#[tokio::test]
async fn ids_and_the_served_commit_survive_a_restart_even_with_the_remote_gone() {
    let repo = orders_git_repo();
    repo.write("schemas/orders/v2.json", ORDERS_V2_COMPATIBLE);
    let served = repo.commit("v2");
    let gw = Gateway::start(&repo, "").await;
    let (_, before) = gw.get("/v1/schemas/orders").await;
    let data = gw.stop().await;

    // Same data dir, same repository: same ids.
    let gw = Gateway::start_with_data(&repo, "", data).await;
    let (_, after) = gw.get("/v1/schemas/orders").await;
    assert_eq!(before["ids"], after["ids"], "{before} / {after}");
    assert!(before["ids"].as_array().unwrap().len() == 2);
    let data = gw.stop().await;

    // The remote is gone: the gateway serves the commit it served before, and says why it
    // cannot sync.
    let moved = tempfile::tempdir().unwrap();
    let gone = moved.path().join("gone");
    std::fs::rename(repo.path(), &gone).unwrap();
    let gw = Gateway::start_with_data(&repo, "", data).await;
    let (code, ready) = gw.get("/readyz").await;
    assert_eq!(code, 200, "{ready}");
    let (_, status) = gw.get("/v1/registry/status").await;
    assert_eq!(status["serving_commit"], served.as_str(), "{status}");
    assert!(status["source_error"]["message"].is_string(), "{status}");
    let (_, again) = gw.get("/v1/schemas/orders").await;
    assert_eq!(again["ids"], before["ids"]);
    let (code, body) = gw.produce("orders", &valid_order("offline")).await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = sync(&gw).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"], "registry_source_unavailable");
    gw.stop().await;
    std::fs::rename(&gone, repo.path()).unwrap();
}

#[tokio::test]
async fn without_a_served_commit_an_unreachable_remote_leaves_the_gateway_not_ready() {
    let missing = tempfile::tempdir().unwrap();
    let url = format!("file://{}/nowhere.git", missing.path().display());
    let gw = Gateway::start(&url, "").await;
    let (code, ready) = gw.get("/readyz").await;
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["error"], "registry_not_ready");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("cannot be read"),
        "{ready}"
    );
    let (code, body) = gw.produce("orders", &valid_order("early")).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (503, Some("registry_not_ready"))
    );
}

fn hub_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[tokio::test]
async fn the_webhook_requires_a_valid_signature_when_a_secret_is_set() {
    let repo = orders_git_repo();
    let data = tempfile::tempdir().unwrap();
    let sluice = Process::serve_with_env(
        repo.path(),
        data.path(),
        &[("SLUICE_WEBHOOK_SECRET", "hook-s3cret")],
    );
    let url = format!("{}/v1/registry/sync", sluice.base());
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let call = |headers: Vec<(&'static str, String)>| {
        let mut request = reqwest::Client::new().post(&url).body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { common::answer(request.send().await.unwrap()).await }
    };

    let (code, answer) = call(vec![]).await;
    assert_eq!(
        (code, answer["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (code, _) = call(vec![("X-Hub-Signature-256", hub_signature("wrong", &body))]).await;
    assert_eq!(code, 401);
    let (code, _) = call(vec![("X-Gitlab-Token", "wrong".into())]).await;
    assert_eq!(code, 401);

    repo.write("schemas/orders/v2.json", ORDERS_V2_COMPATIBLE);
    let second = repo.commit("v2");
    // A burst of signed calls: all answered, after a sync that saw the commit.
    let signature = hub_signature("hook-s3cret", &body);
    let burst: Vec<_> = (0..5)
        .map(|_| tokio::spawn(call(vec![("X-Hub-Signature-256", signature.clone())])))
        .collect();
    for call in burst {
        let (code, answer) = call.await.unwrap();
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["serving_commit"], second.as_str());
    }
    let (code, _) = call(vec![("X-Gitlab-Token", "hook-s3cret".into())]).await;
    assert_eq!(code, 200);
}

/// A repository with one schema per format, committed; the test then changes the working tree.
fn four_format_repo() -> GitRepo {
    GitRepo::new(&[
        ("schemas/orders/v1.json", ORDERS_V1),
        (
            "schemas/clicks/v1.avsc",
            r#"{"type":"record","name":"Click","fields":[{"name":"url","type":"string"}]}"#,
        ),
        (
            "schemas/payments/v1.proto",
            "syntax = \"proto3\";\nmessage Payment { string id = 1; int64 cents = 2; }\n",
        ),
        (
            "schemas/storefront/v1.graphql",
            "type Query { product(id: ID!): Product }\ntype Product { id: ID!, name: String }\n",
        ),
        ("schemas/audit/v1.json", r#"{"type":"object"}"#),
        ("schemas/audit/v2.json", r#"{"type":"object"}"#),
        ("stations.toml", STATIONS),
    ])
}

fn check(dir: &std::path::Path, base: Option<&str>) -> (bool, String) {
    match base {
        Some(base) => sluice_check(dir, &["--base", base]),
        None => sluice_check(dir, &[]),
    }
}

#[test]
fn check_with_base_catches_every_rule_with_file_version_and_rule() {
    let repo = four_format_repo();
    let (ok, out) = check(&repo.path().join("schemas"), Some("HEAD"));
    assert!(ok, "{out}");
    let (ok, out) = check(repo.path(), Some("HEAD"));
    assert!(ok, "the repository root works as well: {out}");

    // Every kind of problem at once, in the working tree.
    repo.write("schemas/orders/v1.json", ORDERS_V2_COMPATIBLE); // edited
    repo.remove("schemas/audit/v2.json"); // deleted
    repo.write("schemas/audit/v4.json", r#"{"type":"object"}"#); // skips v3 (and v2 is gone)
    repo.write(
        "schemas/clicks/v2.avsc",
        r#"{"type":"record","name":"Click","fields":[{"name":"url","type":"string"},{"name":"ms","type":"long"}]}"#,
    );
    repo.write(
        "schemas/payments/v2.proto",
        "syntax = \"proto3\";\nmessage Payment { string id = 1; }\n",
    );
    repo.write(
        "schemas/storefront/v2.graphql",
        "type Query { product(id: ID!): Product }\ntype Product { id: ID! }\n",
    );
    repo.write("schemas/broken/v1.json", "{ not json");
    repo.write(
        "stations.toml",
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\n[[station]]\nname = \"x\"\nschema = \"nope\"\n",
    );
    let (ok, out) = check(repo.path(), Some("HEAD"));
    assert!(!ok, "{out}");
    for expected in [
        "schemas/orders/v1.json: v1: published_version_edited:",
        "schemas/audit/v2.json: v2: published_version_deleted:",
        "schemas/audit/v4.json: version_sequence:",
        "schemas/clicks/v2.avsc: v2: field_without_default:",
        "schemas/payments/v2.proto: v2: field_removed_without_reserved:",
        "schemas/storefront/v2.graphql: v2: field_removed:",
        "schemas/broken/v1.json: compile:",
        "stations.toml: station: station `x`: no schema named `nope`",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }

    // The same edits judged without a base: history is unknown, so only what the tree itself
    // shows is reported (no edit or deletion can be seen).
    let (ok, out) = check(repo.path(), None);
    assert!(!ok);
    assert!(!out.contains("published_version_edited"), "{out}");
    assert!(out.contains("field_without_default"), "{out}");
}

#[test]
fn check_refuses_an_unknown_base_with_a_clear_line() {
    let repo = four_format_repo();
    let (ok, out) = check(repo.path(), Some("no-such-branch"));
    assert!(!ok);
    assert!(out.contains("revision `no-such-branch`"), "{out}");
}

#[tokio::test]
async fn the_registry_polls_git_sources() {
    let repo = orders_git_repo();
    let gw = Gateway::start(&repo, "[registry]\npoll_interval = \"100ms\"\n").await;
    repo.write("schemas/orders/v2.json", ORDERS_V2_COMPATIBLE);
    let second = repo.commit("v2");
    common::eventually(Duration::from_secs(10), || async {
        let (_, status) = gw.get("/v1/registry/status").await;
        (status["serving_commit"] == second.as_str()).then_some(())
    })
    .await;
}

/// A commit past the repository's bounds is refused whole, naming the key, while the last good
/// one serves; a blob that several paths name is read and counted once.
#[tokio::test]
async fn a_commit_past_the_repository_bounds_is_refused_and_a_shared_blob_counts_once() {
    let repo = orders_git_repo();
    let config = "[registry]\nmax_files = 30\nmax_repository_bytes = 1048576\n";
    let gw = Gateway::start(&repo, config).await;
    let blob = "x".repeat(600_000);
    for i in 0..20 {
        repo.write(&format!("assets/copy-{i}.txt"), &blob);
    }
    let shared = repo.commit("one 600 KB blob under twenty paths");
    let (_, status) = sync(&gw).await;
    assert_eq!(status["serving_commit"], shared.as_str(), "{status}");

    let refused = |key: &'static str| {
        let gw = &gw;
        async move {
            let (code, answer) = sync(gw).await;
            assert_eq!(code, 503, "{answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(key),
                "{answer}"
            );
            let (_, status) = gw.get("/v1/registry/status").await;
            assert!(status.to_string().contains(key), "{status}");
            status["serving_commit"].clone()
        }
    };
    repo.write("assets/other.txt", &"y".repeat(600_000));
    repo.commit("a second 600 KB blob");
    assert_eq!(
        refused("registry.max_repository_bytes").await,
        shared.as_str()
    );

    repo.remove("assets/other.txt");
    for i in 0..20 {
        repo.write(&format!("notes/n-{i}.md"), "a note");
    }
    repo.commit("twenty more files");
    assert_eq!(refused("registry.max_files").await, shared.as_str());
    assert_eq!(gw.produce("orders", &valid_order("still")).await.0, 201);
}

/// A push whose pack is larger than `registry.max_fetch_bytes` is not received whole: the fetch
/// stops, naming the key, and the last good commit serves.
#[tokio::test]
async fn a_fetch_past_its_bound_is_stopped() {
    let repo = orders_git_repo();
    let good = repo.head();
    let gw = Gateway::start(&repo, "[registry]\nmax_fetch_bytes = 1048576\n").await;
    // Two megabytes that do not compress.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: String = (0..2_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    repo.write("assets/noise.txt", &noise);
    repo.commit("two megabytes of noise");
    let (code, answer) = sync(&gw).await;
    assert_eq!(code, 503, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("registry.max_fetch_bytes"),
        "{answer}"
    );
    let (_, status) = gw.get("/v1/registry/status").await;
    assert_eq!(status["serving_commit"], good.as_str(), "{status}");
}
