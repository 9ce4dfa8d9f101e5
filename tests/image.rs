//! The container image (`deploy/Containerfile`, built by `scripts/image`) run with podman as a user
//! would: it starts with the example schemas on a volume, produces and consumes through its
//! published port, answers a refused message 422, stops cleanly on SIGTERM (exit code 0), and
//! after a restart still holds what it acknowledged. Podman runs with runc and cgroupfs, with the
//! containers.conf this machine's podman needs (`scripts/test` installs podman and runc).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{project_file, sluice_binary};
use serde_json::{json, Value};
use sluice::ingress::auth::token_hash;

const TOKEN: &str = "image-test-token";

/// A podman command with this test's containers.conf.
fn podman(conf: &Path) -> Command {
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf);
    command
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Removes the container, volume and image when the test ends, however it ends.
struct Cleanup {
    conf: std::path::PathBuf,
    container: String,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&self.conf)
            .args(["rm", "-f", "-t", "0", &self.container])
            .output();
        let _ = podman(&self.conf)
            .args(["volume", "rm", "-f", &self.volume])
            .output();
        let _ = podman(&self.conf).args(["rmi", "-f", &self.image]).output();
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the container answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Waits for `/readyz` to answer 200; how long it took.
async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    conf: &Path,
    container: &str,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await {
            if answer.status() == 200 {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = podman(conf).args(["logs", container]).output().unwrap();
    panic!(
        "the container never became ready:\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
}

#[tokio::test]
async fn the_image_serves_refuses_stops_cleanly_and_keeps_its_data_across_a_restart() {
    assert!(
        Command::new("podman").arg("--version").output().is_ok(),
        "podman is needed (scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n",
    )
    .unwrap();
    let id = std::process::id();
    let cleanup = Cleanup {
        conf: conf.clone(),
        container: format!("sluice-image-test-{id}"),
        volume: format!("sluice-image-test-{id}"),
        image: format!("localhost/sluice:test-{id}"),
    };

    let built = Command::new(project_file("scripts/image"))
        .arg(&cleanup.image)
        .env("SLUICE_BIN", sluice_binary())
        .env("CONTAINERS_CONF", &conf)
        .output()
        .unwrap();
    println!("{}", ok(built, "scripts/image"));

    // Listening beyond loopback needs tokens: the example config with one.
    let hash = token_hash(TOKEN);
    let example = std::fs::read_to_string(project_file("config/sluice.toml")).unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "{example}\n[[auth.tokens]]\nid = \"test\"\nsha256 = \"{hash}\"\n\
             produce = [\"*\"]\nconsume = [\"*\"]\nadmin = true\n"
        ),
    )
    .unwrap();
    let port = common::brokers::free_port();
    ok(
        podman(&conf)
            .args(["run", "-d", "--name", &cleanup.container])
            .args(["-p", &format!("127.0.0.1:{port}:8080")])
            .args(["-v", &format!("{}:/var/lib/sluice", cleanup.volume)])
            .args([
                "-v",
                &format!("{}:/etc/sluice/sluice.toml:ro", config.display()),
            ])
            .arg(&cleanup.image)
            .output()
            .unwrap(),
        "podman run",
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready_in = wait_ready(&client, &base, &conf, &cleanup.container).await;
    println!("start to ready: {} ms", ready_in.as_millis());

    let order = json!({"order_id": "C-1", "items": [{"sku": "tea", "qty": 2}]});
    let produce = format!("{base}/v1/stations/orders/messages");
    let (status, body) = call(
        &client,
        reqwest::Method::POST,
        produce.clone(),
        Some(order.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let refused = json!({"order_id": "C-2", "items": [{"sku": "tea", "qty": 0}]});
    let (status, body) = call(
        &client,
        reqwest::Method::POST,
        produce.clone(),
        Some(refused),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "schema_violation");
    let (status, _) = client
        .post(&produce)
        .json(&order)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401, "without the token");
    let read = format!("{base}/v1/stations/orders/messages?group=g1&max=10");
    let (status, body) = call(&client, reqwest::Method::GET, read, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["value"], order);

    ok(
        podman(&conf)
            .args(["stop", "-t", "30", &cleanup.container])
            .output()
            .unwrap(),
        "podman stop",
    );
    let exit = ok(
        podman(&conf)
            .args([
                "inspect",
                "--format",
                "{{.State.ExitCode}}",
                &cleanup.container,
            ])
            .output()
            .unwrap(),
        "podman inspect",
    );
    assert_eq!(exit, "0", "SIGTERM ends the gateway cleanly");

    ok(
        podman(&conf)
            .args(["start", &cleanup.container])
            .output()
            .unwrap(),
        "podman start",
    );
    wait_ready(&client, &base, &conf, &cleanup.container).await;
    let read = format!("{base}/v1/stations/orders/messages?group=after-restart&max=10");
    let (status, body) = call(&client, reqwest::Method::GET, read, None).await;
    assert_eq!(status, 200, "{body}");
    let values: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["value"])
        .collect();
    assert_eq!(values, [&order], "the volume kept the acknowledged message");
    let (_, dlq) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/stations/orders/dlq"),
        None,
    )
    .await;
    assert_eq!(dlq["dead_letters"].as_array().unwrap().len(), 1, "{dlq}");
    drop(cleanup);
}
