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

/// A pipeline on `repo` with the embedded store in a temp dir, as `sluice serve` builds it
/// (fsync on: a write takes a moment to be acknowledged).
fn pipeline_on(
    repo: &std::path::Path,
    stations_extra: &str,
) -> (
    std::sync::Arc<sluice::pipeline::Pipeline>,
    tempfile::TempDir,
) {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("sluice.toml");
    let config = format!(
        "[registry]\nsource = {:?}\nwatch = false\n[storage]\ndir = {:?}\n{stations_extra}",
        repo.display().to_string(),
        data.path().join("store").display().to_string(),
    );
    std::fs::write(&file, config).unwrap();
    let config = sluice::config::Config::load(&file, true, std::iter::empty()).unwrap();
    let (pipeline, _syncer) = sluice::server::build_pipeline(&config).unwrap();
    (pipeline, data)
}

/// Polls `work` up to `polls` times, a little apart, then drops it unfinished: a caller that
/// stops waiting at some point of the work (a client gone, a deadline passed).
async fn give_up_after<F: std::future::Future>(work: F, polls: usize) {
    let mut work = std::pin::pin!(work);
    for _ in 0..polls {
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(work.as_mut().poll(cx))).await;
        if polled.is_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
}

/// However early or late a producer stops waiting, the message is stored once: the retry with
/// its key gets the first answer (never a second copy), and nothing is lost.
#[tokio::test]
async fn a_caller_that_stops_waiting_neither_doubles_nor_loses_a_message() {
    let repo = orders_repo("");
    let (pipeline, _data) = pipeline_on(repo.path(), "");
    let keyed = |i: usize| sluice::pipeline::Incoming {
        payload: Bytes::from(valid_order(&format!("d-{i}")).to_string()),
        content_type: Some("application/json".into()),
        idempotency_key: Some(format!("key-{i}")),
        ..Default::default()
    };
    let tries = 40;
    for i in 0..tries {
        give_up_after(pipeline.produce("orders", keyed(i)), i % 20 + 1).await;
        let retried = eventually(Duration::from_secs(10), || async {
            match pipeline.produce("orders", keyed(i)).await {
                Err(sluice::pipeline::PipelineError::IdempotencyKeyAbandoned) => None,
                answered => Some(answered),
            }
        })
        .await;
        assert!(retried.is_ok(), "{retried:?}");
    }
    let delivered = pipeline
        .consume("orders", "count", 1000, Duration::ZERO)
        .await
        .unwrap();
    let mut ids: Vec<String> = delivered
        .iter()
        .map(|d| serde_json::from_slice::<Value>(&d.record.value).unwrap()["order_id"].to_string())
        .collect();
    assert_eq!(ids.len(), tries, "one copy of each: {ids:?}");
    ids.dedup();
    assert_eq!(ids.len(), tries);
}

/// A replay whose caller stops waiting still settles its claim: the dead letter is forwarded
/// once, and a later replay says so instead of `replay_in_progress` for good.
#[tokio::test]
async fn a_replay_whose_caller_stops_waiting_leaves_no_claim_held() {
    let repo = orders_repo("ack_timeout = \"1s\"\nmax_deliveries = 1");
    let (pipeline, _data) = pipeline_on(repo.path(), "");
    for polls in 1..=12 {
        let order = valid_order(&format!("p-{polls}"));
        let message = sluice::pipeline::Incoming {
            payload: Bytes::from(order.to_string()),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let stored = pipeline.produce("orders", message).await.unwrap();
        // Delivered once and given back: with max_deliveries = 1 it becomes a dead letter, which
        // passes its schema and can be replayed.
        let group = format!("g-{polls}");
        let taken = pipeline
            .consume("orders", &group, 1000, Duration::ZERO)
            .await
            .unwrap();
        let position = taken
            .iter()
            .find(|d| d.position == stored.position)
            .expect("delivered")
            .position;
        pipeline
            .nack("orders", &group, &[position], Duration::ZERO)
            .await
            .unwrap();
        pipeline
            .consume("orders", &group, 1000, Duration::ZERO)
            .await
            .unwrap();
        let page = pipeline.dead_letters("orders", None, 1000).await.unwrap();
        let letter = page
            .letters
            .iter()
            .find(|l| serde_json::from_slice::<Value>(&l.record.value).unwrap() == order)
            .expect("dead-lettered")
            .id
            .to_string();
        give_up_after(pipeline.replay("orders", &letter), polls).await;
        let settled = eventually(Duration::from_secs(10), || async {
            match pipeline.replay("orders", &letter).await {
                Err(sluice::pipeline::PipelineError::ReplayInProgress { .. }) => None,
                answered => Some(answered),
            }
        })
        .await;
        assert!(
            matches!(
                settled,
                Err(sluice::pipeline::PipelineError::AlreadyReplayed { .. })
            ),
            "the first replay forwarded it: {settled:?}"
        );
    }
}
