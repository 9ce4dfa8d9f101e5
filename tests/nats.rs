//! NATS JetStream stations against a real `nats-server`, read back with an independent async-nats
//! consumer: valid messages land on the subject's stream with Sluice's headers, invalid ones only
//! on the dead-letter subject, retries with one `Idempotency-Key` are stored once; a stopped server
//! gets 503s within the request timeout and producing recovers when it is back, with every message
//! answered 201 still on the stream.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use common::brokers::Nats;
use common::{valid_order, Gateway, Repo, ORDER_SCHEMA};
use futures_util::StreamExt;
use serde_json::{json, Value};

const STATIONS: &str = r#"
[[station]]
name = "orders"
schema = "orders"
backend = { nats = "orders.new" }
"#;

fn repo() -> Repo {
    Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("stations.toml", STATIONS),
    ])
}

fn config(nats: &Nats, extra: &str) -> String {
    format!(
        "[nats]\nurl = \"{}\"\nrequest_timeout = \"2s\"\n{extra}\n",
        nats.url()
    )
}

/// A message read back from a stream.
#[derive(Debug)]
struct Read {
    sequence: u64,
    value: Value,
    headers: async_nats::HeaderMap,
}

impl Read {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} in {:?}", self.headers))
            .to_string()
    }
}

/// Every message of `stream`, read with an ephemeral pull consumer of its own.
async fn read_stream(url: &str, stream: &str) -> Vec<Read> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let stream = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("stream {stream}: {e}"));
    let consumer = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut read = Vec::new();
    loop {
        let mut batch = consumer.fetch().max_messages(100).messages().await.unwrap();
        let before = read.len();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let info = message.info().unwrap();
            read.push(Read {
                sequence: info.stream_sequence,
                value: serde_json::from_slice(&message.payload).unwrap(),
                headers: message.headers.clone().unwrap_or_default(),
            });
            message.ack().await.unwrap();
        }
        if read.len() == before {
            return read;
        }
    }
}

fn ids(messages: &[Read]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.value["order_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn valid_messages_reach_the_stream_with_headers_and_invalid_ones_only_the_dlq() {
    let nats = Nats::start();
    let gw = Gateway::start(&repo(), &config(&nats, "")).await;

    let (status, first) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            serde_json::to_vec(&valid_order("n-1")).unwrap(),
            &[("Sluice-Key", "customer-1"), ("Sluice-Header-Trace", "t-1")],
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["offset"], 1, "the stream sequence");
    let (status, rejected) = gw
        .produce(
            "orders",
            &json!({"order_id": "n-bad", "items": [{"qty": 0}]}),
        )
        .await;
    assert_eq!(status, 422, "{rejected}");

    // Two tries of one message with one Idempotency-Key: JetStream keeps one.
    let retry = || {
        gw.post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            serde_json::to_vec(&valid_order("n-2")).unwrap(),
            &[("Idempotency-Key", "order-n-2")],
        )
    };
    let (status, once) = retry().await;
    assert_eq!(status, 201, "{once}");
    let (status, twice) = retry().await;
    assert_eq!(status, 201, "{twice}");
    assert_eq!(
        once["offset"], twice["offset"],
        "the retry names the first copy"
    );

    let (_, schema) = gw.get("/v1/schemas/orders/versions/1").await;
    let stored = read_stream(&nats.url(), "SLUICE_ORDERS_NEW").await;
    assert_eq!(ids(&stored), vec!["n-1", "n-2"]);
    let message = &stored[0];
    assert_eq!(message.sequence, 1);
    assert_eq!(message.header("sluice-schema"), "orders");
    assert_eq!(message.header("sluice-schema-version"), "1");
    assert_eq!(message.header("sluice-schema-id"), schema["id"].to_string());
    assert_eq!(message.header("content-type"), "application/json");
    assert_eq!(message.header("sluice-key"), "customer-1");
    assert_eq!(message.header("trace"), "t-1");
    assert_eq!(stored[1].header("Nats-Msg-Id"), "order-n-2");

    let dead = read_stream(&nats.url(), "SLUICE_ORDERS_NEW_DLQ").await;
    assert_eq!(ids(&dead), vec!["n-bad"]);
    assert_eq!(dead[0].header("sluice-error"), "schema_violation");
    assert!(dead[0]
        .header("sluice-reason")
        .starts_with("/items/0/qty: "));
}

/// A batch far larger than one send: valid messages reach the stream in the order sent, with
/// consecutive sequences answered, and the invalid ones between them only the dead-letter stream.
#[tokio::test]
async fn a_large_mixed_batch_lands_in_order_and_its_invalid_messages_only_in_the_dlq() {
    let nats = Nats::start();
    let gw = Gateway::start(&repo(), &config(&nats, "")).await;
    let batch = gw.produce_mixed_batch("orders", 1_000, 9).await;
    let stored = read_stream(&nats.url(), "SLUICE_ORDERS_NEW").await;
    assert_eq!(ids(&stored), batch.valid);
    assert_eq!(stored[0].sequence, batch.first_offset);
    let dead = read_stream(&nats.url(), "SLUICE_ORDERS_NEW_DLQ").await;
    assert_eq!(ids(&dead), batch.invalid);
}

#[tokio::test]
async fn a_stopped_server_gets_503s_and_every_201_is_on_the_stream_after_it_is_back() {
    let mut nats = Nats::start();
    let gw = Gateway::start(&repo(), &config(&nats, "")).await;
    let mut answered_201 = gw.produce_orders("orders", "before", 5).await;

    nats.kill();
    gw.expect_backend_unavailable("orders", Duration::from_secs(6))
        .await;
    gw.wait_readiness(503).await;

    nats.start_again();
    answered_201.push(gw.produce_until_accepted("orders", "back").await);
    answered_201.extend(gw.produce_orders("orders", "after", 5).await);
    assert_eq!(gw.get("/readyz").await.0, 200);

    let on_stream = ids(&read_stream(&nats.url(), "SLUICE_ORDERS_NEW").await);
    for id in &answered_201 {
        assert!(
            on_stream.contains(id),
            "{id} got a 201 but is not on the stream"
        );
    }
}

#[tokio::test]
async fn with_streams_required_a_subject_no_stream_holds_is_refused_until_one_does() {
    let nats = Nats::start();
    let gw = Gateway::start(&repo(), &config(&nats, "streams = \"require\"")).await;
    let (status, body) = gw.produce("orders", &valid_order("r-1")).await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("no JetStream stream holds subject `orders.new`"),
        "{message}"
    );

    // The operator creates the stream; the next message goes to it.
    let client = async_nats::connect(nats.url()).await.unwrap();
    jetstream::new(client)
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(gw.produce("orders", &valid_order("r-2")).await.0, 201);
    assert_eq!(ids(&read_stream(&nats.url(), "ORDERS").await), vec!["r-2"]);
}

/// Producer metadata JetStream cannot frame is refused with a 400 naming the header (the gateway
/// stays up and serves the station), a key that is not header text travels in base64, and a
/// dead letter whose failing property name holds a line break is kept with its reason escaped.
#[tokio::test]
async fn metadata_the_stream_cannot_frame_is_refused_and_any_reason_is_dead_lettered() {
    let nats = Nats::start();
    let stations = format!(
        "{STATIONS}\n[[station]]\nname = \"counts\"\nschema = \"counts\"\nbackend = {{ nats = \"counts.new\" }}\n"
    );
    let counts = r#"{"type":"object","additionalProperties":{"type":"integer"}}"#;
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("counts/v1.json", counts),
        ("stations.toml", &stations),
    ]);
    let gw = Gateway::start(&repo, &config(&nats, "")).await;

    let item = |extra: Value| {
        let mut item = json!({ "value": valid_order("m-1") });
        item.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        item.to_string()
    };
    let body = [
        item(json!({"headers": {"has space": "v"}})),
        item(json!({"headers": {"h": "a\r\nNats-Msg-Id: forged"}})),
        item(json!({"headers": {"Nats-Expected-Stream": "OTHER"}})),
        item(json!({"key": "line\nbreak"})),
    ]
    .join("\n");
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/x-ndjson",
            body.into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    for (i, name) in [(0, "has space"), (1, "h"), (2, "Nats-Expected-Stream")] {
        assert_eq!(results[i]["status"], 400, "{}", results[i]);
        assert_eq!(results[i]["error"], "invalid_header");
        let message = results[i]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{name}`")), "{message}");
    }
    assert_eq!(results[3]["status"], 201, "{}", results[3]);

    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            serde_json::to_vec(&valid_order("m-2")).unwrap(),
            &[("Sluice-Header-Nats-Rollup", "sub")],
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, refused) = gw
        .post_bytes(
            "/v1/stations/counts/messages",
            "application/json",
            br#"{"a\nb": "not a count"}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["dlq_id"].is_string(), "kept: {refused}");
    let dead = read_stream(&nats.url(), "SLUICE_COUNTS_NEW_DLQ").await;
    let reason = dead[0].header("sluice-reason");
    assert!(reason.starts_with("/a\\nb: "), "{reason}");

    assert_eq!(gw.produce("orders", &valid_order("m-3")).await.0, 201);
    let stored = read_stream(&nats.url(), "SLUICE_ORDERS_NEW").await;
    assert_eq!(ids(&stored), vec!["m-1", "m-3"]);
    assert_eq!(stored[0].header("sluice-key-base64"), "bGluZQpicmVhaw==");
}

/// A refused message whose dead letter cannot be stored (no stream holds the dead-letter subject
/// yet) is not answered as if it were kept: 503 with a retry, and the retry, once the stream
/// exists, is the usual 422 naming its dead letter.
#[tokio::test]
async fn a_dead_letter_that_cannot_be_stored_is_a_503_not_a_422() {
    let nats = Nats::start();
    let gw = Gateway::start(&repo(), &config(&nats, "streams = \"require\"")).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let stream_of = |name: &str, subject: &str| stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        ..Default::default()
    };
    js.create_stream(stream_of("ORDERS", "orders.new"))
        .await
        .unwrap();
    let invalid = json!({"order_id": "d-1", "items": [{"qty": 0}]});
    let (status, body) = gw.produce("orders", &invalid).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "dead_letter_not_kept");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("/items/0/qty"), "{message}");
    assert!(gw
        .metrics()
        .await
        .contains("sluice_dead_letters_not_kept_total"));

    js.create_stream(stream_of("ORDERS_DLQ", "orders.new.dlq"))
        .await
        .unwrap();
    let (status, body) = gw.produce("orders", &invalid).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["dlq_id"].is_string(), "{body}");
    assert_eq!(
        ids(&read_stream(&nats.url(), "ORDERS_DLQ").await),
        vec!["d-1"]
    );
}
