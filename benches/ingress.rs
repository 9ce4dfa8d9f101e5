//! The two front ends side by side, on one gateway (in-process, loopback, the embedded store with
//! `fsync = "always"`), producing the same ~200-byte JSON orders to the same validated station:
//!
//! * `ingress_produce_1000/http_batch`: one `POST /v1/stations/orders/messages:batch` of 1,000
//!   NDJSON envelopes.
//! * `ingress_produce_1000/grpc_stream`: one `ProduceStream` call carrying 1,000 requests, every
//!   result read.
//! * `ingress_produce_one/http` and `/grpc_unary`: one message per request, one after another.
//!
//! Run: `cargo bench --bench ingress`

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::ProduceRequest;

const ORDER_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["order_id", "customer", "items"],
  "properties": {
    "order_id": {"type": "string", "minLength": 1},
    "customer": {"type": "string"},
    "note": {"type": "string", "maxLength": 200},
    "items": {"type": "array", "minItems": 1, "items": {
      "type": "object", "required": ["sku", "qty"],
      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
    }}
  }
}"#;

fn order(i: usize) -> Vec<u8> {
    format!(
        r#"{{"order_id":"ord-{i:08}","customer":"cus-{c:05}","note":"leave at the door, ring twice","items":[{{"sku":"SKU-{i:06}-A","qty":2}},{{"sku":"SKU-{i:06}-B","qty":1}}]}}"#,
        c = i % 10_000
    )
    .into_bytes()
}

fn produce(c: &mut Criterion) {
    let repo = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("orders")).unwrap();
    std::fs::write(repo.path().join("orders/v1.json"), ORDER_SCHEMA).unwrap();
    std::fs::write(
        repo.path().join("stations.toml"),
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
    )
    .unwrap();
    let config_file = data.path().join("sluice.toml");
    std::fs::write(
        &config_file,
        format!(
            "[registry]\nsource = \"{}\"\n\n[storage]\ndir = \"{}\"\nfsync = \"always\"\n",
            repo.path().display(),
            data.path().join("store").display()
        ),
    )
    .unwrap();
    let config = sluice::config::Config::load(&config_file, true, std::iter::empty()).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listeners = runtime.block_on(async {
        sluice::server::Listeners {
            http: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            grpc: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        }
    });
    let http = format!("http://{}", listeners.http.local_addr().unwrap());
    let grpc_url = format!(
        "http://{}",
        listeners.grpc.as_ref().unwrap().local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(sluice::server::serve(config, listeners, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let grpc = runtime.block_on(async {
        for _ in 0..200 {
            if let Ok(client) = GatewayClient::connect(grpc_url.clone()).await {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the gRPC API never accepted a connection");
    });

    let orders: Vec<Bytes> = (0..1000).map(|i| Bytes::from(order(i))).collect();
    // The batch envelope: one `{"value": ...}` per line.
    let ndjson: Bytes = orders
        .iter()
        .flat_map(|o| {
            let line = [br#"{"value":"#.as_slice(), o, b"}\n"].concat();
            line.into_iter()
        })
        .collect::<Vec<u8>>()
        .into();
    let requests: Vec<ProduceRequest> = orders
        .iter()
        .map(|payload| ProduceRequest {
            station: "orders".into(),
            payload: payload.clone(),
            content_type: "application/json".into(),
            ..ProduceRequest::default()
        })
        .collect();

    let mut group = c.benchmark_group("ingress_produce_1000");
    group.throughput(Throughput::Elements(orders.len() as u64));
    group.sample_size(20);
    group.bench_function("http_batch", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let answer: serde_json::Value = client
                    .post(format!("{http}/v1/stations/orders/messages:batch"))
                    .header("content-type", "application/x-ndjson")
                    .body(ndjson.clone())
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(answer["accepted"], 1000, "{answer}");
            })
        })
    });
    group.bench_function("grpc_stream", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut grpc = grpc.clone();
                let mut results = grpc
                    .produce_stream(tokio_stream::iter(requests.clone()))
                    .await
                    .unwrap()
                    .into_inner();
                let mut answered = 0;
                while let Some(result) = results.message().await.unwrap() {
                    assert!(result.outcome.is_some());
                    answered += 1;
                }
                assert_eq!(answered, 1000);
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("ingress_produce_one");
    group.throughput(Throughput::Elements(1));
    group.bench_function("http", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = client
                    .post(format!("{http}/v1/stations/orders/messages"))
                    .header("content-type", "application/json")
                    .body(orders[0].clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            })
        })
    });
    group.bench_function("grpc_unary", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut grpc = grpc.clone();
                grpc.produce(requests[0].clone()).await.unwrap();
            })
        })
    });
    group.finish();

    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
}

criterion_group!(benches, produce);
criterion_main!(benches);
