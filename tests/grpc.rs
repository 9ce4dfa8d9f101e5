//! The gRPC API against a gateway served in-process: unary and streaming produce with their status
//! codes and rich error details, consume with ack and nack, reflection and health — and the same
//! stored outcome as the HTTP API, read back through the HTTP API.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{eventually, order_request, orders_repo, produce_stream, valid_order, Gateway};
use serde_json::json;
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::produce_result::Outcome;
use sluice::ingress::grpc::proto::{
    AckRequest, ConsumeRequest, Header, NackRequest, ProduceRequest,
};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

async fn client(gw: &Gateway) -> GatewayClient<Channel> {
    GatewayClient::connect(gw.grpc.clone())
        .await
        .expect("the gRPC API accepts connections")
}

fn invalid_order(id: &str) -> serde_json::Value {
    json!({"order_id": id, "items": [{"qty": 0}]})
}

/// Every message of `station` a fresh group can read, through the HTTP API.
async fn read_all(gw: &Gateway, station: &str, group: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    loop {
        let batch = gw.consume(station, group, 500).await;
        if batch.is_empty() {
            return all;
        }
        let offsets: Vec<u64> = batch
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect();
        gw.ack(station, group, &offsets).await;
        all.extend(batch);
    }
}

#[tokio::test]
async fn unary_produce_answers_each_outcome_with_its_code_and_details() {
    let repo = orders_repo("");
    repo.write(
        "stations.toml",
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\n\n\
         [[station]]\nname = \"far\"\nbackend = { kafka = \"far-topic\" }\n",
    );
    // Nothing listens at the Kafka address: its station answers UNAVAILABLE.
    let gw = Gateway::start(
        &repo,
        "[limits]\nmax_message_bytes = 2048\n\n[kafka]\nbrokers = \"127.0.0.1:9\"\nrequest_timeout = \"1s\"\n",
    )
    .await;
    let mut grpc = client(&gw).await;

    let mut valid = order_request("orders", &valid_order("a-1"));
    valid.key = Some(Bytes::from_static(b"customer-7"));
    valid.headers = vec![Header {
        name: "trace".into(),
        value: "t-1".into(),
    }];
    let accepted = grpc.produce(valid).await.unwrap().into_inner();
    assert_eq!(accepted.station, "orders");
    assert_eq!(accepted.schema_version, Some(1));

    let status = grpc
        .produce(order_request("orders", &invalid_order("a-2")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let violations = &details.bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "/items/0/qty");
    assert!(
        violations[0].description.contains("minimum"),
        "{violations:?}"
    );
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "schema_violation");
    assert_eq!(info.domain, "sluice");
    assert_eq!(info.metadata["schema"], "orders");
    assert_eq!(info.metadata["version"], "1");
    let dlq_id = info.metadata["dlq_id"].clone();

    let status = grpc
        .produce(order_request("nowhere", &valid_order("a-3")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("nowhere"), "{status:?}");
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "unknown_station"
    );

    let mut large = order_request("orders", &valid_order("a-4"));
    large.payload = Bytes::from(vec![b' '; 4096]);
    let status = grpc.produce(large).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let status = grpc
        .produce(order_request("far", &valid_order("a-5")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.get_error_details().retry_info().is_some());

    let mut not_json = order_request("orders", &valid_order("a-6"));
    not_json.payload = Bytes::from_static(b"{ nope");
    let status = grpc.produce(not_json).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // What the HTTP API shows is what gRPC stored: one message with its key and header, and the
    // invalid one in the DLQ under the id the status named.
    let stored = read_all(&gw, "orders", "check").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["value"]["order_id"], "a-1");
    assert_eq!(stored[0]["key"], "customer-7");
    assert_eq!(stored[0]["headers"]["trace"], "t-1");
    let (status, dlq) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200);
    let ids: Vec<String> = dlq["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].to_string().trim_matches('"').to_owned())
        .collect();
    assert!(ids.contains(&dlq_id), "{dlq} should hold {dlq_id}");
}

#[tokio::test]
async fn a_stream_of_1000_with_every_tenth_invalid_answers_1000_ordered_results() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let requests: Vec<ProduceRequest> = (0..1000)
        .map(|i| {
            let id = format!("s-{i}");
            if i % 10 == 9 {
                order_request("orders", &invalid_order(&id))
            } else {
                order_request("orders", &valid_order(&id))
            }
        })
        .collect();
    let answered = produce_stream(&gw, requests).await;
    assert_eq!(answered.len(), 1000);
    for (i, outcome) in answered.iter().enumerate() {
        match (i % 10 == 9, outcome) {
            (false, Outcome::Accepted(accepted)) => {
                assert_eq!(accepted.schema_version, Some(1))
            }
            (true, Outcome::Rejected(rejected)) => {
                assert_eq!(rejected.code, Code::InvalidArgument as i32);
                assert_eq!(rejected.error, "schema_violation");
                assert_eq!(rejected.violations[0].path, "/items/0/qty");
                assert!(!rejected.dlq_id.is_empty());
            }
            (invalid, outcome) => panic!("message {i} (invalid: {invalid}) answered {outcome:?}"),
        }
    }

    let stored = read_all(&gw, "orders", "check").await;
    assert_eq!(stored.len(), 900);
    let ids: Vec<String> = stored
        .iter()
        .map(|m| m["value"]["order_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..1000)
        .filter(|i| i % 10 != 9)
        .map(|i| format!("s-{i}"))
        .collect();
    assert_eq!(ids, expected, "exactly the valid ones, in the order sent");
    let (_, dlq) = gw.get("/v1/stations/orders/dlq?max=1000").await;
    assert_eq!(dlq["dead_letters"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn a_refused_message_in_a_stream_does_not_end_it() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let requests = vec![
        order_request("orders", &valid_order("m-1")),
        order_request("nowhere", &valid_order("m-2")),
        order_request("raw", &json!({"anything": true})),
        order_request("orders", &valid_order("m-3")),
    ];
    let outcomes = produce_stream(&gw, requests).await;
    assert_eq!(outcomes.len(), 4);
    assert!(matches!(outcomes[0], Outcome::Accepted(_)));
    match &outcomes[1] {
        Outcome::Rejected(r) => {
            assert_eq!(r.code, Code::NotFound as i32);
            assert_eq!(r.error, "unknown_station");
        }
        other => panic!("{other:?}"),
    }
    match &outcomes[2] {
        Outcome::Accepted(a) => {
            assert_eq!(a.station, "raw");
            assert_eq!(a.schema_version, None);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(outcomes[3], Outcome::Accepted(_)));
    assert_eq!(read_all(&gw, "orders", "check").await.len(), 2);
}

#[tokio::test]
async fn consume_streams_leased_messages_and_ack_and_nack_settle_them() {
    let repo = orders_repo("ack_timeout = \"1h\"");
    let gw = Gateway::start(&repo, "").await;
    let mut grpc = client(&gw).await;
    for i in 0..5 {
        assert_eq!(
            gw.produce("orders", &valid_order(&i.to_string())).await.0,
            201
        );
    }
    let mut stream = grpc
        .consume(ConsumeRequest {
            station: "orders".into(),
            group: "workers".into(),
            max_messages: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        got.push(message);
    }
    assert_eq!(got.len(), 5, "the stream ends after max_messages");
    assert!(got.iter().all(|m| m.delivery == 1));
    assert_eq!(got[0].content_type, "application/json");
    let first: serde_json::Value = serde_json::from_slice(&got[0].value).unwrap();
    assert_eq!(first["order_id"], "0");
    assert_eq!(got[0].schema_version, Some(1));

    let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
    let acked = grpc
        .ack(AckRequest {
            station: "orders".into(),
            group: "workers".into(),
            offsets: offsets[..3].to_vec(),
            partition: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.acked, 3);
    assert!(acked.unknown.is_empty());
    grpc.nack(NackRequest {
        station: "orders".into(),
        group: "workers".into(),
        offsets: offsets[3..].to_vec(),
        delay_ms: 0,
        partition: None,
    })
    .await
    .unwrap();

    // The nacked two come back, once more, with their delivery count raised.
    let mut again = grpc
        .consume(ConsumeRequest {
            station: "orders".into(),
            group: "workers".into(),
            max_messages: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let mut redelivered = Vec::new();
    while let Some(message) = again.message().await.unwrap() {
        redelivered.push((message.offset, message.delivery));
    }
    assert_eq!(
        redelivered,
        vec![(offsets[3], 2), (offsets[4], 2)],
        "only the nacked ones"
    );

    // A stream without a limit long-polls: a message produced later arrives on it.
    let mut open = grpc
        .consume(ConsumeRequest {
            station: "orders".into(),
            group: "late".into(),
            max_messages: 0,
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..5 {
        open.message().await.unwrap().unwrap();
    }
    assert_eq!(gw.produce("orders", &valid_order("late-1")).await.0, 201);
    let late = tokio::time::timeout(Duration::from_secs(10), open.message())
        .await
        .expect("the produced message arrives on the open stream")
        .unwrap()
        .unwrap();
    let late: serde_json::Value = serde_json::from_slice(&late.value).unwrap();
    assert_eq!(late["order_id"], "late-1");

    let status = grpc
        .consume(ConsumeRequest {
            station: "nowhere".into(),
            group: "g".into(),
            max_messages: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = grpc
        .ack(AckRequest {
            station: "orders".into(),
            group: "not a group!".into(),
            offsets: vec![0],
            partition: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn reflection_lists_the_gateway_and_health_says_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let channel = Channel::from_shared(gw.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("a list of services: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"sluice.v1.Gateway".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    let mut health = HealthClient::new(channel);
    let serving = eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move {
            let answer = health
                .check(HealthCheckRequest {
                    service: "sluice.v1.Gateway".into(),
                })
                .await
                .ok()?
                .into_inner();
            (answer.status == ServingStatus::Serving as i32).then_some(())
        }
    })
    .await;
    assert_eq!(serving, ());
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overall.status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn a_python_grpcio_client_gets_the_same_answers() {
    let repo = orders_repo("");
    let gw = Gateway::start(&repo, "").await;
    let proto_root = common::project_file("proto").display().to_string();
    let target = gw.grpc.trim_start_matches("http://").to_owned();
    let stdout = common::python_client(
        "tests/clients/grpc_produce.py",
        vec![proto_root, target],
        "grpcio, grpcio-tools, grpcio-status",
    )
    .await;
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();

    assert_eq!(report["valid"]["code"], "OK", "{report}");
    assert_eq!(report["valid"]["schema_version"], 1);
    assert_eq!(report["invalid"]["code"], "INVALID_ARGUMENT", "{report}");
    assert_eq!(report["invalid"]["reason"], "schema_violation");
    assert_eq!(report["invalid"]["violations"][0]["field"], "/items/0/qty");
    assert!(report["invalid"]["metadata"]["dlq_id"].is_string());
    assert_eq!(report["unknown_station"]["code"], "NOT_FOUND", "{report}");
    assert_eq!(report["unknown_station"]["reason"], "unknown_station");
    for stream in ["stream", "gzip_stream"] {
        let stream = report[stream].as_array().unwrap();
        assert_eq!(stream.len(), 20);
        for (i, result) in stream.iter().enumerate() {
            assert_eq!(result["index"], i);
            if i % 10 == 9 {
                assert_eq!(result["rejected"], "schema_violation", "{result}");
                assert_eq!(result["path"], "/items/0/qty");
            } else {
                assert!(result["accepted"].is_u64(), "{result}");
            }
        }
    }
    // gzip-compressed calls are judged as the plain ones are.
    assert_eq!(report["gzip_valid"]["code"], "OK", "{report}");
    assert_eq!(
        report["gzip_invalid"]["code"], "INVALID_ARGUMENT",
        "{report}"
    );
    assert_eq!(report["gzip_invalid"]["reason"], "schema_violation");

    let stored = read_all(&gw, "orders", "check").await;
    assert_eq!(stored.len(), 1 + 18 + 1 + 18);
    assert_eq!(stored[0]["key"], "py-key");
    assert_eq!(stored[0]["headers"]["origin"], "python");
    // What a compressed call stored is the decoded message.
    let gzipped = stored.iter().find(|m| m["value"]["order_id"] == "py-gz-1");
    assert_eq!(gzipped.unwrap()["value"]["items"][0]["qty"], 1);
}

#[tokio::test]
async fn consume_sends_each_message_with_the_content_type_it_was_stored_with() {
    let repo = orders_repo("");
    repo.write(
        "payments/v1.proto",
        "syntax = \"proto3\";\npackage acme;\nmessage Payment {\n  string id = 1;\n  int64 cents = 2;\n}\n",
    );
    repo.write(
        "clicks/v1.avsc",
        r#"{"type":"record","name":"Click","fields":[{"name":"url","type":"string"}]}"#,
    );
    repo.write(
        "stations.toml",
        "[[station]]\nname = \"payments\"\nschema = \"payments\"\nnormalize = \"binary\"\n\n\
         [[station]]\nname = \"clicks\"\nschema = \"clicks\"\nframing = \"confluent\"\n\n\
         [[station]]\nname = \"raw\"\n",
    );
    let gw = Gateway::start(&repo, "").await;
    let mut grpc = client(&gw).await;
    for (station, payload, content_type, stored_as) in [
        (
            "payments",
            r#"{"id": "p-1", "cents": "125"}"#,
            "application/json",
            "application/x-protobuf",
        ),
        (
            "clicks",
            r#"{"url": "https://shop.example/"}"#,
            "application/json",
            "application/vnd.confluent",
        ),
        ("raw", "plain words", "text/plain", "text/plain"),
    ] {
        let answer = grpc
            .produce(ProduceRequest {
                station: station.into(),
                payload: Bytes::from(payload),
                content_type: content_type.into(),
                ..ProduceRequest::default()
            })
            .await;
        assert!(answer.is_ok(), "{station}: {answer:?}");
        let mut stream = grpc
            .consume(ConsumeRequest {
                station: station.into(),
                group: "readers".into(),
                max_messages: 1,
            })
            .await
            .unwrap()
            .into_inner();
        let message = stream.message().await.unwrap().expect("one message");
        assert_eq!(message.content_type, stored_as, "{station}");
    }
}
