//! GraphQL stations: executable documents judged as the reference implementation judges them
//! (`tests/fixtures/graphql/documents.json`, recorded by graphql-core), and JSON data checked
//! against a `root_type`.

mod common;

use common::{first_reason, fixture, Gateway};
use serde_json::{json, Value};

async fn gateway() -> Gateway {
    Gateway::start(fixture("graphql/repo"), "").await
}

async fn send_document(gw: &Gateway, document: &str) -> (u16, Value) {
    gw.post_bytes(
        "/v1/stations/queries/messages",
        "application/graphql",
        document.as_bytes().to_vec(),
        &[],
    )
    .await
}

#[tokio::test]
async fn documents_are_judged_as_the_reference_implementation_judges_them() {
    let gw = gateway().await;
    let fixtures: Vec<Value> =
        serde_json::from_slice(&std::fs::read(fixture("graphql/documents.json")).unwrap()).unwrap();
    assert!(fixtures.len() >= 30);
    let mut disagreements = Vec::new();
    for case in &fixtures {
        let document = case["document"].as_str().unwrap();
        let reference_valid = case["valid"].as_bool().unwrap();
        let (status, body) = send_document(&gw, document).await;
        let sluice_valid = match status {
            201 => true,
            422 => false,
            other => panic!("{}: unexpected status {other}: {body}", case["name"]),
        };
        if sluice_valid != reference_valid {
            disagreements.push(format!(
                "{} (§{}): reference valid={reference_valid} {:?}, sluice {status} {}",
                case["name"], case["section"], case["reference_errors"], body
            ));
        }
        if !sluice_valid {
            let violation = &body["violations"][0];
            assert!(!violation["reason"].as_str().unwrap().is_empty(), "{body}");
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[tokio::test]
async fn violations_locate_the_problem_in_the_document() {
    let gw = gateway().await;
    let (status, body) =
        send_document(&gw, "{\n  order(id: \"1\") {\n    id\n    price\n  }\n}").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["path"], "4:5");
    assert!(first_reason(&body).contains("price"), "{body}");
}

#[tokio::test]
async fn json_requests_carry_the_document_and_may_name_the_operation() {
    let gw = gateway().await;
    let request = json!({"query": "query A { orders { id } } query B { orders { status } }", "operationName": "B"});
    assert_eq!(
        gw.post_json("/v1/stations/queries/messages", &request)
            .await
            .0,
        201
    );
    let request = json!({"query": "query A { orders { id } }", "operationName": "Z"});
    let (status, body) = gw
        .post_json("/v1/stations/queries/messages", &request)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("`Z`"), "{body}");
    let (status, _) = gw
        .post_json("/v1/stations/queries/messages", &json!({"variables": {}}))
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn deep_long_or_garbage_documents_are_refused_and_the_server_stays_healthy() {
    let gw = gateway().await;
    let deep = format!(
        "{{ category(name: \"a\") {{ {} name {} }} }}",
        "parent { ".repeat(100),
        "} ".repeat(100)
    );
    let (status, body) = send_document(&gw, &deep).await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("recursion limit"), "{body}");
    let long = format!("{{ {} }}", "orders { id } ".repeat(4000));
    let (status, body) = send_document(&gw, &long).await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("token limit"), "{body}");
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/queries/messages",
            "application/graphql",
            vec![0xFF, 0xFE, 0x00, 0x7B],
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("UTF-8"), "{body}");
    let (status, _) = send_document(&gw, "\u{0}\u{1}}}}{{{{ query mutation").await;
    assert_eq!(status, 422);
    assert_eq!(gw.get("/healthz").await.0, 200);
    assert_eq!(send_document(&gw, "{ orders { id } }").await.0, 201);
}

fn order() -> Value {
    json!({
        "__typename": "Order",
        "id": "o-1",
        "status": "PLACED",
        "total": {"amount": 12.5, "currency": "EUR"},
        "items": [{"sku": "tea", "qty": 2}],
        "customer": {"id": "c-1", "name": "Ann", "email": null}
    })
}

#[tokio::test]
async fn json_data_is_checked_against_the_root_type() {
    let gw = gateway().await;
    assert_eq!(gw.produce("orders", &order()).await.0, 201);
    let mut without_customer = order();
    without_customer.as_object_mut().unwrap().remove("customer");
    assert_eq!(
        gw.produce("orders", &without_customer).await.0,
        201,
        "nullable fields may be absent"
    );

    for (change, path, reason) in [
        (
            json!({"status": "LOST"}),
            "/status",
            "one of PLACED, SHIPPED, CANCELLED",
        ),
        (
            json!({"items": [{"sku": "tea", "qty": 3000000000u64}]}),
            "/items/0/qty",
            "Int (32-bit",
        ),
        (
            json!({"items": [{"sku": "tea", "qty": 1, "color": "red"}]}),
            "/items/0/color",
            "no field `color`",
        ),
        (json!({"items": null}), "/items", "non-null"),
        (
            json!({"total": {"amount": 1}}),
            "/total/currency",
            "missing",
        ),
        (
            json!({"items": {"sku": "tea", "qty": 1}}),
            "/items",
            "expected a list",
        ),
        (
            json!({"__typename": "Customer"}),
            "/__typename",
            "expected \"Order\"",
        ),
    ] {
        let mut message = order();
        for (key, value) in change.as_object().unwrap() {
            message[key] = value.clone();
        }
        let (status, body) = gw.produce("orders", &message).await;
        assert_eq!(status, 422, "{change}: {body}");
        let violation = &body["violations"][0];
        assert_eq!(violation["path"], path, "{change}: {body}");
        assert!(
            violation["reason"].as_str().unwrap().contains(reason),
            "{change}: {body}"
        );
    }
    let (status, _) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/graphql",
            b"{ orders { id } }".to_vec(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "a data station wants JSON");
}
