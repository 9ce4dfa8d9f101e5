//! Avro stations judged end to end, against messages written and JSON judged by fastavro
//! (`tests/fixtures/avro/make_fixtures.py` records fastavro's verdict in each JSON file's name).

mod common;

use base64::Engine as _;
use common::{first_reason, fixture, fixture_bytes, Gateway};
use serde_json::Value;

const AVRO: &str = "avro/binary";

fn message(name: &str) -> Vec<u8> {
    fixture_bytes(&format!("avro/messages/{name}"))
}

async fn gateway() -> Gateway {
    Gateway::start(fixture("avro/repo"), "").await
}

async fn send(gw: &Gateway, station: &str, content_type: &str, name: &str) -> (u16, Value) {
    gw.send_fixture(station, content_type, &format!("avro/messages/{name}"))
        .await
}

#[tokio::test]
async fn binary_datums_and_single_object_messages_are_accepted() {
    let gw = gateway().await;
    for name in ["click_valid.avro", "click_single_object.avro"] {
        let (status, body) = send(&gw, "clicks", AVRO, name).await;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let (status, body) = send(&gw, "payments", AVRO, "payment_valid.avro").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(gw.consume("clicks", "g", 10).await.len(), 2);
}

#[tokio::test]
async fn broken_binary_messages_are_422_with_the_reason() {
    let gw = gateway().await;
    for (station, name, expected) in [
        ("clicks", "click_trailing.avro", "2 bytes left over"),
        ("clicks", "click_truncated.avro", "not a valid Avro datum"),
        ("clicks", "click_bad_enum.avro", "not a valid Avro datum"),
        ("clicks", "garbage.avro", "not a valid Avro datum"),
        (
            "clicks",
            "click_unknown_fingerprint.avro",
            "no version of this schema",
        ),
        (
            "payments",
            "payment_bad_uuid.avro",
            "not a valid Avro datum",
        ),
        ("payments", "payment_bad_time.avro", "not a time of day"),
        ("payments", "payment_too_precise.avro", "precision is 6"),
    ] {
        let (status, body) = send(&gw, station, AVRO, name).await;
        assert_eq!(status, 422, "{name}: {body}");
        assert!(first_reason(&body).contains(expected), "{name}: {body}");
        assert!(body["dlq_id"].is_string(), "{name}: {body}");
    }
    assert!(gw.consume("clicks", "g", 10).await.is_empty());
}

#[tokio::test]
async fn a_hostile_length_prefix_is_refused_without_allocating_and_the_server_stays_healthy() {
    let gw = gateway().await;
    let (status, body) = send(&gw, "clicks", AVRO, "click_huge_string.avro").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("Unable to allocate 2147483648 bytes"),
        "{body}"
    );
    assert_eq!(gw.get("/healthz").await.0, 200);
    assert_eq!(send(&gw, "clicks", AVRO, "click_valid.avro").await.0, 201);
}

#[tokio::test]
async fn plain_json_is_judged_as_fastavro_judges_it() {
    let gw = gateway().await;
    let mut judged = 0;
    for entry in std::fs::read_dir(fixture("avro/messages")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let expected = if name.starts_with("valid_") {
            201
        } else if name.starts_with("invalid_") {
            422
        } else {
            continue;
        };
        let (status, body) = send(&gw, "clicks", "application/json", &name).await;
        assert_eq!(status, expected, "{name}: {body}");
        judged += 1;
    }
    assert_eq!(judged, 7);
}

#[tokio::test]
async fn json_violations_name_the_field_and_why() {
    let gw = gateway().await;
    let (_, body) = send(
        &gw,
        "clicks",
        "application/json",
        "invalid_click_map_value.json",
    )
    .await;
    assert_eq!(body["violations"][0]["path"], "/attrs/x");
    assert!(first_reason(&body).contains("expected a long"), "{body}");
    let (_, body) = send(
        &gw,
        "clicks",
        "application/json",
        "invalid_click_unknown_symbol.json",
    )
    .await;
    assert_eq!(body["violations"][0]["path"], "/kind");
    assert!(first_reason(&body).contains("VIEW"), "{body}");
    let (_, body) = send(
        &gw,
        "clicks",
        "application/json",
        "invalid_click_missing_page.json",
    )
    .await;
    assert_eq!(body["violations"][0]["path"], "/page");
}

#[tokio::test]
async fn the_avro_json_encoding_wraps_unions() {
    let gw = gateway().await;
    let (status, body) = send(
        &gw,
        "clicks-wrapped",
        "application/json",
        "wrapped_valid_click.json",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &gw,
        "clicks-wrapped",
        "application/json",
        "wrapped_invalid_unwrapped_union.json",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["path"], "/user");
    assert!(first_reason(&body).contains("wrapped"), "{body}");
}

#[tokio::test]
async fn confluent_framed_datums_are_accepted_and_kept_framed() {
    let gw = gateway().await;
    let (status, body) = send(
        &gw,
        "clicks",
        "application/vnd.confluent.avro",
        "click_framed.avro",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        &gw,
        "payments",
        "application/vnd.confluent.avro",
        "click_framed.avro",
    )
    .await;
    assert_eq!(status, 422, "another schema's id: {body}");
    assert!(
        first_reason(&body).contains("is not a version of schema `payments`"),
        "{body}"
    );
}

#[tokio::test]
async fn deeply_nested_recursive_datums_are_refused_before_decoding() {
    let gw = gateway().await;
    assert_eq!(send(&gw, "tree", AVRO, "tree_nested_50.avro").await.0, 201);
    assert_eq!(
        send(&gw, "tree", AVRO, "tree_nested_100.avro").await.0,
        201,
        "at the limit"
    );
    let (status, body) = send(&gw, "tree", AVRO, "tree_nested_500000.avro").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("nests deeper than 100"),
        "{body}"
    );
    assert_eq!(gw.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn json_is_normalized_to_the_same_binary_datum_fastavro_writes() {
    let gw = gateway().await;
    for (station, json_file, reference) in [
        ("clicks-binary", "valid_click.json", "click_valid.avro"),
        (
            "clicks-wrapped-binary",
            "wrapped_valid_click.json",
            "click_valid.avro",
        ),
        (
            "payments-binary",
            "payment_valid_plain.json",
            "payment_valid.avro",
        ),
    ] {
        let (status, body) = send(&gw, station, "application/json", json_file).await;
        assert_eq!(status, 201, "{station}: {body}");
        let messages = gw.consume(station, "g", 10).await;
        let stored = base64::engine::general_purpose::STANDARD
            .decode(messages[0]["value_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(stored, message(reference), "{station}");
    }
}

#[tokio::test]
async fn a_single_object_fingerprint_picks_the_version_that_wrote_it() {
    let gw = gateway().await;
    // Written by fastavro with v1; the station also accepts v2, the newest.
    let (status, body) = send(&gw, "clicks-evolving", AVRO, "click_single_object.avro").await;
    assert_eq!(
        (status, body["schema_version"].as_u64()),
        (201, Some(1)),
        "{body}"
    );
    // The same datum without its header is judged by v2, which has one more field.
    let (status, body) = send(&gw, "clicks-evolving", AVRO, "click_valid.avro").await;
    assert_eq!((status, body["version"].as_u64()), (422, Some(2)), "{body}");
}
