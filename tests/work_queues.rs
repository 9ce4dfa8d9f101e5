//! The embedded store as a work queue: competing consumers share a group's messages, a poison
//! message reaches the DLQ after `max_deliveries` instead of looping, first delivery can be
//! delayed, and leases, delivery counts and delays survive a restart.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{eventually, orders_repo, valid_order, Gateway};
use serde_json::{json, Value};

fn offsets(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

async fn produce_with(gw: &Gateway, order: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    gw.post_bytes(
        "/v1/stations/orders/messages",
        "application/json",
        serde_json::to_vec(order).unwrap(),
        headers,
    )
    .await
}

/// Waits for the next non-empty consume of `group`.
async fn next_messages(gw: &Gateway, group: &str) -> Vec<Value> {
    eventually(Duration::from_secs(10), || async {
        let messages = gw.consume("orders", group, 10).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await
}

#[tokio::test]
async fn competing_consumers_get_disjoint_messages_and_another_group_gets_all() {
    let repo = orders_repo("");
    let gw = std::sync::Arc::new(Gateway::start(&repo, "").await);
    for i in 0..60 {
        assert_eq!(
            gw.produce("orders", &valid_order(&i.to_string())).await.0,
            201
        );
    }
    // Two workers of one group pull concurrently, a few at a time, acking what they get.
    let worker = |gw: std::sync::Arc<Gateway>| async move {
        let mut mine = Vec::new();
        loop {
            let messages = gw.consume("orders", "workers", 4).await;
            if messages.is_empty() {
                return mine;
            }
            let got = offsets(&messages);
            gw.ack("orders", "workers", &got).await;
            mine.extend(got);
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(worker(gw.clone())),
        tokio::spawn(worker(gw.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_set: BTreeSet<u64> = a.iter().copied().collect();
    let b_set: BTreeSet<u64> = b.iter().copied().collect();
    assert!(a_set.is_disjoint(&b_set), "a: {a:?}\nb: {b:?}");
    assert_eq!(
        a.len() + b.len(),
        60,
        "every message went to exactly one worker"
    );
    assert_eq!(a_set.union(&b_set).count(), 60);

    let audit = gw.consume("orders", "audit", 100).await;
    assert_eq!(offsets(&audit), (0..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dlq_after_max_deliveries_not_to_a_worker() {
    let repo = orders_repo("ack_timeout = \"100ms\"\nmax_deliveries = 3");
    let gw = Gateway::start(&repo, "").await;
    gw.produce("orders", &valid_order("poison")).await;
    gw.produce("orders", &valid_order("fine")).await;

    // A worker that crashes on "poison" (never acks it) and acks everything else.
    let mut poison_deliveries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, dlq) = gw.get("/v1/stations/orders/dlq").await;
        assert_eq!(status, 200);
        if !dlq["dead_letters"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message never reached the DLQ"
        );
        for message in gw.consume("orders", "workers", 10).await {
            if message["value"]["order_id"] == "poison" {
                poison_deliveries.push(message["delivery"].as_u64().unwrap());
            } else {
                gw.ack("orders", "workers", &[message["offset"].as_u64().unwrap()])
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        poison_deliveries,
        vec![1, 2, 3],
        "delivered max_deliveries times, then no more"
    );

    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    let letters = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{dlq}");
    assert_eq!(letters[0]["error"], "max_deliveries");
    assert_eq!(letters[0]["value"]["order_id"], "poison");
    let reason = letters[0]["violations"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("3 times") && reason.contains("`workers`"),
        "{reason}"
    );

    // Well past another lease: the group never sees it again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gw.consume("orders", "workers", 10).await.is_empty());
    // Another group is not affected by the first group's failures.
    let audit = gw.consume("orders", "audit", 10).await;
    assert_eq!(offsets(&audit), vec![0, 1]);
}

#[tokio::test]
async fn deliver_after_delays_the_first_delivery() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let produced = Instant::now();
    let (status, body) = produce_with(
        &gw,
        &valid_order("later"),
        &[("Sluice-Deliver-After", "800ms")],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let at = (std::time::SystemTime::now() + Duration::from_millis(800))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let rfc3339 = jiff::Timestamp::from_millisecond(at as i64)
        .unwrap()
        .to_string();
    let (status, body) = produce_with(
        &gw,
        &valid_order("at-a-time"),
        &[("Sluice-Deliver-After", &rfc3339)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    gw.produce("orders", &valid_order("now")).await;

    let first = gw.consume("orders", "g", 10).await;
    assert_eq!(
        offsets(&first),
        vec![2],
        "only the undelayed message is delivered at once"
    );
    gw.ack("orders", "g", &[2]).await;
    let mut delayed = Vec::new();
    while delayed.len() < 2 {
        delayed.extend(next_messages(&gw, "g").await);
    }
    assert!(
        produced.elapsed() >= Duration::from_millis(800),
        "delivered before its time"
    );
    assert_eq!(offsets(&delayed), vec![0, 1]);
    assert!(delayed.iter().all(|m| m["delivery"] == 1), "{delayed:?}");

    let (status, body) = produce_with(
        &gw,
        &valid_order("x"),
        &[("Sluice-Deliver-After", "soonish")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("RFC 3339"),
        "{body}"
    );
}

#[tokio::test]
async fn a_batch_takes_deliver_after_for_every_item() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let batch = json!([{"value": valid_order("a")}, {"value": valid_order("b")}]);
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/json",
            serde_json::to_vec(&batch).unwrap(),
            &[("Sluice-Deliver-After", "1h")],
        )
        .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    assert!(gw.consume("orders", "g", 10).await.is_empty());
}

#[tokio::test]
async fn nack_delays_and_deliver_after_survive_a_restart() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    gw.produce("orders", &valid_order("nacked")).await;
    produce_with(
        &gw,
        &valid_order("delayed"),
        &[("Sluice-Deliver-After", "1h")],
    )
    .await;
    gw.produce("orders", &valid_order("acked")).await;
    let delivered = gw.consume("orders", "g", 10).await;
    assert_eq!(offsets(&delivered), vec![0, 2]);
    gw.ack("orders", "g", &[2]).await;
    let (status, _) = gw
        .post_json(
            "/v1/stations/orders/nack",
            &json!({"group": "g", "offsets": [0], "delay_ms": 3_600_000}),
        )
        .await;
    assert_eq!(status, 200);
    let data = gw.stop().await;

    let gw = Gateway::start_with_data(&repo, "", data).await;
    let (status, body) = gw
        .get("/v1/stations/orders/messages?group=g&max=10&wait_ms=500")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["messages"],
        json!([]),
        "the nack delay and the deliver-after time held across the restart"
    );
    // A new group is not held back by the first group's nack.
    assert_eq!(
        offsets(&gw.consume("orders", "other", 10).await),
        vec![0, 2]
    );
}
