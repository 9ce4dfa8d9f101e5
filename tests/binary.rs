//! The real `sluice` binary: durability across SIGKILL, `sluice check`, and start-up errors.

mod common;

use std::process::Command;

use common::{answer, orders_repo, sluice_binary, valid_order, Process, Repo};

#[tokio::test]
async fn a_201_survives_sigkill_and_restart() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    let process = Process::serve(repo.path(), data.path());
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let response = client
            .post(format!("{}/v1/stations/orders/messages", process.base()))
            .json(&valid_order(&format!("order-{i}")))
            .send()
            .await
            .unwrap();
        let (status, body) = answer(response).await;
        assert_eq!(status, 201, "{body}");
        acknowledged.push(body["offset"].as_u64().unwrap());
    }
    process.kill();

    let process = Process::serve(repo.path(), data.path());
    let response = client
        .get(format!(
            "{}/v1/stations/orders/messages?group=after-crash&max=100",
            process.base()
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(response).await;
    assert_eq!(status, 200);
    let read: Vec<u64> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(read, acknowledged);
    assert_eq!(body["messages"][19]["value"]["order_id"], "order-19");
}

#[test]
fn check_passes_a_good_repository_and_lists_every_problem_of_a_bad_one() {
    let good = orders_repo("");
    let output = Command::new(sluice_binary())
        .args(["check"])
        .arg(good.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout)
        .starts_with("ok: 1 schemas, 1 versions, 2 stations"));

    let bad = Repo::new(&[
        ("orders/v1.json", "{ nope"),
        ("orders/v3.json", "{}"),
        ("clicks/v1.json", "{\"type\": \"nonsense\"}"),
        (
            "stations.toml",
            "[[station]]\nname = \"x\"\nschema = \"ghost\"\n",
        ),
    ]);
    let output = Command::new(sluice_binary())
        .args(["check"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("orders/v1.json: compile: not valid JSON")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("orders/v3.json: version_sequence:")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("clicks/v1.json: compile:")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("station `x`: no schema named `ghost`")),
        "{stdout}"
    );
}

#[test]
fn serve_refuses_a_bad_config_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[storage]\nfsync = \"always\"\nfsynk = 1\n").unwrap();
    let output = Command::new(sluice_binary())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("fsynk"), "{stderr}");
}

#[test]
fn serve_refuses_a_non_loopback_address_without_auth() {
    let repo = orders_repo("");
    for (http, grpc) in [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "0.0.0.0:0")] {
        let output = Command::new(sluice_binary())
            .args(["serve"])
            .env("SLUICE_SERVER_HTTP", http)
            .env("SLUICE_SERVER_GRPC", grpc)
            .env("SLUICE_REGISTRY_SOURCE", repo.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("only binds loopback"), "{stderr}");
        assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    }
}

#[test]
fn serve_refuses_a_repository_with_problems_and_says_which() {
    let repo = Repo::new(&[("orders/v1.json", "{ nope")]);
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(sluice_binary())
        .args(["serve"])
        .env("SLUICE_SERVER_HTTP", "127.0.0.1:0")
        .env("SLUICE_SERVER_GRPC", "127.0.0.1:0")
        .env("SLUICE_REGISTRY_SOURCE", repo.path())
        .env("SLUICE_STORAGE_DIR", data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("orders/v1.json: compile"), "{stderr}");
}
