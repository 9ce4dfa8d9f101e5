//! `Idempotency-Key`: within the window a retry gets the first answer — the same offset, or the
//! same violation and dead letter — and nothing new is stored, also when the retries race each
//! other; after the window, the key is forgotten.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{eventually, orders_repo, produce_stream, valid_order, Gateway};
use serde_json::{json, Value};
use sluice::ingress::grpc::proto::produce_result::Outcome;
use sluice::ingress::grpc::proto::ProduceRequest;

async fn produce_with_key(gw: &Gateway, order: &Value, key: &str) -> (u16, Value) {
    gw.post_bytes(
        "/v1/stations/orders/messages",
        "application/json",
        serde_json::to_vec(order).unwrap(),
        &[("Idempotency-Key", key)],
    )
    .await
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_stores_nothing_new() {
    let gw = Gateway::start(&orders_repo(""), "").await;
    let (status, first) = produce_with_key(&gw, &valid_order("i-1"), "key-1").await;
    assert_eq!(status, 201, "{first}");
    let (status, retry) = produce_with_key(&gw, &valid_order("i-1"), "key-1").await;
    assert_eq!(status, 201);
    assert_eq!(retry, first, "the same answer");
    let (status, other) = produce_with_key(&gw, &valid_order("i-2"), "key-2").await;
    assert_eq!(status, 201);
    assert_ne!(other["offset"], first["offset"]);

    let invalid = json!({"order_id": "i-3", "items": [{"qty": 0}]});
    let (status, refused) = produce_with_key(&gw, &invalid, "key-3").await;
    assert_eq!(status, 422);
    let (status, refused_again) = produce_with_key(&gw, &invalid, "key-3").await;
    assert_eq!(status, 422);
    assert_eq!(refused_again["dlq_id"], refused["dlq_id"]);

    assert_eq!(gw.consume("orders", "check", 100).await.len(), 2);
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(dlq["dead_letters"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn racing_retries_are_stored_once() {
    let gw = std::sync::Arc::new(Gateway::start(&orders_repo(""), "").await);
    let tries: Vec<_> = (0..16)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { produce_with_key(&gw, &valid_order("r-1"), "race").await })
        })
        .collect();
    let mut offsets = Vec::new();
    for try_ in tries {
        let (status, body) = try_.await.unwrap();
        assert_eq!(status, 201, "{body}");
        offsets.push(body["offset"].clone());
    }
    offsets.dedup();
    assert_eq!(offsets.len(), 1, "every try names the one stored copy");
    assert_eq!(gw.consume("orders", "check", 100).await.len(), 1);
}

#[tokio::test]
async fn after_the_window_the_key_is_forgotten() {
    let gw = Gateway::start(
        &orders_repo(""),
        "[limits]\nidempotency_window = \"300ms\"\n",
    )
    .await;
    let (_, first) = produce_with_key(&gw, &valid_order("w-1"), "window").await;
    let later = eventually(Duration::from_secs(10), || async {
        let (status, body) = produce_with_key(&gw, &valid_order("w-1"), "window").await;
        assert_eq!(status, 201);
        (body["offset"] != first["offset"]).then_some(body)
    })
    .await;
    assert_ne!(later["offset"], first["offset"]);
}

#[tokio::test]
async fn a_key_repeated_within_one_grpc_stream_is_stored_once() {
    let gw = Gateway::start(&orders_repo(""), "").await;
    let request = |id: &str, key: &str| ProduceRequest {
        station: "orders".into(),
        payload: Bytes::from(serde_json::to_vec(&valid_order(id)).unwrap()),
        content_type: "application/json".into(),
        idempotency_key: key.into(),
        ..ProduceRequest::default()
    };
    let requests = vec![
        request("s-1", "a"),
        request("s-2", "b"),
        request("s-1", "a"),
    ];
    let mut offsets = Vec::new();
    for outcome in produce_stream(&gw, requests).await {
        match outcome {
            Outcome::Accepted(accepted) => offsets.push(accepted.offset),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(offsets.len(), 3);
    assert_eq!(offsets[0], offsets[2]);
    assert_ne!(offsets[0], offsets[1]);
    assert_eq!(gw.consume("orders", "check", 100).await.len(), 2);
}
