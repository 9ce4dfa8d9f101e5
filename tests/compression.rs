//! Compressed requests and answers, as producers and consumers send and take them: request bodies
//! in gzip, deflate or zstd are judged and stored as their decoded bytes on every route that takes
//! a body, the limits count decoded bytes, an unknown encoding is a 415 naming it, gRPC messages
//! compressed with gzip or zstd are accepted, and large answers are compressed for clients that
//! accept it.

mod common;

use std::io::{Read, Write};

use common::{orders_repo, valid_order, Gateway};
use serde_json::{json, Value};
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use tonic::codec::CompressionEncoding;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `deflate` as HTTP means it: a zlib stream.
fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// `status` is `expected`, and the answer's message names the limit `key`.
fn assert_refused(status: u16, answer: &Value, expected: u16, key: &str) {
    assert_eq!(status, expected, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains(key), "names {key}: {message}");
}

/// An NDJSON batch of `count` valid orders `{prefix}-{i}`.
fn orders_ndjson(prefix: &str, count: usize) -> Vec<u8> {
    (0..count)
        .map(|i| json!({"value": valid_order(&format!("{prefix}-{i}"))}).to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

/// Every message of `station`, read by a group of its own.
async fn stored(gw: &Gateway, station: &str, group: &str) -> Vec<Value> {
    gw.consume(station, group, 1000).await
}

#[tokio::test]
async fn compressed_batches_are_stored_as_their_uncompressed_equivalents() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let path = "/v1/stations/orders/messages:batch";
    let ndjson = "application/x-ndjson";

    let (status, plain) = gw
        .post_bytes(path, ndjson, orders_ndjson("plain", 50), &[])
        .await;
    assert_eq!(status, 200, "{plain}");
    let encoded = [
        ("gzip", gzip(&orders_ndjson("gzip", 50))),
        ("zstd", zstd(&orders_ndjson("zstd", 50))),
        ("deflate", deflate(&orders_ndjson("deflate", 50))),
    ];
    for (encoding, body) in encoded {
        let headers = [("Content-Encoding", encoding)];
        let (status, answer) = gw.post_bytes(path, ndjson, body, &headers).await;
        assert_eq!(status, 200, "{encoding}: {answer}");
        assert_eq!(
            answer["accepted"], plain["accepted"],
            "{encoding}: {answer}"
        );
        assert_eq!(answer["rejected"], 0);
    }
    // A JSON array batch, and an invalid item judged inside a compressed body.
    let array = json!([{"value": valid_order("array-0")}, {"value": {"order_id": "bad"}}]);
    let headers = [("Content-Encoding", "GZIP")];
    let body = gzip(array.to_string().as_bytes());
    let (status, answer) = gw
        .post_bytes(path, "application/json", body, &headers)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], 201);
    assert_eq!(answer["results"][1]["status"], 422);

    let messages = stored(&gw, "orders", "reader").await;
    assert_eq!(messages.len(), 4 * 50 + 1);
    for (i, prefix) in ["plain", "gzip", "zstd", "deflate"].iter().enumerate() {
        for j in 0..50 {
            let message = &messages[i * 50 + j];
            assert_eq!(message["value"], valid_order(&format!("{prefix}-{j}")));
            // Content-Encoding described the request's body, not the message.
            assert!(message["headers"].as_object().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn every_route_that_takes_a_body_decodes_it() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let order = serde_json::to_vec(&valid_order("single")).unwrap();

    let headers = [("Content-Encoding", " Identity")];
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            order.clone(),
            &headers,
        )
        .await;
    assert_eq!(status, 201, "identity, spelled as any client may: {answer}");
    let headers = [("Content-Encoding", "x-gzip")];
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            gzip(&order),
            &headers,
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        stored(&gw, "orders", "reader").await[0]["value"],
        valid_order("single")
    );

    // The dry run judges the decoded body.
    let bad = serde_json::to_vec(&json!({"order_id": "x", "items": [{"qty": 0}]})).unwrap();
    let headers = [("Content-Encoding", "zstd")];
    let (status, answer) = gw
        .post_bytes(
            "/v1/schemas/orders/validate",
            "application/json",
            zstd(&bad),
            &headers,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["violations"][0]["path"], "/items/0/qty");

    // Ack, with a body of its own.
    let (_, consumed) = gw
        .get("/v1/stations/orders/messages?group=acker&max=1")
        .await;
    let offset = consumed["messages"][0]["offset"].as_u64().unwrap();
    let ack = json!({"group": "acker", "offsets": [offset]}).to_string();
    let headers = [("Content-Encoding", "deflate")];
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/ack",
            "application/json",
            deflate(ack.as_bytes()),
            &headers,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["acked"], 1);

    // The Confluent-compatible API: a candidate schema looked up under its subject.
    let candidate = json!({"schema": common::ORDER_SCHEMA, "schemaType": "JSON"}).to_string();
    let headers = [("Content-Encoding", "gzip")];
    let (status, answer) = gw
        .post_bytes(
            "/subjects/orders",
            "application/vnd.schemaregistry.v1+json",
            gzip(candidate.as_bytes()),
            &headers,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["version"], 1);
}

#[tokio::test]
async fn an_encoding_sluice_does_not_decode_is_refused_415_naming_it() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let order = serde_json::to_vec(&valid_order("x")).unwrap();
    let path = "/v1/stations/orders/messages";
    for encoding in ["br", "compress", "gzip, zstd"] {
        let headers = [("Content-Encoding", encoding)];
        let (status, answer) = gw
            .post_bytes(path, "application/json", order.clone(), &headers)
            .await;
        assert_eq!(status, 415, "{encoding}: {answer}");
        assert_eq!(answer["error"], "unsupported_encoding");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{encoding}`")), "{message}");
        assert!(message.contains("gzip, deflate, zstd"), "{message}");
    }
    assert!(stored(&gw, "orders", "reader").await.is_empty());
}

#[tokio::test]
async fn a_body_that_does_not_decode_is_a_400_naming_its_encoding() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let order = serde_json::to_vec(&valid_order("x")).unwrap();
    let truncated = {
        let whole = zstd(&order);
        whole[..whole.len() - 3].to_vec()
    };
    let path = "/v1/stations/orders/messages";
    for (encoding, body) in [("gzip", order.clone()), ("zstd", truncated)] {
        let headers = [("Content-Encoding", encoding)];
        let (status, answer) = gw
            .post_bytes(path, "application/json", body, &headers)
            .await;
        assert_eq!(status, 400, "{encoding}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("not valid {encoding}")),
            "{message}"
        );
    }
    assert!(stored(&gw, "orders", "reader").await.is_empty());
}

#[tokio::test]
async fn the_limits_count_decoded_bytes() {
    let repo = orders_repo("");
    let config = "[limits]\nmax_message_bytes = 65536\nmax_batch_bytes = 1048576\n";
    let gw = Gateway::start(&repo, config).await;

    // 100 KiB of JSON that gzips to a few hundred bytes: past the message limit once decoded.
    let order = json!({"order_id": "x".repeat(100 * 1024), "items": [{"qty": 1}]}).to_string();
    let body = gzip(order.as_bytes());
    assert!(body.len() < 65536);
    let headers = [("Content-Encoding", "gzip")];
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            body,
            &headers,
        )
        .await;
    assert_refused(status, &answer, 413, "limits.max_message_bytes");

    // A batch that inflates to 64 MiB: refused once a mebibyte has come out.
    let bomb = zstd(&vec![b' '; 64 << 20]);
    let headers = [("Content-Encoding", "zstd")];
    let (status, answer) = gw
        .post_bytes(
            "/v1/stations/orders/messages:batch",
            "application/x-ndjson",
            bomb,
            &headers,
        )
        .await;
    assert_refused(status, &answer, 413, "limits.max_batch_bytes");
    assert!(gw
        .metrics()
        .await
        .contains("sluice_limit_hits_total{limit=\"limits.max_batch_bytes\"} 1"));
    assert!(stored(&gw, "orders", "reader").await.is_empty());
}

#[tokio::test]
async fn an_answer_given_before_the_body_is_read_closes_the_connection() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "[limits]\nmax_message_bytes = 65536\n").await;
    let url = gw.url("/v1/stations/orders/messages");
    let send = |body: Vec<u8>| {
        gw.client
            .post(&url)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
    };
    let order = serde_json::to_vec(&valid_order("kept-alive")).unwrap();
    let answer = send(gzip(&order)).send().await.unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(
        answer.headers().get("connection"),
        None,
        "read to its end: kept alive"
    );

    // 64 MiB of spaces in 64 KB of gzip: refused once 64 KiB have come out of the first few
    // hundred bytes read, with the rest of the body unread.
    let answer = send(gzip(&vec![b' '; 64 << 20])).send().await.unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(answer.headers()["connection"], "close");
    // The client opens a new connection for what it sends next.
    let answer = send(gzip(&order)).send().await.unwrap();
    assert_eq!(answer.status(), 201);
}

/// A chunk of an HTTP/1.1 chunked body.
fn chunk(data: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
}

#[tokio::test]
async fn compressed_bodies_being_decoded_share_one_budget() {
    let repo = orders_repo("");
    let config = "[limits]\nmax_message_bytes = 1048576\nmax_decoding_bytes = 1048576\nmax_batch_bytes = 1048576\n";
    let gw = Gateway::start(&repo, config).await;
    let path = "/v1/stations/orders/messages:batch";
    let item = |i: usize| {
        json!({"value": {"order_id": format!("{i}-{}", "x".repeat(1000)), "items": [{"qty": 1}]}})
            .to_string()
            + "\n"
    };
    // A producer whose gzip body has decoded to 0.85 MiB and then stalls.
    let address = gw.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\n\
         Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..850 {
        encoder.write_all(item(i).as_bytes()).unwrap();
    }
    encoder.flush().unwrap();
    slow.write_all(&chunk(&std::mem::take(encoder.get_mut())))
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Another compressed body that would take the budget past 1 MiB: 503, to be retried.
    let other: String = (1000..1300).map(item).collect();
    let headers = [("Content-Encoding", "gzip")];
    let (status, answer) = gw
        .post_bytes(
            path,
            "application/x-ndjson",
            gzip(other.as_bytes()),
            &headers,
        )
        .await;
    assert_refused(status, &answer, 503, "limits.max_decoding_bytes");
    assert_eq!(answer["error"], "decoding_busy");
    // The Confluent-compatible API shares the budget, and answers in its own shape.
    let candidate = json!({"schema": "x".repeat(300 * 1024), "schemaType": "JSON"}).to_string();
    let (status, answer) = gw
        .post_bytes(
            "/subjects/orders",
            "application/vnd.schemaregistry.v1+json",
            gzip(candidate.as_bytes()),
            &headers,
        )
        .await;
    assert_refused(status, &answer, 503, "limits.max_decoding_bytes");
    assert_eq!(answer["error_code"], 50003);
    // An uncompressed body costs its sender its own bytes, and takes nothing from the budget.
    let (status, _) = gw
        .post_bytes(
            path,
            "application/x-ndjson",
            other.clone().into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 200);

    // The stalled producer finishes: its batch is stored, and the budget is given back.
    let rest = encoder.finish().unwrap();
    slow.write_all(&[chunk(&rest), b"0\r\n\r\n".to_vec()].concat())
        .unwrap();
    // The gateway runs on this test's runtime: the blocking read waits beside it.
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = [0u8; 64];
        let read = slow.read(&mut answer).unwrap();
        answer[..read].to_vec()
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, answer) = gw
        .post_bytes(
            path,
            "application/x-ndjson",
            gzip(other.as_bytes()),
            &headers,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let first_page = stored(&gw, "orders", "reader").await.len();
    let second_page = stored(&gw, "orders", "reader").await.len();
    assert_eq!(first_page + second_page, 300 + 850 + 300);
}

/// GETs `path` accepting `accept_encoding`: the answer's `Content-Encoding` and its decoded JSON.
async fn get_encoded(gw: &Gateway, path: &str, accept_encoding: &str) -> (Option<String>, Value) {
    let response = gw
        .client
        .get(gw.url(path))
        .header("Accept-Encoding", accept_encoding)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.unwrap();
    let decoded = match encoding.as_deref() {
        None => bytes.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        Some("zstd") => zstd::decode_all(&bytes[..]).unwrap(),
        Some(other) => panic!("answered in {other}"),
    };
    (encoding, serde_json::from_slice(&decoded).unwrap())
}

#[tokio::test]
async fn large_answers_are_compressed_for_clients_that_accept_it() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let path = "/v1/stations/orders/messages:batch";
    let (status, _) = gw
        .post_bytes(path, "application/x-ndjson", orders_ndjson("o", 100), &[])
        .await;
    assert_eq!(status, 200);
    let bad: String = (0..20)
        .map(|i| json!({"value": {"order_id": format!("bad-{i}")}}).to_string() + "\n")
        .collect();
    gw.post_bytes(path, "application/x-ndjson", bad.into_bytes(), &[])
        .await;

    let page = "/v1/stations/orders/messages?group=g&max=100";
    let (encoding, zstd_page) = get_encoded(&gw, page, "gzip;q=0.5, zstd").await;
    assert_eq!(encoding.as_deref(), Some("zstd"));
    assert_eq!(zstd_page["messages"].as_array().unwrap().len(), 100);
    let page = "/v1/stations/orders/messages?group=h&max=100";
    let (encoding, gzip_page) = get_encoded(&gw, page, "gzip").await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let (encoding, plain_page) = get_encoded(
        &gw,
        "/v1/stations/orders/messages?group=i&max=100",
        "identity",
    )
    .await;
    assert_eq!(encoding, None);
    for page in [&zstd_page, &gzip_page] {
        for (a, b) in page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .zip(plain_page["messages"].as_array().unwrap())
        {
            assert_eq!(a["value"], b["value"]);
        }
    }

    let (encoding, dead_letters) = get_encoded(&gw, "/v1/stations/orders/dlq?max=20", "gzip").await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(dead_letters["dead_letters"].as_array().unwrap().len(), 20);

    // Small answers go as they are.
    let (encoding, _) = get_encoded(&gw, "/healthz", "gzip, zstd").await;
    assert_eq!(encoding, None);
}

#[tokio::test]
async fn answers_stay_uncompressed_when_compress_responses_is_off() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "[server]\ncompress_responses = false\n").await;
    let path = "/v1/stations/orders/messages:batch";
    gw.post_bytes(path, "application/x-ndjson", orders_ndjson("o", 100), &[])
        .await;
    let page = "/v1/stations/orders/messages?group=g&max=100";
    let (encoding, page) = get_encoded(&gw, page, "gzip, zstd").await;
    assert_eq!(encoding, None);
    assert_eq!(page["messages"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn grpc_messages_compressed_with_gzip_or_zstd_are_accepted() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "[limits]\nmax_message_bytes = 65536\n").await;
    for (encoding, id) in [
        (CompressionEncoding::Gzip, "gz"),
        (CompressionEncoding::Zstd, "zs"),
    ] {
        let mut grpc = GatewayClient::connect(gw.grpc.clone())
            .await
            .unwrap()
            .send_compressed(encoding);
        let accepted = grpc
            .produce(common::order_request("orders", &valid_order(id)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(accepted.schema_version, Some(1));
        let requests: Vec<_> = (0..10)
            .map(|i| common::order_request("orders", &valid_order(&format!("{id}-{i}"))))
            .collect();
        let mut results = grpc
            .produce_stream(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut accepted = 0;
        while let Some(result) = results.message().await.unwrap() {
            accepted += matches!(
                result.outcome,
                Some(sluice::ingress::grpc::proto::produce_result::Outcome::Accepted(_))
            ) as usize;
        }
        assert_eq!(accepted, 10);

        // A message that inflates past the limit is refused (tonic checks the limit while it
        // inflates).
        let huge = json!({"order_id": "x".repeat(1 << 20), "items": [{"qty": 1}]});
        let refused = grpc
            .produce(common::order_request("orders", &huge))
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
    }
    let messages = stored(&gw, "orders", "reader").await;
    assert_eq!(messages.len(), 22);
    assert_eq!(messages[0]["value"], valid_order("gz"));
}

#[tokio::test]
async fn opentelemetry_exports_spans_with_gzip_to_an_otlp_traces_station() {
    let repo = common::Repo::new(&[(
        "stations.toml",
        "[[station]]\nname = \"traces\"\nschema = \"traces\"\n",
    )]);
    // The OTLP protos, as the exporter's own package compiled them; the collector's trace service
    // file is the station's schema.
    let python = |args: Vec<String>| {
        common::python_client(
            "tests/clients/otlp_export.py",
            args,
            "opentelemetry-exporter-otlp-proto-http",
        )
    };
    python(vec!["protos".into(), repo.path().display().to_string()]).await;
    let service = repo
        .path()
        .join("opentelemetry/proto/collector/trace/v1/trace_service.proto");
    std::fs::create_dir_all(repo.path().join("traces")).unwrap();
    std::fs::rename(&service, repo.path().join("traces/v1.proto")).unwrap();
    repo.write(
        "traces/schema.toml",
        "message = \"opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest\"\n",
    );
    let gw = Gateway::start(&repo, "").await;

    let url = gw.url("/v1/stations/traces/messages");
    let stdout = python(vec!["export".into(), url]).await;
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["spans"], 4, "{report}");
    assert_eq!(report["gzip"], "SUCCESS", "{report}");
    assert_eq!(report["none"], "SUCCESS", "{report}");

    // Both exports stored the uncompressed ExportTraceServiceRequest, byte for byte.
    let messages = stored(&gw, "traces", "reader").await;
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert_eq!(message["value_base64"], report["request_base64"]);
        assert_eq!(message["schema_version"], 1);
    }
}
