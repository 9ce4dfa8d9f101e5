//! The embedded store as a work queue, beyond the station contract every backend keeps
//! (`tests/stations`): `Sluice-Deliver-After` in both its forms and on batches, and acked
//! positions, leases, delivery counts and delays that survive a restart.

mod common;

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

#[tokio::test]
async fn acked_positions_and_leases_survive_a_restart() {
    let repo = orders_repo("ack_timeout = \"300ms\"");
    let gw = Gateway::start(&repo, "").await;
    for i in 0..4 {
        gw.produce("orders", &valid_order(&i.to_string())).await;
    }
    let delivered = gw.consume("orders", "g", 4).await;
    assert_eq!(delivered.len(), 4);
    gw.ack("orders", "g", &[0, 1, 3]).await;
    let data = gw.stop().await;

    let gw = Gateway::start_with_data(&repo, "", data).await;
    // Offset 2 was delivered but never acked: it comes back once its lease expires, as a second
    // delivery; the acked ones never do.
    let again = eventually(Duration::from_secs(5), || async {
        let messages = gw.consume("orders", "g", 10).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(offsets(&again), vec![2]);
    assert_eq!(again[0]["delivery"], 2, "the delivery count survived");
}
