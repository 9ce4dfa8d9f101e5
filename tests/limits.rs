//! Every limit of `[limits]` with the status a producer gets past it, the reason naming the key,
//! and the gateway still healthy and storing afterwards; and bytes that are not UTF-8 where text is
//! required, each refused with a JSON error.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{first_reason, orders_repo, valid_order, Gateway, Repo};
use serde_json::{json, Value};

const LIMITS: &str = r#"
[limits]
max_message_bytes = 65536
max_batch_messages = 10
max_json_depth = 8
max_protobuf_depth = 6
max_graphql_depth = 5
max_graphql_tokens = 40
max_avro_allocation_bytes = 4096
request_timeout = "1s"
"#;

const NODE_PROTO: &str = r#"syntax = "proto3";
package tree;
message Node {
  string name = 1;
  Node child = 2;
}
"#;

const BLOB_AVSC: &str =
    r#"{"type": "record", "name": "Blob", "fields": [{"name": "data", "type": "bytes"}]}"#;

const SHOP_GRAPHQL: &str = r#"
type Query { category(name: String!): Category }
type Category { name: String! parent: Category }
"#;

/// One station per format, all on the embedded store.
fn every_format_repo() -> Repo {
    let repo = orders_repo("");
    repo.write("tree/v1.proto", NODE_PROTO);
    repo.write("blob/v1.avsc", BLOB_AVSC);
    repo.write("shop/v1.graphql", SHOP_GRAPHQL);
    repo.write(
        "stations.toml",
        r#"
[[station]]
name = "orders"
schema = "orders"

[[station]]
name = "tree"
schema = "tree"

[[station]]
name = "blob"
schema = "blob"

[[station]]
name = "queries"
schema = "shop"

[[station]]
name = "raw"
"#,
    );
    repo
}

/// Asserts the gateway is live and still stores a valid message.
async fn assert_healthy(gw: &Gateway) {
    assert_eq!(gw.get("/healthz").await.0, 200);
    let (status, body) = gw.produce("orders", &valid_order("after")).await;
    assert_eq!(status, 201, "{body}");
}

/// A `Node` nested `depth` levels deep, in Protobuf's binary encoding.
fn nested_node(depth: usize) -> Vec<u8> {
    let mut message = Vec::new();
    for _ in 1..depth {
        let mut outer = vec![0x12]; // field 2, length-delimited
        let mut length = message.len();
        while length >= 0x80 {
            outer.push((length as u8) | 0x80);
            length >>= 7;
        }
        outer.push(length as u8);
        outer.extend_from_slice(&message);
        message = outer;
    }
    message
}

fn nested_json(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!([value]);
    }
    value
}

#[tokio::test]
async fn json_nested_past_max_json_depth_is_422_and_dead_lettered() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    let mut order = valid_order("deep");
    order["note"] = nested_json(7); // 8 levels with the order itself
    assert_eq!(gw.produce("orders", &order).await.0, 201);
    order["note"] = nested_json(8);
    let (status, body) = gw.produce("orders", &order).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "schema_violation");
    assert!(
        first_reason(&body).contains("limits.max_json_depth"),
        "{body}"
    );
    assert!(body["dlq_id"].is_string(), "{body}");
    // Far past serde_json's own limit and within the body size: refused the same way.
    let hostile = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            hostile.into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("deeper than 8"), "{body}");
    // The same limit for formats that read JSON: Protobuf's JSON mapping, GraphQL requests.
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/tree/messages",
            "application/json",
            format!("{}{}", "{\"child\":".repeat(12), "}".repeat(12)).into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("limits.max_json_depth"),
        "{body}"
    );
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn protobuf_nested_past_max_protobuf_depth_is_422() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    let send = |depth| {
        gw.post_bytes(
            "/v1/stations/tree/messages",
            "application/x-protobuf",
            nested_node(depth),
            &[],
        )
    };
    let (status, body) = send(6).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(7).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("limits.max_protobuf_depth"),
        "{body}"
    );
    // Past prost's own ceiling of 100 levels: still a 422, never a crash.
    let (status, body) = send(5_000).await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("recursion"), "{body}");
    let (status, dlq) = gw.get("/v1/stations/tree/dlq").await;
    assert_eq!(status, 200);
    assert_eq!(dlq["dead_letters"].as_array().unwrap().len(), 2, "{dlq}");
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn graphql_documents_past_max_graphql_depth_or_tokens_are_422() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    let document = |levels: usize| {
        format!(
            "{{ category(name: \"tea\") {{ {} name {} }} }}",
            "parent { ".repeat(levels),
            "} ".repeat(levels)
        )
    };
    let send = |text: String| {
        gw.post_bytes(
            "/v1/stations/queries/messages",
            "application/graphql",
            text.into_bytes(),
            &[],
        )
    };
    assert_eq!(send(document(1)).await.0, 201);
    let (status, body) = send(document(6)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("limits.max_graphql_depth"),
        "{body}"
    );
    let long = format!("{{ {} }}", "a: category(name: \"x\") { name } ".repeat(10));
    let (status, body) = send(long).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        first_reason(&body).contains("limits.max_graphql_tokens"),
        "{body}"
    );
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn avro_lengths_past_max_avro_allocation_bytes_are_422() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    let send =
        |datum: Vec<u8>| gw.post_bytes("/v1/stations/blob/messages", "avro/binary", datum, &[]);
    // bytes of length 3 (zigzag 6).
    assert_eq!(send(vec![6, 1, 2, 3]).await.0, 201);
    // A length prefix of 1 GiB (zigzag 2^31) in a 6-byte message.
    let (status, body) = send(vec![0x80, 0x80, 0x80, 0x80, 0x08, 0]).await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("allocat"), "{body}");
    assert_healthy(&gw).await;
}

/// A recursive Avro record: a linked list of nodes.
const LIST_AVSC: &str =
    r#"{"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}"#;

#[tokio::test]
async fn a_batch_of_ten_thousand_broken_recursive_avro_datums_is_refused_item_by_item() {
    let repo = every_format_repo();
    repo.write("list/v1.avsc", LIST_AVSC);
    repo.write(
        "stations.toml",
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\n\n[[station]]\nname = \"list\"\nschema = \"list\"\n",
    );
    let gw = Gateway::start(&repo, "").await;
    // Fifty nodes below the first, then a `next` with a union branch the schema does not have:
    // every datum is read 51 levels deep before it is refused.
    let mut broken = vec![0x02; 50];
    broken.push(0x04);
    let item = json!({
        "value_base64": base64::engine::general_purpose::STANDARD.encode(&broken),
        "content_type": "avro/binary",
    });
    let batch = vec![item; 10_000];
    let (status, body) = gw
        .post_json("/v1/stations/list/messages:batch", &json!(batch))
        .await;
    assert_eq!(status, 200, "{}", &body.to_string()[..500]);
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(0), Some(10_000))
    );
    let results = body["results"].as_array().unwrap();
    let path = "/next".repeat(51);
    for result in results {
        assert_eq!(result["status"], 422);
        let violation = &result["violations"][0];
        assert_eq!(violation["path"], path.as_str(), "{result}");
        assert!(
            violation["reason"]
                .as_str()
                .unwrap()
                .contains("union branch 2 is not one of its 2 branches"),
            "{result}"
        );
    }
    let (_, station) = gw.get("/v1/stations/list").await;
    assert_eq!(station["dead_letters"]["messages"], 10_000, "{station}");
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn body_size_and_batch_count_are_413() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/raw/messages",
            "application/octet-stream",
            vec![b'x'; 65_537],
            &[],
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    let batch: Vec<Value> = (0..11)
        .map(|n| json!({"value": valid_order(&n.to_string())}))
        .collect();
    let (status, body) = gw
        .post_json("/v1/stations/orders/messages:batch", &json!(batch))
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "too_many_messages");
    assert!(gw.consume("orders", "g", 100).await.is_empty());
    assert_healthy(&gw).await;
}

/// Sends `head` and then `body_part` over a raw connection and returns the status line and the
/// JSON body of the answer, or panics if none comes within `wait`.
fn raw_exchange(base: &str, head: &str, body_part: &[u8], wait: Duration) -> (String, Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body_part).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    let status = head.lines().next().unwrap_or_default().to_owned();
    let body = body
        .find('{')
        .map(|start| &body[start..body.rfind('}').unwrap() + 1])
        .unwrap_or("null");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_after_request_timeout() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    let base = gw.base.clone();
    let started = Instant::now();
    let (status, body) = tokio::task::spawn_blocking(move || {
        raw_exchange(
            &base,
            "POST /v1/stations/orders/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            b"{\"order_id\":",
            Duration::from_secs(20),
        )
    })
    .await
    .unwrap();
    assert!(status.contains(" 408 "), "{status} {body}");
    assert_eq!(body["error"], "request_timeout");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("limits.request_timeout"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(gw.consume("orders", "g", 10).await.is_empty());
    assert_healthy(&gw).await;
    // A long-poll consume gets its wait on top of the request timeout.
    let (status, body) = gw
        .get("/v1/stations/raw/messages?group=g&wait_ms=1500")
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn text_that_is_not_utf8_is_a_4xx_with_a_json_error() {
    let repo = every_format_repo();
    let gw = Gateway::start(&repo, LIMITS).await;
    // A JSON payload with an invalid byte inside a string.
    let mut payload = br#"{"order_id": "A"#.to_vec();
    payload.extend_from_slice(&[0xC3, 0x28]);
    payload.extend_from_slice(br#"", "items": [{"qty": 1}]}"#);
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            payload.clone(),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("not valid JSON"), "{body}");
    // The same bytes as a batch envelope refuse the whole batch.
    let mut batch = br#"[{"value": "#.to_vec();
    batch.extend_from_slice(&payload);
    batch.extend_from_slice(b"}]");
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/json",
            batch,
            &[],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "bad_request");
    // A GraphQL document.
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/queries/messages",
            "application/graphql",
            vec![b'{', 0xFF, b'}'],
            &[],
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(first_reason(&body).contains("UTF-8"), "{body}");
    // A station name in the path, a query parameter, headers.
    for path in [
        "/v1/stations/or%FFders/messages",
        "/v1/stations/orders/messages?group=%FF",
        "/v1/schemas/%C3%28",
    ] {
        let response = if path.contains('?') || path.starts_with("/v1/schemas") {
            gw.client.get(gw.url(path)).send().await.unwrap()
        } else {
            gw.client
                .post(gw.url(path))
                .json(&valid_order("p"))
                .send()
                .await
                .unwrap()
        };
        let (status, body) = common::answer(response).await;
        assert!((400..500).contains(&status), "{path}: {status} {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    for header in ["sluice-key", "sluice-header-origin", "idempotency-key"] {
        let response = gw
            .client
            .post(gw.url("/v1/stations/orders/messages"))
            .header(
                header,
                reqwest::header::HeaderValue::from_bytes(&[b'a', 0xFF]).unwrap(),
            )
            .json(&valid_order("h"))
            .send()
            .await
            .unwrap();
        let (status, body) = common::answer(response).await;
        assert_eq!(status, 400, "{header}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(header),
            "{header}: {body}"
        );
    }
    assert!(gw.consume("orders", "g", 10).await.is_empty());
    assert_healthy(&gw).await;
}

#[tokio::test]
async fn limits_past_what_the_parsers_honour_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[limits]\nmax_json_depth = 500\n", "max_json_depth"),
        ("[limits]\nmax_protobuf_depth = 101\n", "max_protobuf_depth"),
    ] {
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, text).unwrap();
        let error = sluice::config::Config::load(&file, true, std::iter::empty()).unwrap_err();
        assert!(error.to_string().contains(key), "{error}");
    }
}
