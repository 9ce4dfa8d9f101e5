//! Data-contract rules (`vN.rules.toml`) at the gateway: what producers are answered when a rule
//! fails, what the dead-letter queue and the station then hold, the `warn` header and counter,
//! the dry run, and the commits `sluice check` refuses.

mod common;

use common::{order_request, produce_stream, sluice_check, Gateway, Repo};
use serde_json::{json, Value};
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::produce_result::Outcome;
use tonic::Code;
use tonic_types::StatusExt;

const ORDER: &str = r#"{
  "type": "object",
  "required": ["order_id", "total_cents", "items"],
  "properties": {
    "order_id": {"type": "string"},
    "total_cents": {"type": "integer"},
    "email": {"type": "string"},
    "items": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}}
  }
}"#;

const RULES: &str = r#"
[[rule]]
name = "positive_total"
expr = "message.total_cents > 0"
doc = "an order's total must be positive"

[[rule]]
name = "items_have_quantities"
expr = "message.items.all(i, i.qty >= 1)"

[[rule]]
name = "email_has_a_domain"
expr = "!has(message.email) || message.email.matches('^[^@]+@[^@]+[.][a-z]+$')"
on_failure = "warn"

[[rule]]
name = "average_below_a_million"
expr = "message.total_cents / size(message.items) < 100000000"
"#;

fn repo() -> Repo {
    Repo::new(&[
        ("orders/v1.json", ORDER),
        ("orders/v1.rules.toml", RULES),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
        ),
    ])
}

fn order(id: &str, total: i64, qty: i64) -> Value {
    json!({"order_id": id, "total_cents": total, "items": [{"qty": qty}]})
}

fn rules_of(body: &Value) -> Vec<&str> {
    body["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_message_breaking_a_rule_is_refused_naming_the_rule_field_and_reason_and_dead_lettered() {
    let gw = Gateway::start(repo(), "").await;
    let (status, body) = gw.produce("orders", &order("A1", 1200, 2)).await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = gw.produce("orders", &order("A2", 0, 2)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "rule_violation");
    assert_eq!(body["schema"], "orders");
    assert_eq!(body["version"], 1);
    assert_eq!(
        body["violations"],
        json!([{"rule": "positive_total", "path": "/total_cents", "reason": "an order's total must be positive"}])
    );
    let dlq_id = body["dlq_id"].as_str().expect("dlq_id").to_owned();

    let (status, body) = gw.produce("orders", &order("A3", 500, 0)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(rules_of(&body), ["items_have_quantities"]);
    assert!(body["violations"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("message.items.all(i, i.qty >= 1)"));

    let (status, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200, "{dlq}");
    let letters = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{dlq}");
    assert_eq!(letters[0]["id"], dlq_id);
    assert_eq!(letters[0]["error"], "rule_violation");
    assert_eq!(letters[0]["violations"][0]["path"], "/total_cents");
    assert_eq!(
        letters[0]["violations"][0]["schema_path"],
        "orders/v1.rules.toml#positive_total"
    );
    assert_eq!(letters[0]["value"], order("A2", 0, 2));

    let stored = gw.consume("orders", "billing", 10).await;
    assert_eq!(
        stored.len(),
        1,
        "only the valid order is stored: {stored:?}"
    );
    assert_eq!(stored[0]["value"], order("A1", 1200, 2));
}

#[tokio::test]
async fn schema_violations_come_first_and_a_rule_that_errors_fails_without_a_500() {
    let gw = Gateway::start(repo(), "").await;
    let (status, body) = gw
        .produce("orders", &json!({"order_id": "B1", "items": []}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["error"], "schema_violation",
        "rules run only on what the schema accepts"
    );

    // No items: the average divides by zero.
    let (status, body) = gw
        .produce(
            "orders",
            &json!({"order_id": "B2", "total_cents": 5, "items": []}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(rules_of(&body), ["average_below_a_million"]);
    let reason = body["violations"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("could not be evaluated"), "{reason}");
}

#[tokio::test]
async fn a_warn_rule_stores_the_message_names_the_rule_in_a_header_and_counts_it() {
    let gw = Gateway::start(repo(), "").await;
    let mut sent = order("C1", 100, 1);
    sent["email"] = "nobody".into();
    let (status, body) = gw.produce("orders", &sent).await;
    assert_eq!(status, 201, "{body}");
    let stored = gw.consume("orders", "crm", 10).await;
    assert_eq!(stored[0]["value"], sent);
    assert_eq!(
        stored[0]["headers"]["sluice-rule-warnings"],
        "email_has_a_domain"
    );

    let metrics = gw.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sluice_rule_failures_total") && l.contains("email_has_a_domain"))
        .unwrap_or_else(|| panic!("no rule failure counted:\n{metrics}"));
    assert!(
        line.contains(r#"station="orders""#) && line.contains(r#"on_failure="warn""#),
        "{line}"
    );
}

#[tokio::test]
async fn grpc_answers_a_broken_rule_with_a_field_violation_per_rule_unary_and_streamed() {
    let gw = Gateway::start(repo(), "").await;
    let mut grpc = GatewayClient::connect(gw.grpc.clone()).await.unwrap();

    let status = grpc
        .produce(order_request("orders", &order("G1", -5, 0)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let fields: Vec<(&str, &str)> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.description.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                "/total_cents",
                "rule `positive_total`: an order's total must be positive"
            ),
            (
                "/items",
                "rule `items_have_quantities`: `message.items.all(i, i.qty >= 1)` is false"
            ),
        ]
    );
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "rule_violation");
    let dlq_id = info.metadata["dlq_id"].clone();
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    let letter = &dlq["dead_letters"][0];
    assert_eq!(letter["id"], dlq_id.as_str());
    assert_eq!(letter["error"], "rule_violation");
    assert_eq!(letter["value"]["order_id"], "G1");

    let requests = vec![
        order_request("orders", &order("G2", 10, 1)),
        order_request("orders", &order("G3", 0, 1)),
    ];
    let outcomes = produce_stream(&gw, requests).await;
    assert!(matches!(outcomes[0], Outcome::Accepted(_)), "{outcomes:?}");
    let Outcome::Rejected(rejected) = &outcomes[1] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(rejected.code, Code::InvalidArgument as i32);
    assert_eq!(rejected.error, "rule_violation");
    assert_eq!(rejected.violations.len(), 1);
    assert_eq!(rejected.violations[0].rule, "positive_total");
    assert_eq!(rejected.violations[0].path, "/total_cents");

    let stored = gw.consume("orders", "check", 10).await;
    let ids: Vec<&Value> = stored.iter().map(|m| &m["value"]["order_id"]).collect();
    assert_eq!(ids, [&json!("G2")]);
}

#[tokio::test]
async fn the_confluent_api_serves_a_versions_rules_as_its_domain_rules() {
    let gw = Gateway::start(repo(), "").await;
    for path in [
        "/subjects/orders/versions/1",
        "/subjects/orders-value/versions/latest",
    ] {
        let (status, body) = gw.get(path).await;
        assert_eq!(status, 200, "{body}");
        let rules = &body["ruleSet"]["domainRules"];
        assert_eq!(rules.as_array().unwrap().len(), 4, "{body}");
        assert_eq!(
            rules[0],
            json!({
                "name": "positive_total",
                "kind": "CONDITION",
                "mode": "WRITE",
                "type": "CEL",
                "expr": "message.total_cents > 0",
                "doc": "an order's total must be positive",
                "onFailure": "DLQ",
                "disabled": false,
            })
        );
        assert_eq!(rules[2]["name"], "email_has_a_domain");
        assert_eq!(rules[2]["onFailure"], "NONE");
    }
    let id = gw.get("/subjects/orders/versions/1").await.1["id"].clone();
    let (_, by_id) = gw.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(
        by_id["ruleSet"]["domainRules"][1]["name"],
        "items_have_quantities"
    );
}

#[tokio::test]
async fn batches_are_judged_per_message_and_the_dry_run_reports_rules() {
    let gw = Gateway::start(repo(), "").await;
    let lines: Vec<String> = [order("D1", 10, 1), order("D2", -1, 1), order("D3", 20, 1)]
        .iter()
        .map(|o| json!({ "value": o }).to_string())
        .collect();
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/x-ndjson",
            lines.join("\n").into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let statuses: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 201], "{answer}");
    assert_eq!(answer["results"][1]["error"], "rule_violation", "{answer}");

    let (status, dry) = gw
        .post_json("/v1/schemas/orders/validate", &order("E1", -5, 1))
        .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["valid"], false);
    assert_eq!(
        dry["violations"][0]["schema_path"],
        "orders/v1.rules.toml#positive_total"
    );
    let mut warned = order("E2", 5, 1);
    warned["email"] = "x".into();
    let (_, dry) = gw.post_json("/v1/schemas/orders/validate", &warned).await;
    assert_eq!(dry["valid"], true, "{dry}");
    assert_eq!(dry["rule_warnings"], json!(["email_has_a_domain"]));
}

#[test]
fn sluice_check_refuses_rules_that_cannot_be_naming_file_and_rule() {
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER),
        (
            "orders/v1.rules.toml",
            "[[rule]]\nname = \"broken\"\nexpr = \"message.total_cents >\"\n",
        ),
        ("clicks/v1.json", ORDER),
        (
            "clicks/v1.rules.toml",
            "[[rule]]\nname = \"total\"\nexpr = \"message.total_cents + 1\"\n",
        ),
    ]);
    let (passed, printed) = sluice_check(repo.path(), &[]);
    assert!(!passed);
    assert!(
        printed.contains("orders/v1.rules.toml: v1: rule_compile:")
            && printed.contains("rule `broken` does not compile"),
        "{printed}"
    );
    assert!(
        printed.contains("rule `total` gives a number, string or list, not a bool"),
        "{printed}"
    );
}

#[test]
fn sluice_check_refuses_a_rule_reading_a_field_the_schema_cannot_have() {
    let closed = r#"{"type": "object", "additionalProperties": false,
        "properties": {"total_cents": {"type": "integer"}, "items": {"type": "array"}}}"#;
    let reads =
        |field: &str| format!("[[rule]]\nname = \"typo\"\nexpr = \"message.{field} > 0\"\n");
    let repo = Repo::new(&[
        ("closed/v1.json", closed),
        ("closed/v1.rules.toml", &reads("total_cent")),
        // An open schema cannot tell: its rule is taken.
        ("open/v1.json", ORDER),
        ("open/v1.rules.toml", &reads("anything")),
        ("shop/v1.proto", ORDER_PROTO),
        ("shop/schema.toml", "message = \"shop.Order\"\n"),
        ("shop/v1.rules.toml", &reads("totalCents")),
        ("clicks/v1.avsc", CLICK_AVRO),
        ("clicks/v1.rules.toml", &reads("amout")),
    ]);
    let (passed, printed) = sluice_check(repo.path(), &[]);
    assert!(!passed);
    for (file, field) in [
        ("closed/v1.rules.toml", "total_cent"),
        ("shop/v1.rules.toml", "totalCents"),
        ("clicks/v1.rules.toml", "amout"),
    ] {
        assert!(
            printed.contains(&format!(
                "{file}: v1: rule_compile: {file}: rule `typo` reads `message.{field}`, a field the schema does not have"
            )),
            "{printed}"
        );
    }
    assert!(!printed.contains("open/v1.rules.toml"), "{printed}");
}

const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";

message Order {
  string order_id = 1;
  int64 total_cents = 2;
  repeated Item items = 3;
  optional string email = 4;
  google.protobuf.Timestamp placed_at = 5;
  Status status = 6;
}
message Item { int32 qty = 1; }
enum Status { STATUS_UNSPECIFIED = 0; PAID = 1; }
"#;

const PROTO_RULES: &str = r#"
[[rule]]
name = "positive_total"
expr = "message.total_cents > 0"

[[rule]]
name = "items_have_quantities"
expr = "message.items.all(i, i.qty >= 1)"

[[rule]]
name = "placed_recently"
expr = "has(message.placed_at) && message.placed_at > timestamp('2020-01-01T00:00:00Z')"

[[rule]]
name = "paid"
expr = "message.status == 1"
on_failure = "warn"
"#;

#[tokio::test]
async fn protobuf_rules_read_fields_by_proto_name_with_proto_types_in_json_and_binary() {
    let repo = Repo::new(&[
        ("shop/v1.proto", ORDER_PROTO),
        ("shop/v1.rules.toml", PROTO_RULES),
        ("shop/schema.toml", "message = \"shop.Order\"\n"),
        (
            "stations.toml",
            "[[station]]\nname = \"shop\"\nschema = \"shop\"\n",
        ),
    ]);
    let gw = Gateway::start(repo, "").await;
    // The JSON mapping's camelCase names; rules read the proto names.
    let good = json!({"orderId": "P1", "totalCents": "1200", "items": [{"qty": 2}],
        "placedAt": "2026-12-01T10:00:00Z", "status": "PAID"});
    let (status, body) = gw.produce("shop", &good).await;
    assert_eq!(status, 201, "{body}");

    let mut late = good.clone();
    late["placedAt"] = "2019-05-01T00:00:00Z".into();
    late["items"] = json!([{"qty": 0}]);
    let (status, body) = gw.produce("shop", &late).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        rules_of(&body),
        ["items_have_quantities", "placed_recently"]
    );
    assert_eq!(body["violations"][1]["path"], "/placed_at");

    // Binary: order_id "B" (field 1) and total_cents 0 (field 2, sent explicitly); no
    // placed_at, so `has()` is false; status unset reads 0, a warn rule.
    let binary = vec![0x0A, 0x01, b'B', 0x10, 0x00];
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/shop/messages",
            "application/x-protobuf",
            binary,
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(rules_of(&body), ["positive_total", "placed_recently"]);

    let mut unpaid = good.clone();
    unpaid["status"] = "STATUS_UNSPECIFIED".into();
    let (status, body) = gw.produce("shop", &unpaid).await;
    assert_eq!(status, 201, "{body}");
    let stored = gw.consume("shop", "g", 10).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1]["headers"]["sluice-rule-warnings"], "paid");
}

const CLICK_AVRO: &str = r#"{"type": "record", "name": "Click", "namespace": "web", "fields": [
  {"name": "user", "type": "string"},
  {"name": "amount", "type": "double"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["VIEW", "BUY"]}}
]}"#;

const AVRO_RULES: &str = r#"
[[rule]]
name = "amount_not_negative"
expr = "message.amount >= 0.0"

[[rule]]
name = "a_buy_costs_something"
expr = "message.kind != 'BUY' || message.amount > 0.0"

[[rule]]
name = "after_2020"
expr = "message.at > timestamp('2020-01-01T00:00:00Z')"
"#;

#[tokio::test]
async fn avro_rules_read_records_with_enum_symbols_and_timestamps_in_json_and_binary() {
    let repo = Repo::new(&[
        ("clicks/v1.avsc", CLICK_AVRO),
        ("clicks/v1.rules.toml", AVRO_RULES),
        (
            "stations.toml",
            "[[station]]\nname = \"clicks\"\nschema = \"clicks\"\n",
        ),
    ]);
    let gw = Gateway::start(repo, "").await;
    let good = json!({"user": "u", "amount": 5.0, "at": 1_764_583_200_000_i64, "kind": "BUY"});
    let (status, body) = gw.produce("clicks", &good).await;
    assert_eq!(status, 201, "{body}");

    let free = json!({"user": "u", "amount": 0.0, "at": 1_764_583_200_000_i64, "kind": "BUY"});
    let (status, body) = gw.produce("clicks", &free).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(rules_of(&body), ["a_buy_costs_something"]);

    // user "u", amount -1.0, at 1 ms after the epoch, kind BUY.
    let mut datum = vec![0x02, b'u'];
    datum.extend_from_slice(&(-1.0f64).to_le_bytes());
    datum.extend_from_slice(&[0x02, 0x02]);
    let (status, body) = gw
        .post_bytes("/v1/stations/clicks/messages", "avro/binary", datum, &[])
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        rules_of(&body),
        ["amount_not_negative", "a_buy_costs_something", "after_2020"]
    );
}

#[tokio::test]
async fn graphql_data_rules_read_the_json_data() {
    let repo = Repo::new(&[
        (
            "orders/v1.graphql",
            "type Query { order: Order }\ntype Order { id: ID!, total: Int!, lines: [Int!]! }\n",
        ),
        ("orders/schema.toml", "root_type = \"Order\"\n"),
        (
            "orders/v1.rules.toml",
            "[[rule]]\nname = \"positive_lines\"\nexpr = \"size(message.lines) > 0 && message.lines.all(l, l > 0)\"\ndoc = \"every line is positive\"\n",
        ),
        ("stations.toml", "[[station]]\nname = \"orders\"\nschema = \"orders\"\n"),
    ]);
    let gw = Gateway::start(repo, "").await;
    let (status, body) = gw
        .produce("orders", &json!({"id": "G1", "total": 3, "lines": [1, 2]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = gw
        .produce("orders", &json!({"id": "G2", "total": 3, "lines": [3, 0]}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["violations"][0]["rule"], "positive_lines");
    assert_eq!(body["violations"][0]["reason"], "every line is positive");
}

const VALIDATED_PROTO: &str = r#"syntax = "proto3";
package shop;
import "buf/validate/validate.proto";

message Order {
  option (buf.validate.message).cel = {
    id: "total_covers_items",
    message: "the total must be at least one cent per item",
    expression: "this.total_cents >= size(this.items)"
  };
  string order_id = 1 [(buf.validate.field).string = {min_len: 3, max_len: 20}];
  int64 total_cents = 2 [(buf.validate.field).int64 = {gt: 0, lte: 1000000}];
  Customer customer = 3 [(buf.validate.field).required = true];
  repeated Item items = 4 [(buf.validate.field).repeated.min_items = 1];
  oneof payment {
    option (buf.validate.oneof).required = true;
    string card = 5;
    string voucher = 6;
  }
}
message Customer { string email = 1 [(buf.validate.field).string.email = true]; }
message Item { string sku = 1 [(buf.validate.field).string.pattern = "^[a-z]+$"]; }
"#;

/// Each violation's `(rule, path)`.
fn constraints_of(body: &Value) -> Vec<(String, String)> {
    body["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations: {body}"))
        .iter()
        .map(|v| {
            (
                v["rule"].as_str().unwrap().to_owned(),
                v["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn protovalidate_constraints_in_the_proto_refuse_what_they_should_with_path_and_id() {
    let repo = Repo::new(&[
        ("shop/v1.proto", VALIDATED_PROTO),
        ("shop/schema.toml", "message = \"shop.Order\"\n"),
        (
            "stations.toml",
            "[[station]]\nname = \"shop\"\nschema = \"shop\"\n",
        ),
    ]);
    let gw = Gateway::start(repo, "").await;
    let good = json!({"orderId": "A-100", "totalCents": "1200",
        "customer": {"email": "ann@example.com"}, "items": [{"sku": "tea"}], "voucher": "V1"});
    let (status, body) = gw.produce("shop", &good).await;
    assert_eq!(status, 201, "{body}");

    let broken = |field: &str, value: Value| {
        let mut order = good.clone();
        match value {
            Value::Null => drop(order.as_object_mut().unwrap().remove(field)),
            value => order[field] = value,
        }
        order
    };
    let cases = [
        (
            broken("orderId", "A1".into()),
            ("string.min_len", "/order_id"),
        ),
        (
            broken("totalCents", "2000000".into()),
            ("int64.gt_lte", "/total_cents"),
        ),
        (broken("customer", Value::Null), ("required", "/customer")),
        (
            broken("customer", json!({"email": "nobody"})),
            ("string.email", "/customer/email"),
        ),
        (
            broken("items", json!([{"sku": "tea"}, {"sku": "Cup!"}])),
            ("string.pattern", "/items/1/sku"),
        ),
        (broken("items", json!([])), ("repeated.min_items", "/items")),
        (broken("voucher", Value::Null), ("required", "/payment")),
    ];
    for (order, (rule, path)) in cases {
        let (status, body) = gw.produce("shop", &order).await;
        assert_eq!(status, 422, "{order}: {body}");
        assert_eq!(body["error"], "rule_violation", "{body}");
        assert_eq!(
            constraints_of(&body),
            [(rule.to_owned(), path.to_owned())],
            "{order}"
        );
    }

    // A message-level CEL constraint, on the binary encoding: order_id "A-1", total_cents 1,
    // customer a@b.io, two items, and card "c".
    let binary = [
        &[0x0A, 0x03][..],
        b"A-1",
        &[0x10, 0x01, 0x1A, 0x08, 0x0A, 0x06],
        b"a@b.io",
        &[0x22, 0x05, 0x0A, 0x03],
        b"tea",
        &[0x22, 0x05, 0x0A, 0x03],
        b"cup",
        &[0x2A, 0x01],
        b"c",
    ]
    .concat();
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/shop/messages",
            "application/x-protobuf",
            binary,
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        constraints_of(&body),
        [("total_covers_items".to_owned(), String::new())]
    );
    assert_eq!(
        body["violations"][0]["reason"],
        "the total must be at least one cent per item"
    );

    let (_, dlq) = gw.get("/v1/stations/shop/dlq?max=100").await;
    let letters = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 8, "{dlq}");
    assert!(
        letters.iter().all(|l| l["error"] == "rule_violation"),
        "{dlq}"
    );
    assert_eq!(gw.consume("shop", "g", 10).await.len(), 1);
}

#[test]
fn sluice_check_refuses_buf_validate_constraints_that_do_not_compile() {
    let broken = VALIDATED_PROTO.replace(
        "this.total_cents >= size(this.items)",
        "this.total_cents >=",
    );
    let repo = Repo::new(&[
        ("shop/v1.proto", broken.as_str()),
        ("shop/schema.toml", "message = \"shop.Order\"\n"),
    ]);
    let (passed, printed) = sluice_check(repo.path(), &[]);
    assert!(!passed);
    assert!(
        printed.contains("shop/v1.proto: compile: its buf.validate constraints do not compile:")
            && printed.contains("this.total_cents >="),
        "{printed}"
    );
}
