//! Consuming from the embedded store: groups share or fan out, acks stick, leases expire, and
//! long polls wake up when a message arrives.

mod common;

use std::time::Duration;

use common::{eventually, orders_repo, valid_order, Gateway};
use serde_json::json;

fn offsets(messages: &[serde_json::Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn consumers_of_a_group_share_the_work_and_every_group_sees_everything() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    for i in 0..6 {
        assert_eq!(
            gw.produce("orders", &valid_order(&i.to_string())).await.0,
            201
        );
    }
    let first = gw.consume("orders", "workers", 3).await;
    let second = gw.consume("orders", "workers", 10).await;
    assert_eq!(offsets(&first), vec![0, 1, 2]);
    assert_eq!(offsets(&second), vec![3, 4, 5]);
    assert!(gw.consume("orders", "workers", 10).await.is_empty());

    let audit = gw.consume("orders", "audit", 10).await;
    assert_eq!(offsets(&audit), vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn acked_messages_stay_acked_and_unacked_ones_come_back_after_the_timeout() {
    let repo = orders_repo("ack_timeout = \"300ms\"");
    let gw = Gateway::start(&repo, "").await;
    for i in 0..3 {
        gw.produce("orders", &valid_order(&i.to_string())).await;
    }
    let delivered = gw.consume("orders", "g", 10).await;
    assert_eq!(offsets(&delivered), vec![0, 1, 2]);
    let ack = gw.ack("orders", "g", &[0, 2, 99]).await;
    assert_eq!(ack, json!({"acked": 2, "unknown": [99]}));

    let again = eventually(Duration::from_secs(5), || async {
        let messages = gw.consume("orders", "g", 10).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(offsets(&again), vec![1]);
    assert_eq!(again[0]["delivery"], 2);
}

#[tokio::test]
async fn nack_with_delay_redelivers_after_the_delay() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    gw.produce("orders", &valid_order("n")).await;
    assert_eq!(gw.consume("orders", "g", 1).await.len(), 1);
    let (status, body) = gw
        .post_json(
            "/v1/stations/orders/nack",
            &json!({"group": "g", "offsets": [0], "delay_ms": 200}),
        )
        .await;
    assert_eq!((status, body["acked"].as_u64()), (200, Some(1)));
    let again = eventually(Duration::from_secs(5), || async {
        let messages = gw.consume("orders", "g", 1).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(again[0]["delivery"], 2);
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_message_arrives() {
    let repo = orders_repo("");
    let gw = std::sync::Arc::new(Gateway::start(&repo, "").await);
    let poller = {
        let gw = gw.clone();
        tokio::spawn(async move {
            gw.get("/v1/stations/orders/messages?group=g&max=5&wait_ms=10000")
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !poller.is_finished(),
        "the poll waits while the station is empty"
    );
    gw.produce("orders", &valid_order("late")).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("the poll returns once a message arrives")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["messages"][0]["value"]["order_id"], "late");
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
