//! Kafka stations against a real Kafka-protocol broker (`tansu`), read back with an independent
//! rdkafka consumer: valid messages land on the topic with Sluice's headers, invalid ones only on
//! the dead-letter topic; a frozen or killed broker gets 503s within the request timeout, never a
//! hang, and producing recovers on its own; every message answered 201 is on the broker.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::brokers::Kafka;
use common::{valid_order, Gateway, Repo, ORDER_SCHEMA};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

const STATIONS: &str = r#"
[[station]]
name = "orders"
schema = "orders"
backend = { kafka = "orders-topic" }

[[station]]
name = "framed"
schema = "orders"
backend = { kafka = "framed-topic" }
framing = "confluent"
"#;

/// A message read back from the broker.
#[derive(Debug)]
struct Read {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: HashMap<String, String>,
    offset: i64,
}

impl Read {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.value).unwrap()
    }
}

/// The messages of partition 0 of `topic`, read from the start with a consumer of its own: at
/// least `expected` of them, and any more that arrive within half a second after those.
async fn read_topic(brokers: &str, topic: &str, expected: usize) -> Vec<Read> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "sluice-tests-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&partitions).unwrap();
        let mut read = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let wait = if read.len() < expected {
                assert!(
                    std::time::Instant::now() < deadline,
                    "read {} of {expected} messages of {topic}",
                    read.len()
                );
                Duration::from_millis(200)
            } else {
                Duration::from_millis(500)
            };
            let Some(message) = consumer.poll(wait) else {
                if read.len() >= expected {
                    return read;
                }
                continue;
            };
            let message = message.unwrap();
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| {
                            let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_owned(), value.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            read.push(Read {
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().unwrap_or_default().to_vec(),
                headers,
                offset: message.offset(),
            });
        }
    })
    .await
    .unwrap()
}

/// The `order_id` of each message read.
fn order_ids(messages: &[Read]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.json()["order_id"].as_str().unwrap().to_owned())
        .collect()
}

fn repo() -> Repo {
    Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("stations.toml", STATIONS),
    ])
}

fn config(kafka: &Kafka, request_timeout: &str) -> String {
    format!(
        "[kafka]\nbrokers = \"{}\"\nrequest_timeout = \"{request_timeout}\"\n",
        kafka.brokers()
    )
}

#[tokio::test]
async fn valid_messages_reach_the_topic_with_headers_and_invalid_ones_only_the_dlq_topic() {
    let kafka = Kafka::start();
    let gw = Gateway::start(&repo(), &config(&kafka, "10s")).await;

    let (status, first) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            serde_json::to_vec(&valid_order("k-1")).unwrap(),
            &[("Sluice-Key", "customer-1"), ("Sluice-Header-Trace", "t-1")],
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["partition"], 0);
    assert_eq!(first["schema_version"], 1);
    let (status, rejected) = gw
        .produce(
            "orders",
            &json!({"order_id": "k-bad", "items": [{"qty": 0}]}),
        )
        .await;
    assert_eq!(status, 422, "{rejected}");
    assert_eq!(rejected["violations"][0]["path"], "/items/0/qty");
    let batch = format!(
        "{}\n{}\n",
        json!({"value": valid_order("k-2")}),
        json!({"value": valid_order("k-3")})
    );
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/x-ndjson",
            batch.into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["accepted"], 2, "{answer}");

    // A retry with the same Idempotency-Key is answered with the first copy and sent once.
    let keyed = || {
        gw.post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            serde_json::to_vec(&valid_order("k-4")).unwrap(),
            &[("Idempotency-Key", "k-4")],
        )
    };
    let (once, twice) = (keyed().await, keyed().await);
    assert_eq!((once.0, twice.0), (201, 201));
    assert_eq!(once.1["offset"], twice.1["offset"]);

    let (_, schema) = gw.get("/v1/schemas/orders/versions/1").await;
    let schema_id = schema["id"].to_string();

    let topic = read_topic(&kafka.brokers(), "orders-topic", 4).await;
    assert_eq!(order_ids(&topic), ["k-1", "k-2", "k-3", "k-4"]);
    let message = &topic[0];
    assert_eq!(message.offset, first["offset"].as_i64().unwrap());
    assert_eq!(message.key.as_deref(), Some(&b"customer-1"[..]));
    assert_eq!(message.headers["sluice-schema"], "orders");
    assert_eq!(message.headers["sluice-schema-version"], "1");
    assert_eq!(message.headers["sluice-schema-id"], schema_id);
    assert_eq!(message.headers["content-type"], "application/json");
    assert_eq!(message.headers["trace"], "t-1");

    let dead = read_topic(&kafka.brokers(), "orders-topic.dlq", 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].json()["order_id"], "k-bad");
    assert_eq!(dead[0].headers["sluice-error"], "schema_violation");
    assert_eq!(dead[0].headers["sluice-station"], "orders");
    assert!(
        dead[0].headers["sluice-reason"].starts_with("/items/0/qty: "),
        "{:?}",
        dead[0].headers
    );
    let violations: Value = serde_json::from_str(&dead[0].headers["sluice-violations"]).unwrap();
    assert_eq!(violations[0]["path"], "/items/0/qty");

    // A Confluent-framed station: magic byte 0, the version's id, then the JSON.
    assert_eq!(gw.produce("framed", &valid_order("f-1")).await.0, 201);
    let framed = read_topic(&kafka.brokers(), "framed-topic", 1).await;
    assert_eq!(framed.len(), 1);
    assert_eq!(framed[0].value[0], 0);
    let id = u32::from_be_bytes(framed[0].value[1..5].try_into().unwrap());
    assert_eq!(id.to_string(), schema_id);
    assert_eq!(
        framed[0].headers["content-type"],
        "application/vnd.confluent"
    );
    let body: Value = serde_json::from_slice(&framed[0].value[5..]).unwrap();
    assert_eq!(body["order_id"], "f-1");
}

/// A batch far larger than one send: valid messages reach the topic in the order sent, with
/// consecutive offsets answered, and the invalid ones between them only the dead-letter topic.
#[tokio::test]
async fn a_large_mixed_batch_lands_in_order_and_its_invalid_messages_only_in_the_dlq() {
    let kafka = Kafka::start();
    let gw = Gateway::start(&repo(), &config(&kafka, "10s")).await;
    let batch = gw.produce_mixed_batch("orders", 1_000, 9).await;
    let topic = read_topic(&kafka.brokers(), "orders-topic", batch.valid.len()).await;
    assert_eq!(order_ids(&topic), batch.valid);
    assert_eq!(topic[0].offset as u64, batch.first_offset);
    let dead = read_topic(&kafka.brokers(), "orders-topic.dlq", batch.invalid.len()).await;
    assert_eq!(order_ids(&dead), batch.invalid);
}

#[tokio::test]
async fn a_frozen_broker_gets_503s_then_201s_again_and_every_201_is_on_the_broker() {
    let kafka = Kafka::start_in_memory();
    let gw = Gateway::start(&repo(), &config(&kafka, "2s")).await;
    let mut answered_201 = gw.produce_orders("orders", "before", 5).await;
    assert_eq!(gw.get("/readyz").await.0, 200);

    kafka.freeze();
    gw.expect_backend_unavailable("orders", Duration::from_secs(6))
        .await;
    gw.wait_readiness(503).await;

    kafka.thaw();
    answered_201.push(gw.produce_until_accepted("orders", "after").await);
    answered_201.extend(gw.produce_orders("orders", "resumed", 5).await);
    assert_eq!(gw.get("/readyz").await.0, 200);

    let on_broker: Vec<String> = read_topic(&kafka.brokers(), "orders-topic", answered_201.len())
        .await
        .iter()
        .map(|m| m.json()["order_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &answered_201 {
        assert!(
            on_broker.contains(id),
            "{id} got a 201 but is not on the broker"
        );
    }
}

#[tokio::test]
async fn a_killed_broker_gets_503s_and_producing_resumes_when_it_is_back() {
    let mut kafka = Kafka::start_in_memory();
    let gw = Gateway::start(&repo(), &config(&kafka, "2s")).await;
    gw.produce_orders("orders", "up", 1).await;

    kafka.kill();
    gw.expect_backend_unavailable("orders", Duration::from_secs(6))
        .await;
    gw.wait_readiness(503).await;

    // A new broker on the same address (its memory storage starts empty).
    kafka.start_again();
    let back = gw.produce_until_accepted("orders", "back").await;
    gw.wait_readiness(200).await;
    let on_broker: Vec<String> = read_topic(&kafka.brokers(), "orders-topic", 1)
        .await
        .iter()
        .map(|m| m.json()["order_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(on_broker.contains(&back), "{back} got a 201: {on_broker:?}");
}

#[tokio::test]
async fn a_backend_at_its_in_flight_limit_answers_503_at_once_instead_of_queueing() {
    let kafka = Kafka::start();
    let config = config(&kafka, "3s") + "\n[limits]\nmax_in_flight_messages = 1\n";
    let gw = std::sync::Arc::new(Gateway::start(&repo(), &config).await);
    gw.produce_orders("orders", "warm", 1).await;

    // With the broker frozen, one of two producers holds the one slot until the request
    // timeout; the other is told to come back at once, without waiting for the broker.
    kafka.freeze();
    let timed = |id: &'static str| {
        let gw = gw.clone();
        async move {
            let started = std::time::Instant::now();
            let (status, body) = gw.produce("orders", &valid_order(id)).await;
            (status, body, started.elapsed())
        }
    };
    let (first, second) = tokio::join!(timed("a"), timed("b"));
    let (busy, held) = if first.0 == 503 && first.2 < second.2 {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(busy.0, 503, "{}", busy.1);
    assert!(
        busy.1["message"].as_str().unwrap().contains("busy"),
        "{}",
        busy.1
    );
    assert!(
        busy.2 < Duration::from_secs(1),
        "answered at once: {:?}",
        busy.2
    );
    assert_eq!(
        held.0, 503,
        "the held one times out on the frozen broker: {}",
        held.1
    );
    assert!(held.2 >= Duration::from_secs(2), "{:?}", held.2);
    kafka.thaw();
    gw.produce_until_accepted("orders", "after").await;
}
