//! `Sluice-Request-Id`: taken from the client or made by the gateway, echoed on every answer (HTTP
//! header, gRPC metadata), kept with the dead letters the request produced, and carried by the
//! request's log lines (`--log-format json`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::brokers::free_port;
use common::{eventually, orders_repo, sluice_binary, valid_order, Gateway};
use serde_json::{json, Value};
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::{AckRequest, ProduceRequest};

fn invalid_order(id: &str) -> Value {
    json!({"order_id": id, "items": [{"qty": 0}]})
}

async fn dead_letters(gw: &Gateway) -> Vec<Value> {
    let (status, body) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200, "{body}");
    body["dead_letters"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_request_id_is_echoed_and_kept_with_dead_letters() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let url = gw.url("/v1/stations/orders/messages");

    let sent = gw
        .client
        .post(&url)
        .header("sluice-request-id", "checkout-42")
        .json(&invalid_order("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 422);
    assert_eq!(sent.headers()["sluice-request-id"], "checkout-42");

    let made = gw
        .client
        .post(&url)
        .json(&invalid_order("b"))
        .send()
        .await
        .unwrap();
    let made_id = made.headers()["sluice-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(made_id.len() >= 16, "{made_id}");

    let batch = gw
        .client
        .post(gw.url("/v1/stations/orders/messages:batch"))
        .header("sluice-request-id", "batch-7")
        .json(&json!([{"value": valid_order("c")}, {"value": invalid_order("d")}]))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 200);
    assert_eq!(batch.headers()["sluice-request-id"], "batch-7");

    let letters = dead_letters(&gw).await;
    let ids: Vec<&str> = letters
        .iter()
        .map(|d| d["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["checkout-42", made_id.as_str(), "batch-7"]);

    // Valid messages do not carry it, and a replayed dead letter leaves it behind.
    let (status, body) = gw
        .post_json(
            &format!(
                "/v1/stations/orders/dlq/{}/replay",
                letters[0]["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(status, 422, "still invalid: {body}");
    let stored = gw.consume("orders", "readers", 10).await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0]["headers"].get("sluice-request-id").is_none(),
        "{}",
        stored[0]
    );

    // Every answer has one, errors included.
    let unknown = gw
        .client
        .get(gw.url("/v1/stations/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.headers().contains_key("sluice-request-id"));
}

#[tokio::test]
async fn grpc_calls_echo_the_request_id_and_dead_letters_keep_it() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let mut grpc = GatewayClient::connect(gw.grpc.clone()).await.unwrap();
    let request = |order: Value| {
        let mut request = tonic::Request::new(ProduceRequest {
            station: "orders".into(),
            payload: Bytes::from(order.to_string()),
            content_type: "application/json".into(),
            ..ProduceRequest::default()
        });
        request
            .metadata_mut()
            .insert("sluice-request-id", "grpc-1".parse().unwrap());
        request
    };
    let accepted = grpc.produce(request(valid_order("g"))).await.unwrap();
    assert_eq!(
        accepted.metadata().get("sluice-request-id").unwrap(),
        "grpc-1"
    );
    let refused = grpc.produce(request(invalid_order("h"))).await.unwrap_err();
    assert_eq!(
        refused.metadata().get("sluice-request-id").unwrap(),
        "grpc-1"
    );
    let letters = dead_letters(&gw).await;
    assert_eq!(letters[0]["request_id"], "grpc-1");
    // Calls other than Produce echo it too, and make one when the client sent none.
    let mut ack = tonic::Request::new(AckRequest {
        station: "orders".into(),
        group: "g".into(),
        offsets: vec![0],
        partition: None,
    });
    ack.metadata_mut()
        .insert("sluice-request-id", "grpc-ack".parse().unwrap());
    let acked = grpc.ack(ack).await.unwrap();
    assert_eq!(
        acked.metadata().get("sluice-request-id").unwrap(),
        "grpc-ack"
    );
    let unknown = grpc
        .ack(AckRequest {
            station: "nowhere".into(),
            group: "g".into(),
            offsets: vec![0],
            partition: None,
        })
        .await
        .unwrap_err();
    assert!(unknown.metadata().get("sluice-request-id").is_some());
}

#[test]
fn json_logs_carry_the_request_span() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let log_file = data.path().join("sluice.log");
    let (port, grpc_port) = (free_port(), free_port());
    let mut child = Command::new(sluice_binary())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env("SLUICE_SERVER_HTTP", format!("127.0.0.1:{port}"))
        .env("SLUICE_SERVER_GRPC", format!("127.0.0.1:{grpc_port}"))
        .env("SLUICE_REGISTRY_SOURCE", repo.path())
        .env("SLUICE_STORAGE_DIR", data.path().join("store"))
        .env("RUST_LOG", "info,sluice=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/v1/stations/orders/messages");
        eventually(Duration::from_secs(20), || async {
            let sent = client
                .post(&url)
                .header("sluice-request-id", "logged-1")
                .json(&invalid_order("x"))
                .send()
                .await
                .ok()?;
            (sent.status() == 422).then_some(())
        })
        .await;
        let mut grpc = GatewayClient::connect(format!("http://127.0.0.1:{grpc_port}"))
            .await
            .unwrap();
        let mut request = tonic::Request::new(ProduceRequest {
            station: "orders".into(),
            payload: Bytes::from(valid_order("y").to_string()),
            content_type: "application/json".into(),
            ..ProduceRequest::default()
        });
        request
            .metadata_mut()
            .insert("sluice-request-id", "logged-2".parse().unwrap());
        grpc.produce(request).await.unwrap();
    });
    let logged = |id: &'static str| {
        runtime.block_on(eventually(Duration::from_secs(10), || async {
            let text = std::fs::read_to_string(&log_file).ok()?;
            text.lines()
                .map(|line| {
                    serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"))
                })
                .find(|entry| entry["span"]["request_id"] == id)
        }))
    };
    let line = logged("logged-1");
    let grpc_line = logged("logged-2");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(line["span"]["station"], "orders", "{line}");
    assert_eq!(
        line["span"]["route"], "/v1/stations/{station}/messages",
        "{line}"
    );
    assert_eq!(line["span"]["status"], 422, "{line}");
    assert_eq!(line["span"]["schema"], "orders", "{line}");
    assert_eq!(line["span"]["version"], 1, "{line}");
    assert_eq!(line["span"]["outcome"], "rejected", "{line}");
    assert_eq!(line["level"], "DEBUG", "{line}");

    assert_eq!(grpc_line["span"]["method"], "gRPC", "{grpc_line}");
    assert_eq!(
        grpc_line["span"]["route"], "/sluice.v1.Gateway/Produce",
        "{grpc_line}"
    );
    assert_eq!(grpc_line["span"]["station"], "orders", "{grpc_line}");
    assert_eq!(grpc_line["span"]["outcome"], "accepted", "{grpc_line}");
    assert_eq!(grpc_line["span"]["version"], 1, "{grpc_line}");
    assert_eq!(grpc_line["span"]["status"], "OK", "{grpc_line}");
}
