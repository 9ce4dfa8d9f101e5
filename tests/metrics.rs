//! `GET /metrics` after real traffic: Prometheus text with the message, validation, backend,
//! dead-letter, registry, HTTP and gRPC series, each with the labels a dashboard would group by.

mod common;

use bytes::Bytes;
use common::{valid_order, Gateway, GitRepo, ORDER_SCHEMA};
use serde_json::json;
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::ProduceRequest;

/// The value of the series `name{labels}` (labels exactly as Prometheus text writes them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

fn expect(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

async fn scrape(gw: &Gateway) -> String {
    let response = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_messages_latencies_dead_letters_registry_and_requests() {
    let repo = GitRepo::new(&[
        ("schemas/metered/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"metered\"\nschema = \"metered\"\n\n[[station]]\nname = \"metered-raw\"\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;

    for id in ["m-1", "m-2", "m-3"] {
        assert_eq!(gw.produce("metered", &valid_order(id)).await.0, 201);
    }
    let (status, _) = gw
        .produce(
            "metered",
            &json!({"order_id": "bad", "items": [{"qty": 0}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(gw.produce("metered-raw", &json!({"any": 1})).await.0, 201);
    assert_eq!(gw.produce("nowhere", &json!({})).await.0, 404);

    let mut grpc = GatewayClient::connect(gw.grpc.clone()).await.unwrap();
    let request = |payload: serde_json::Value| ProduceRequest {
        station: "metered".into(),
        payload: Bytes::from(payload.to_string()),
        content_type: "application/json".into(),
        ..ProduceRequest::default()
    };
    grpc.produce(request(valid_order("g-1"))).await.unwrap();
    grpc.produce(request(json!({"order_id": 5})))
        .await
        .unwrap_err();
    // A batch of three: three messages produced, one validation sample (the request's mean).
    let batch: Vec<_> = ["b-1", "b-2", "b-3"]
        .map(|id| json!({"value": valid_order(id)}))
        .to_vec();
    let (status, body) = gw
        .post_json("/v1/stations/metered/messages:batch", &json!(batch))
        .await;
    assert_eq!(status, 200, "{body}");

    let (_, listing) = gw.get("/v1/stations/metered").await;
    assert_eq!(
        listing["produced"],
        json!({"accepted": 7, "rejected": 2, "errors": 0})
    );
    assert_eq!(listing["rates"]["interval_seconds"], 5);
    assert!(
        listing["rates"]["accepted_per_second"].as_f64().unwrap() > 0.0,
        "{listing}"
    );
    assert!(
        listing["rates"]["rejected_per_second"].as_f64().unwrap() > 0.0,
        "{listing}"
    );

    // A refused commit.
    repo.write("schemas/metered/v1.json", r#"{"type": "string"}"#);
    repo.commit("edit a published version");
    assert_eq!(gw.post_json("/v1/registry/sync", &json!({})).await.0, 200);

    let text = scrape(&gw).await;
    let messages = |station: &str, outcome: &str| {
        expect(
            &text,
            &format!("sluice_messages_total{{station=\"{station}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(messages("metered", "accepted"), 7.0);
    assert_eq!(messages("metered", "rejected"), 2.0);
    assert_eq!(messages("metered", "error"), 0.0);
    assert_eq!(messages("metered-raw", "accepted"), 1.0);
    assert_eq!(
        expect(&text, "sluice_dead_letters_total{station=\"metered\"}"),
        2.0
    );
    assert_eq!(expect(&text, "sluice_dlq_depth{station=\"metered\"}"), 2.0);

    let validations = expect(
        &text,
        "sluice_validation_seconds_count{format=\"json_schema\"}",
    );
    assert_eq!(validations, 7.0, "six single messages and one batch");
    assert!(
        text.contains("sluice_validation_seconds_bucket{format=\"json_schema\",le=\"0.001\"}"),
        "{text}"
    );
    assert!(
        expect(
            &text,
            "sluice_backend_append_seconds_count{backend=\"embedded\"}"
        ) >= 6.0
    );

    assert_eq!(expect(&text, "sluice_registry_ready"), 1.0);
    assert_eq!(expect(&text, "sluice_registry_schemas"), 1.0);
    assert_eq!(
        expect(&text, "sluice_registry_commits_total{outcome=\"served\"}"),
        1.0
    );
    assert_eq!(
        expect(&text, "sluice_registry_commits_total{outcome=\"refused\"}"),
        1.0
    );

    let http = |route: &str, method: &str, status: u16| {
        sample(
            &text,
            &format!(
                "sluice_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(http("/v1/stations/{station}/messages", "POST", 201), 4.0);
    assert_eq!(http("/v1/stations/{station}/messages", "POST", 422), 1.0);
    assert_eq!(http("/v1/stations/{station}/messages", "POST", 404), 1.0);
    assert_eq!(http("/v1/registry/sync", "POST", 200), 1.0);
    assert!(text.contains(
        "sluice_http_request_duration_seconds_count{route=\"/v1/stations/{station}/messages\"}"
    ));
    assert_eq!(
        expect(
            &text,
            "sluice_grpc_requests_total{method=\"Produce\",code=\"OK\"}"
        ),
        1.0
    );
    assert_eq!(
        expect(
            &text,
            "sluice_grpc_requests_total{method=\"Produce\",code=\"INVALID_ARGUMENT\"}"
        ),
        1.0
    );
    assert!(text.contains("# HELP sluice_messages_total"), "{text}");
}
