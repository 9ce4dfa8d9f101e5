//! Protobuf stations judged end to end, with messages made by Google's reference implementation
//! (`tests/fixtures/protobuf/make_fixtures.py`).

mod common;

use base64::Engine as _;
use common::{first_reason, fixture, fixture_bytes, Gateway};
use serde_json::Value;

const PROTOBUF: &str = "application/x-protobuf";

fn message(name: &str) -> Vec<u8> {
    fixture_bytes(&format!("protobuf/messages/{name}"))
}

async fn gateway() -> Gateway {
    Gateway::start(fixture("protobuf/repo"), "").await
}

async fn send(gw: &Gateway, station: &str, content_type: &str, name: &str) -> (u16, Value) {
    gw.send_fixture(station, content_type, &format!("protobuf/messages/{name}"))
        .await
}

#[tokio::test]
async fn valid_binary_and_json_orders_are_stored_as_sent() {
    let gw = gateway().await;
    let (status, body) = send(&gw, "orders", PROTOBUF, "order_valid.bin").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(&gw, "orders", "application/json", "order_valid.json").await;
    assert_eq!(status, 201, "{body}");

    let messages = gw.consume("orders", "g", 10).await;
    let binary = base64::engine::general_purpose::STANDARD
        .decode(messages[0]["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(binary, message("order_valid.bin"));
    assert_eq!(messages[1]["value"]["orderId"], "A-1");
}

#[tokio::test]
async fn json_is_normalized_to_the_reference_binary_encoding_when_asked() {
    let gw = gateway().await;
    let (status, body) = send(&gw, "orders-binary", "application/json", "order_plain.json").await;
    assert_eq!(status, 201, "{body}");
    let messages = gw.consume("orders-binary", "g", 10).await;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(messages[0]["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored, message("order_plain.bin"));
}

#[tokio::test]
async fn broken_binary_messages_are_422_with_the_reason_and_dead_lettered() {
    let gw = gateway().await;
    for (name, expected) in [
        (
            "order_truncated.bin",
            "not a valid binary acme.Order message",
        ),
        ("order_wrong_wire_type.bin", "wire type"),
        ("order_invalid_utf8.bin", "UTF-8"),
        ("garbage.bin", "not a valid binary acme.Order message"),
        (
            "order_huge_length.bin",
            "not a valid binary acme.Order message",
        ),
    ] {
        let (status, body) = send(&gw, "orders", PROTOBUF, name).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert!(first_reason(&body).contains(expected), "{name}: {body}");
        assert!(body["dlq_id"].is_string(), "{name}: {body}");
    }
    assert_eq!(gw.get("/healthz").await.0, 200);
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    let first = &dlq["dead_letters"][0];
    assert_eq!(first["content_type"], PROTOBUF);
    let kept = base64::engine::general_purpose::STANDARD
        .decode(first["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        kept,
        message("order_truncated.bin"),
        "the DLQ keeps the original bytes"
    );
    assert!(gw.consume("orders", "g", 10).await.is_empty());
}

#[tokio::test]
async fn unknown_fields_are_violations_naming_the_field() {
    let gw = gateway().await;
    let (status, body) = send(&gw, "orders", PROTOBUF, "order_unknown_field.bin").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["path"], "/99");
    assert!(first_reason(&body).contains("field number 99"), "{body}");

    let (status, body) = send(
        &gw,
        "orders",
        "application/json",
        "order_unknown_field.json",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("discount"), "{body}");

    let (status, body) = send(&gw, "orders", "application/json", "order_wrong_type.json").await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn proto2_required_fields_are_enforced() {
    let gw = gateway().await;
    assert_eq!(
        send(&gw, "legacy", PROTOBUF, "legacy_valid.bin").await.0,
        201
    );
    let (status, body) = send(&gw, "legacy", PROTOBUF, "legacy_missing_required.bin").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["path"], "/id");
    assert!(
        first_reason(&body).contains("required field `id`"),
        "{body}"
    );
}

#[tokio::test]
async fn nesting_past_the_recursion_limit_is_refused_and_the_server_stays_healthy() {
    let gw = gateway().await;
    assert_eq!(send(&gw, "tree", PROTOBUF, "tree_shallow.bin").await.0, 201);
    let (status, body) = send(&gw, "tree", PROTOBUF, "tree_deep.bin").await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("recursion"), "{body}");
    assert_eq!(gw.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_protobuf_station_refuses_other_content_types() {
    let gw = gateway().await;
    let (status, body) = send(&gw, "orders", "text/plain", "order_valid.bin").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
}

#[tokio::test]
async fn confluent_framed_messages_are_judged_by_the_version_their_id_names() {
    const FRAMED: &str = "application/vnd.confluent.protobuf";
    let gw = gateway().await;
    let (status, body) = send(&gw, "orders", FRAMED, "order_framed.bin").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schema_version"], 1);
    let messages = gw.consume("orders", "g", 10).await;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(messages[0]["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        stored,
        message("order_framed.bin"),
        "framed bytes are kept as sent"
    );

    let (status, body) = send(&gw, "orders", FRAMED, "order_framed_wrong_message.bin").await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("name acme.LineItem"), "{body}");

    let (status, body) = send(&gw, "orders", FRAMED, "order_framed_unknown_id.bin").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("schema id 12345 is not a version of schema `orders`"),
        "{body}"
    );
}
