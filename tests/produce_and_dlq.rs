//! Producing over HTTP: what producers are answered, what the station and its dead-letter queue
//! then hold, and what a consumer reads back.

mod common;

use common::{first_reason, orders_repo, valid_order, Gateway, Repo, ORDER_SCHEMA};
use serde_json::json;

#[tokio::test]
async fn valid_is_stored_invalid_is_dead_lettered_and_consumers_see_only_the_valid() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;

    let (status, body) = gw.produce("orders", &valid_order("A1")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"station": "orders", "offset": 0, "schema_version": 1})
    );

    let (status, body) = gw
        .produce("orders", &json!({"order_id": "A2", "items": [{"qty": 0}]}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "schema_violation");
    assert_eq!(body["schema"], "orders");
    assert_eq!(body["version"], 1);
    assert_eq!(body["violations"][0]["path"], "/items/0/qty");
    assert!(first_reason(&body).contains("minimum"));
    let dlq_id = body["dlq_id"].as_str().expect("dlq_id").to_owned();

    let (status, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200, "{dlq}");
    let letters = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["id"], dlq_id);
    assert_eq!(letters[0]["error"], "schema_violation");
    assert_eq!(letters[0]["schema"], "orders");
    assert_eq!(letters[0]["schema_version"], 1);
    assert_eq!(letters[0]["violations"][0]["path"], "/items/0/qty");
    assert_eq!(
        letters[0]["value"],
        json!({"order_id": "A2", "items": [{"qty": 0}]})
    );
    assert!(letters[0]["received_at"].as_str().unwrap().ends_with('Z'));

    let messages = gw.consume("orders", "billing", 10).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["offset"], 0);
    assert_eq!(messages[0]["value"], valid_order("A1"));
    assert_eq!(messages[0]["schema_version"], 1);
    assert_eq!(messages[0]["delivery"], 1);
}

#[tokio::test]
async fn key_and_headers_travel_with_the_message() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let (status, _) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            valid_order("K").to_string().into_bytes(),
            &[
                ("Sluice-Key", "customer-7"),
                ("Sluice-Header-Trace-Id", "abc"),
            ],
        )
        .await;
    assert_eq!(status, 201);
    let messages = gw.consume("orders", "g", 10).await;
    assert_eq!(messages[0]["key"], "customer-7");
    assert_eq!(messages[0]["headers"], json!({"trace-id": "abc"}));
}

#[tokio::test]
async fn malformed_json_is_a_422_with_a_json_body_and_is_dead_lettered() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            b"{\"order_id\": ".to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "schema_violation");
    assert_eq!(body["violations"][0]["path"], "");
    assert!(first_reason(&body).starts_with("not valid JSON"));
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    let letter = &dlq["dead_letters"][0];
    assert_eq!(letter["id"], body["dlq_id"]);
    // Not JSON, so it comes back as the exact bytes, base64.
    assert_eq!(letter["value_base64"], "eyJvcmRlcl9pZCI6IA==");
    assert!(gw.consume("orders", "g", 10).await.is_empty());
}

#[tokio::test]
async fn request_errors_have_their_status_and_a_json_body() {
    let repo = orders_repo("");
    let gw = Gateway::start(
        &repo,
        "[limits]\nmax_message_bytes = 1024\nmax_batch_messages = 3\n",
    )
    .await;

    let (status, body) = gw.produce("nope", &valid_order("x")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_station"))
    );
    assert!(body["message"].as_str().unwrap().contains("nope"));

    let big = json!({"order_id": "x".repeat(2000), "items": []});
    let (status, body) = gw.produce("orders", &big).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );

    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "text/plain",
            b"hello".to_vec(),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/json",
            br#"{"value": 1}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));

    let four: Vec<_> = (0..4)
        .map(|i| json!({"value": valid_order(&i.to_string())}))
        .collect();
    let (status, body) = gw
        .post_json("/v1/stations/orders/messages:batch", &json!(four))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("too_many_messages"))
    );

    let (status, body) = gw.get("/v1/stations/orders/messages").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "group is required"
    );

    let (status, body) = gw.get("/v2/whatever").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    // Nothing above was stored; the gateway still answers.
    assert!(gw.consume("orders", "g", 10).await.is_empty());
    let (status, _) = gw.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_station_without_a_schema_passes_bytes_through_untouched() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let bytes: Vec<u8> = vec![0, 159, 146, 150, 255, b'{'];
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/raw/messages",
            "application/octet-stream",
            bytes.clone(),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schema_version"], serde_json::Value::Null);
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/raw/messages",
            "application/json",
            b"{\"any\":true}".to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let messages = gw.consume("raw", "g", 10).await;
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(messages[0]["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, bytes);
    assert_eq!(messages[1]["value"], json!({"any": true}));

    let (_, station) = gw.get("/v1/stations/raw").await;
    assert_eq!(station["pass_through"], true);
    assert_eq!(station["schema"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_batch_keeps_the_valid_items_and_answers_each() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let batch = json!([
        {"key": "a", "value": valid_order("a")},
        {"value": {"order_id": "b"}},
        {"value": valid_order("c"), "headers": {"source": "import"}},
    ]);
    let (status, body) = gw
        .post_json("/v1/stations/orders/messages:batch", &batch)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 1);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], 201);
    assert_eq!(results[0]["offset"], 0);
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["error"], "schema_violation");
    assert_eq!(
        results[1]["violations"][0]["reason"],
        "\"items\" is a required property"
    );
    assert_eq!(results[2]["status"], 201);
    assert_eq!(results[2]["offset"], 1);

    // NDJSON works the same way.
    let ndjson = format!(
        "{}\n{}\n",
        json!({"value": valid_order("d")}),
        json!({"value": {"items": []}})
    );
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/x-ndjson",
            ndjson.into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(1))
    );

    let values: Vec<_> = gw
        .consume("orders", "g", 10)
        .await
        .into_iter()
        .map(|m| m["value"]["order_id"].clone())
        .collect();
    assert_eq!(values, vec![json!("a"), json!("c"), json!("d")]);
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(dlq["dead_letters"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn producers_pick_among_accepted_versions() {
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("orders/v2.json", r#"{"type":"object","required":["order_id","total"]}"#),
        ("orders/schema.toml", "compatibility = \"none\"\n"),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\naccept = \">=1\"\n\n[[station]]\nname = \"strict\"\nschema = \"orders\"\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;
    let order = valid_order("v");
    // Without a header the newest accepted version judges: v2 wants a total.
    let (status, body) = gw.produce("orders", &order).await;
    assert_eq!((status, body["version"].as_u64()), (422, Some(2)));
    let header = |v: &'static str| [("Sluice-Schema-Version", v)];
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            order.to_string().into_bytes(),
            &header("1"),
        )
        .await;
    assert_eq!(
        (status, body["schema_version"].as_u64()),
        (201, Some(1)),
        "{body}"
    );
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            order.to_string().into_bytes(),
            &header("3"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unknown_schema_version"))
    );
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/strict/messages",
            "application/json",
            order.to_string().into_bytes(),
            &header("1"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("schema_version_not_accepted"))
    );
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            order.to_string().into_bytes(),
            &header("two"),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn json_schema_drafts_are_honoured_end_to_end() {
    let repo = Repo::new(&[
        (
            "pairs7/v1.json",
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":[{"type":"string"},{"type":"integer"}]}"#,
        ),
        (
            "pairs2020/v1.json",
            r#"{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false}"#,
        ),
        (
            "stations.toml",
            "[[station]]\nname = \"p7\"\nschema = \"pairs7\"\n[[station]]\nname = \"p2020\"\nschema = \"pairs2020\"\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;
    for station in ["p7", "p2020"] {
        assert_eq!(
            gw.produce(station, &json!(["a", 1])).await.0,
            201,
            "{station}"
        );
        let (status, body) = gw.produce(station, &json!([1, "a"])).await;
        assert_eq!(status, 422, "{station}");
        assert_eq!(body["violations"][0]["path"], "/0");
    }
    // 2020-12 `items: false` forbids extra elements; draft 7's array `items` allows them.
    assert_eq!(gw.produce("p7", &json!(["a", 1, "extra"])).await.0, 201);
    assert_eq!(gw.produce("p2020", &json!(["a", 1, "extra"])).await.0, 422);
}

#[tokio::test]
async fn a_station_whose_broker_is_unreachable_answers_503_with_retry_after() {
    let repo = Repo::new(&[(
        "stations.toml",
        "[[station]]\nname = \"k\"\nbackend = { kafka = \"topic\" }\n",
    )]);
    // Nothing listens on the port: the answer comes within the request timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let gw = Gateway::start(
        &repo,
        &format!("[kafka]\nbrokers = \"127.0.0.1:{port}\"\nrequest_timeout = \"1s\"\n"),
    )
    .await;
    let started = std::time::Instant::now();
    let response = gw
        .client
        .post(gw.url("/v1/stations/k/messages"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = common::answer(response).await;
    assert_eq!(body["error"], "backend_unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("kafka"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn consumers_and_the_dlq_get_the_producers_exact_json_bytes() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    // Key order, spacing and number spelling are the producer's, not a re-serialization.
    let sent = r#"{"order_id": "Z", "items": [{"qty": 1.0e0}], "a": 1}"#;
    let (status, _) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            sent.as_bytes().to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let raw = gw
        .client
        .get(gw.url("/v1/stations/orders/messages?group=g"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains(&format!("\"value\":{sent}")), "{raw}");
}

#[tokio::test]
async fn confluent_framed_json_is_judged_by_its_id_and_kept_framed() {
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        (
            "orders/v2.json",
            r#"{"type":"object","required":["total"]}"#,
        ),
        ("orders/schema.toml", "compatibility = \"none\"\n"),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\naccept = \">=1\"\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;
    let (_, schema) = gw.get("/v1/schemas/orders").await;
    let v1_id = schema["ids"][0].as_u64().unwrap() as u32;
    let mut framed = vec![0u8];
    framed.extend_from_slice(&v1_id.to_be_bytes());
    framed.extend_from_slice(valid_order("F").to_string().as_bytes());

    // v2 would refuse it (no total); the frame names v1, which accepts it.
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/vnd.confluent.json",
            framed.clone(),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["schema_version"].as_u64()),
        (201, Some(1)),
        "{body}"
    );
    let messages = gw.consume("orders", "g", 10).await;
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(messages[0]["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored, framed);

    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/vnd.confluent.json",
            framed.clone(),
            &[("Sluice-Schema-Version", "2")],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );

    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/vnd.confluent.json",
            b"{}".to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("magic byte"), "{body}");
}
