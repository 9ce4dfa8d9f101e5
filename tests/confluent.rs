//! The Confluent Schema Registry compatible API: its JSON shapes and errors, read-only writes, the
//! compatibility check, and Confluent's own Python client reading schemas by id and decoding
//! messages that stations with `framing = "confluent"` stored.

mod common;

use common::{Gateway, Repo};
use serde_json::{json, Value};

const ORDERS_V1: &str = r#"{"type":"object","additionalProperties":false,"required":["order_id"],"properties":{"order_id":{"type":"string"},"qty":{"type":"integer"}}}"#;
const ORDERS_V2: &str = r#"{"type":"object","additionalProperties":false,"required":["order_id"],"properties":{"order_id":{"type":"string"},"qty":{"type":"integer"},"note":{"type":"string"}}}"#;
const CLICK: &str = r#"{"type":"record","name":"Click","namespace":"acme","fields":[{"name":"url","type":"string"},{"name":"ms","type":"long"}]}"#;
const PAYMENT: &str = "syntax = \"proto3\";\npackage acme;\nmessage Payment {\n  string id = 1;\n  int64 cents = 2;\n}\n";

fn repo() -> Repo {
    Repo::new(&[
        ("orders/v1.json", ORDERS_V1),
        ("orders/v2.json", ORDERS_V2),
        ("orders/schema.toml", "compatibility = \"backward\"\n"),
        ("clicks/v1.avsc", CLICK),
        ("payments/v1.proto", PAYMENT),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\nframing = \"confluent\"\n\
             [[station]]\nname = \"clicks\"\nschema = \"clicks\"\nframing = \"confluent\"\n\
             [[station]]\nname = \"payments\"\nschema = \"payments\"\nframing = \"confluent\"\n",
        ),
    ])
}

/// Decodes framed messages (`{"topic", "format", "value_base64"}`) with Confluent's Python client
/// reading this gateway's registry; the schema it fetched for each, and the value.
async fn confluent_client_decodes(gw: &Gateway, framed: &[Value]) -> Value {
    let messages_file = gw.data.path().join("framed.json");
    std::fs::write(&messages_file, serde_json::to_vec(framed).unwrap()).unwrap();
    let args = vec![gw.base.clone(), messages_file.display().to_string()];
    let stdout =
        common::python_client("tests/clients/confluent_decode.py", args, "confluent-kafka").await;
    serde_json::from_slice(&stdout).unwrap()
}

async fn post_raw(gw: &Gateway, path: &str, body: &Value) -> (u16, Value) {
    gw.post_bytes(
        path,
        "application/vnd.schemaregistry.v1+json",
        body.to_string().into_bytes(),
        &[],
    )
    .await
}

#[tokio::test]
async fn the_read_api_answers_in_confluent_shapes() {
    let gw = Gateway::start(repo(), "").await;
    let (_, subjects) = gw.get("/subjects").await;
    assert_eq!(subjects, json!(["clicks", "orders", "payments"]));
    assert_eq!(gw.get("/subjects/orders/versions").await.1, json!([1, 2]));

    let (code, latest) = gw.get("/subjects/orders/versions/latest").await;
    assert_eq!(code, 200);
    assert_eq!(latest["subject"], "orders");
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["schemaType"], "JSON");
    assert_eq!(latest["schema"], ORDERS_V2);
    let id = latest["id"].as_u64().unwrap();

    // The subject Confluent's TopicNameStrategy asks for resolves to the station's schema.
    let (_, alias) = gw.get("/subjects/orders-value/versions/2").await;
    assert_eq!(alias["id"], id);

    let (_, by_id) = gw.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(by_id, json!({"schema": ORDERS_V2, "schemaType": "JSON"}));
    let (_, versions) = gw.get(&format!("/schemas/ids/{id}/versions")).await;
    assert_eq!(versions, json!([{"subject": "orders", "version": 2}]));
    let (_, avro) = gw.get("/subjects/clicks/versions/1").await;
    assert!(
        avro.get("schemaType").is_none(),
        "Avro is the default type: {avro}"
    );
    assert_eq!(
        gw.get("/schemas/types").await.1,
        json!(["JSON", "PROTOBUF", "AVRO"])
    );
    assert_eq!(
        gw.get("/config").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        gw.get("/config/orders").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );

    // Errors in Confluent's shape.
    let (code, body) = gw.get("/subjects/nope/versions").await;
    assert_eq!((code, body["error_code"].as_u64()), (404, Some(40401)));
    let (code, body) = gw.get("/subjects/orders/versions/9").await;
    assert_eq!((code, body["error_code"].as_u64()), (404, Some(40402)));
    let (code, body) = gw.get("/subjects/orders/versions/two").await;
    assert_eq!((code, body["error_code"].as_u64()), (422, Some(42202)));
    let (code, body) = gw.get("/schemas/ids/1").await;
    assert_eq!((code, body["error_code"].as_u64()), (404, Some(40403)));
}

#[tokio::test]
async fn writes_point_to_git_and_known_schemas_are_found() {
    let gw = Gateway::start(repo(), "").await;
    let (_, latest) = gw.get("/subjects/orders/versions/latest").await;

    // Registering a schema that is already published answers its id, as Confluent does.
    let (code, body) = post_raw(
        &gw,
        "/subjects/orders-value/versions",
        &json!({"schema": ORDERS_V2, "schemaType": "JSON"}),
    )
    .await;
    assert_eq!((code, &body["id"]), (200, &latest["id"]), "{body}");
    let (code, body) = post_raw(
        &gw,
        "/subjects/orders",
        &json!({"schema": ORDERS_V1, "schemaType": "JSON"}),
    )
    .await;
    assert_eq!((code, body["version"].as_u64()), (200, Some(1)), "{body}");

    // Anything new is a change to the repository, not to this API.
    let (code, body) = post_raw(
        &gw,
        "/subjects/orders/versions",
        &json!({"schema": "{}", "schemaType": "JSON"}),
    )
    .await;
    assert_eq!((code, body["error_code"].as_u64()), (405, Some(405)));
    assert!(
        body["message"].as_str().unwrap().contains("commit"),
        "{body}"
    );
    let response = gw
        .client
        .delete(gw.url("/subjects/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let response = gw
        .client
        .put(gw.url("/config/orders"))
        .body(r#"{"compatibility":"NONE"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
}

#[tokio::test]
async fn the_compatibility_check_applies_the_subject_mode() {
    let gw = Gateway::start(repo(), "").await;
    let compatible = r#"{"type":"object","additionalProperties":false,"required":["order_id"],"properties":{"order_id":{"type":"string"},"qty":{"type":"integer"},"note":{"type":"string"},"tag":{"type":"string"}}}"#;
    let (code, body) = post_raw(
        &gw,
        "/compatibility/subjects/orders/versions/latest",
        &json!({"schema": compatible, "schemaType": "JSON"}),
    )
    .await;
    assert_eq!((code, body), (200, json!({"is_compatible": true})));

    let breaking = r#"{"type":"object","required":["order_id","qty"],"properties":{"order_id":{"type":"string"},"qty":{"type":"integer"}}}"#;
    let (code, body) = post_raw(
        &gw,
        "/compatibility/subjects/orders/versions/latest?verbose=true",
        &json!({"schema": breaking, "schemaType": "JSON"}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["is_compatible"], false);
    assert!(
        body["messages"][0]
            .as_str()
            .unwrap()
            .starts_with("required_added"),
        "{body}"
    );

    // Avro by schema resolution: a new field without a default cannot read old data.
    let no_default = r#"{"type":"record","name":"Click","namespace":"acme","fields":[{"name":"url","type":"string"},{"name":"ms","type":"long"},{"name":"ref","type":"string"}]}"#;
    let (_, body) = post_raw(
        &gw,
        "/compatibility/subjects/clicks/versions/1",
        &json!({"schema": no_default}),
    )
    .await;
    assert_eq!(body["is_compatible"], false, "{body}");

    let (code, body) = post_raw(
        &gw,
        "/compatibility/subjects/payments/versions/1",
        &json!({"schema": "syntax = \"proto3\"; message {", "schemaType": "PROTOBUF"}),
    )
    .await;
    assert_eq!(
        (code, body["error_code"].as_u64()),
        (422, Some(42201)),
        "{body}"
    );
}

#[tokio::test]
async fn confluents_python_client_reads_schemas_by_id_and_decodes_framed_messages() {
    let gw = Gateway::start(repo(), "").await;
    let order = json!({"order_id": "o-1", "qty": 2});
    let click = json!({"url": "https://shop.example/", "ms": 1_700_000_000_000u64});
    let payment = json!({"id": "p-1", "cents": "1250"});
    for (station, message) in [
        ("orders", &order),
        ("clicks", &click),
        ("payments", &payment),
    ] {
        let (code, body) = gw.produce(station, message).await;
        assert_eq!(code, 201, "{station}: {body}");
    }
    let mut framed = Vec::new();
    for (station, format) in [
        ("orders", "json"),
        ("clicks", "avro"),
        ("payments", "protobuf"),
    ] {
        let messages = gw.consume(station, "confluent-reader", 10).await;
        assert_eq!(messages.len(), 1, "{station}");
        let value = messages[0]["value_base64"].as_str().unwrap();
        framed.push(json!({"topic": station, "format": format, "value_base64": value}));
    }
    let decoded = confluent_client_decodes(&gw, &framed).await;

    let (_, orders) = gw.get("/subjects/orders/versions/latest").await;
    assert_eq!(decoded[0]["schema_id"], orders["id"]);
    assert_eq!(decoded[0]["schema_type"], "JSON");
    assert_eq!(decoded[0]["schema"], ORDERS_V2);
    assert_eq!(decoded[0]["value"], order);
    assert_eq!(decoded[1]["schema_type"], "AVRO");
    assert_eq!(decoded[1]["value"], click);
    assert_eq!(decoded[2]["schema_type"], "PROTOBUF");
    assert_eq!(decoded[2]["value"], payment);
}

const ADDRESS: &str = r#"{"type":"object","required":["city"],"properties":{"city":{"type":"string"},"zip":{"type":"string"}}}"#;
const CUSTOMER: &str = r#"{"type":"object","required":["name","address"],"properties":{"name":{"type":"string"},"address":{"$ref":"../common/address.json"}}}"#;
const MONEY: &str = "syntax = \"proto3\";\npackage acme;\nmessage Money {\n  string currency = 1;\n  int64 units = 2;\n}\n";
const INVOICE: &str = "syntax = \"proto3\";\npackage acme;\nimport \"common/money.proto\";\nmessage Invoice {\n  string id = 1;\n  acme.Money total = 2;\n}\n";

fn referring_repo() -> Repo {
    Repo::new(&[
        ("common/address.json", ADDRESS),
        ("customers/v1.json", CUSTOMER),
        ("common/money.proto", MONEY),
        ("invoices/v1.proto", INVOICE),
        (
            "stations.toml",
            "[[station]]\nname = \"customers\"\nschema = \"customers\"\nframing = \"confluent\"\n\
             [[station]]\nname = \"invoices\"\nschema = \"invoices\"\nframing = \"confluent\"\n",
        ),
    ])
}

#[tokio::test]
async fn files_a_schema_refers_to_are_served_as_referenced_subjects() {
    let gw = Gateway::start(referring_repo(), "").await;
    let (_, customer) = gw.get("/subjects/customers/versions/1").await;
    assert_eq!(
        customer["references"],
        json!([{"name": "../common/address.json", "subject": "common/address.json", "version": 1}])
    );
    let (_, invoice) = gw.get("/subjects/invoices-value/versions/latest").await;
    assert_eq!(
        invoice["references"],
        json!([{"name": "common/money.proto", "subject": "common/money.proto", "version": 1}])
    );

    // The referenced files are subjects of their own, with one version each.
    let (_, subjects) = gw.get("/subjects").await;
    assert_eq!(
        subjects,
        json!([
            "common/address.json",
            "common/money.proto",
            "customers",
            "invoices"
        ])
    );
    let (code, file) = gw.get("/subjects/common%2Faddress.json/versions/1").await;
    assert_eq!(code, 200, "{file}");
    assert_eq!(
        (file["schema"].as_str(), file["schemaType"].as_str()),
        (Some(ADDRESS), Some("JSON"))
    );
    let (_, referring) = gw
        .get("/subjects/common%2Faddress.json/versions/1/referencedby")
        .await;
    assert_eq!(referring, json!([customer["id"]]));
    let (_, by_id) = gw.get(&format!("/schemas/ids/{}", customer["id"])).await;
    assert_eq!(by_id["references"], customer["references"]);
    assert_eq!(
        gw.get("/subjects/common%2Faddress.json/versions/2").await.1["error_code"],
        40402
    );

    // A lookup that names the version's references finds it; other references do not.
    let lookup = |references: Value| {
        let body = json!({"schema": CUSTOMER, "schemaType": "JSON", "references": references});
        let gw = &gw;
        async move { post_raw(gw, "/subjects/customers", &body).await }
    };
    let (code, found) = lookup(customer["references"].clone()).await;
    assert_eq!((code, &found["id"]), (200, &customer["id"]), "{found}");
    let (code, body) = lookup(
        json!([{"name": "../common/address.json", "subject": "common/address.json", "version": 2}]),
    )
    .await;
    assert_eq!(
        (code, body["error_code"].as_u64()),
        (404, Some(40403)),
        "{body}"
    );

    // A candidate whose references name nothing here is an invalid schema.
    let (code, body) = post_raw(
        &gw,
        "/compatibility/subjects/customers/versions/latest",
        &json!({"schema": CUSTOMER, "schemaType": "JSON", "references": [{"name": "x.json", "subject": "nope", "version": 1}]}),
    )
    .await;
    assert_eq!(
        (code, body["error_code"].as_u64()),
        (422, Some(42201)),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("`nope`"),
        "{body}"
    );
}

#[tokio::test]
async fn confluents_python_client_follows_references_to_decode() {
    let gw = Gateway::start(referring_repo(), "").await;
    let customer = json!({"name": "Ada", "address": {"city": "London", "zip": "N1"}});
    let invoice = json!({"id": "i-1", "total": {"currency": "EUR", "units": 12}});
    assert_eq!(gw.produce("customers", &customer).await.0, 201);
    assert_eq!(gw.produce("invoices", &invoice).await.0, 201);
    let mut framed = Vec::new();
    for (station, format, message) in [
        ("customers", "json", None),
        ("invoices", "protobuf", Some("acme.Invoice")),
    ] {
        let messages = gw.consume(station, "confluent-reader", 10).await;
        let value = messages[0]["value_base64"].as_str().unwrap();
        framed.push(
            json!({"topic": station, "format": format, "message": message, "value_base64": value}),
        );
    }
    let decoded = confluent_client_decodes(&gw, &framed).await;
    assert_eq!(
        decoded[0]["references"][0]["subject"],
        "common/address.json"
    );
    assert_eq!(decoded[0]["value"], customer);
    assert_eq!(decoded[1]["references"][0]["name"], "common/money.proto");
    assert_eq!(
        decoded[1]["value"],
        json!({"id": "i-1", "total": {"currency": "EUR", "units": "12"}})
    );
}
