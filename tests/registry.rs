//! The registry as users see it: listings, dry-run validation, changes picked up from the schema
//! directory, bad changes refused whole, and dead letters replayed against today's schema.

mod common;

use std::time::Duration;

use common::{eventually, orders_repo, valid_order, Gateway, Repo, ORDER_SCHEMA};
use serde_json::json;

#[tokio::test]
async fn schemas_and_stations_are_listed() {
    let repo = Repo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        ("schemas/orders/v2.json", ORDER_SCHEMA),
        ("schemas/orders/schema.toml", "compatibility = \"full\"\n"),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\naccept = 1\nretention = { max_age = \"1h\" }\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;
    let (status, body) = gw.get("/v1/schemas").await;
    assert_eq!(status, 200);
    assert_eq!(body["schemas"][0]["name"], "orders");
    assert_eq!(body["schemas"][0]["format"], "json_schema");
    assert_eq!(body["schemas"][0]["versions"], json!([1, 2]));
    assert_eq!(body["schemas"][0]["compatibility"], "full");

    let (status, body) = gw.get("/v1/schemas/orders/versions/latest").await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 2);
    assert_eq!(body["file"], "schemas/orders/v2.json");
    assert_eq!(body["schema"], ORDER_SCHEMA);
    assert_eq!(gw.get("/v1/schemas/orders/versions/9").await.0, 404);
    assert_eq!(gw.get("/v1/schemas/nope").await.0, 404);

    gw.produce("orders", &valid_order("x")).await;
    let (status, body) = gw.get("/v1/stations").await;
    assert_eq!(status, 200);
    let station = &body["stations"][0];
    assert_eq!(station["name"], "orders");
    assert_eq!(station["schema"], "orders");
    assert_eq!(station["accept"], "1");
    assert_eq!(station["accepted_versions"], json!([1, 1]));
    assert_eq!(station["backend"], "embedded");
    assert_eq!(station["messages"]["messages"], 1);
    assert_eq!(station["dead_letters"]["messages"], 0);
}

#[tokio::test]
async fn dry_run_validation_stores_nothing() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let (status, body) = gw
        .post_json(
            "/v1/schemas/orders/validate",
            &json!({"order_id": 1, "items": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    assert_eq!(body["version"], 1);
    assert_eq!(body["violations"][0]["path"], "/order_id");
    let (status, body) = gw
        .post_json("/v1/schemas/orders/validate?version=1", &valid_order("ok"))
        .await;
    assert_eq!((status, body["valid"].as_bool()), (200, Some(true)));
    assert_eq!(
        gw.post_json("/v1/schemas/nope/validate", &json!({}))
            .await
            .0,
        404
    );
    assert!(gw.consume("orders", "g", 10).await.is_empty());
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert!(dlq["dead_letters"].as_array().unwrap().is_empty());
}

async fn replay(gw: &Gateway, dlq_id: &str) -> (u16, serde_json::Value) {
    gw.post_json(
        &format!("/v1/stations/orders/dlq/{dlq_id}/replay"),
        &json!({}),
    )
    .await
}

async fn revision(gw: &Gateway) -> String {
    gw.get("/v1/registry/status").await.1["serving"]["revision"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_bad_change_is_refused_whole_and_a_dead_letter_replays_after_a_good_one() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let first_revision = revision(&gw).await;

    // Rejected under v1: qty must be >= 1.
    let relaxed_order = json!({"order_id": "r", "items": [{"qty": 0}]});
    let (status, body) = gw.produce("orders", &relaxed_order).await;
    assert_eq!(status, 422);
    let dlq_id = body["dlq_id"].as_str().unwrap().to_owned();
    let (status, body) = replay(&gw, &dlq_id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("schema_violation")),
        "{body}"
    );

    // A change with a broken new version is refused whole: the old snapshot keeps serving.
    repo.write("orders/v2.json", "{ this is not json");
    let refusal = eventually(Duration::from_secs(10), || async {
        let (_, status) = gw.get("/v1/registry/status").await;
        let refusal = status["last_refusal"].clone();
        (!refusal.is_null()).then_some(refusal)
    })
    .await;
    assert_eq!(refusal["errors"][0]["file"], "orders/v2.json");
    assert_eq!(refusal["errors"][0]["rule"], "compile");
    assert_eq!(revision(&gw).await, first_revision);
    assert_eq!(gw.produce("orders", &valid_order("still")).await.0, 201);

    // The author fixes it: v2 accepts qty 0. The station (accept = latest) now judges with v2.
    repo.write(
        "orders/v2.json",
        r#"{"type":"object","required":["order_id"],"properties":{"items":{"type":"array"}}}"#,
    );
    eventually(Duration::from_secs(10), || async {
        (revision(&gw).await != first_revision).then_some(())
    })
    .await;
    let (_, status) = gw.get("/v1/registry/status").await;
    assert!(status["last_refusal"].is_null(), "{status}");

    let (status, body) = replay(&gw, &dlq_id).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schema_version"], 2);
    let replayed_offset = body["offset"].as_u64().unwrap();
    let messages = gw.consume("orders", "g", 10).await;
    let replayed = messages
        .iter()
        .find(|m| m["offset"] == replayed_offset)
        .expect("replayed message is consumable");
    assert_eq!(replayed["value"], relaxed_order);

    let (status, body) = replay(&gw, &dlq_id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("already_replayed"))
    );
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(dlq["dead_letters"][0]["replayed_to"], replayed_offset);
    assert_eq!(
        gw.post_json("/v1/stations/orders/dlq/999/replay", &json!({}))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn dead_letters_are_paged() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    for i in 0..5 {
        gw.produce("orders", &json!({"order_id": i})).await;
    }
    let (_, page) = gw.get("/v1/stations/orders/dlq?max=2").await;
    assert_eq!(page["dead_letters"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], "2");
    let (_, page) = gw.get("/v1/stations/orders/dlq?from=4&max=2").await;
    assert_eq!(page["dead_letters"][0]["id"], "4");
    assert_eq!(page["dead_letters"].as_array().unwrap().len(), 1);
}
