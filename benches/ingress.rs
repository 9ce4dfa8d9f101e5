//! The two front ends side by side, on one gateway (in-process, loopback, the embedded store with
//! `fsync = "always"`), producing the same ~200-byte JSON orders to the same validated station:
//!
//! * `ingress_produce_1000/http_batch`: one `POST /v1/stations/orders/messages:batch` of 1,000
//!   NDJSON envelopes.
//! * `ingress_produce_1000/grpc_stream`: one `ProduceStream` call carrying 1,000 requests, every
//!   result read.
//! * `ingress_produce_one/http` and `/grpc_unary`: one message per request, one after another.
//! * `ingress_answer_page/{identity,gzip,zstd}`: `GET /v1/stations/orders/dlq?max=100`, a page of
//!   100 dead letters, with `Accept-Encoding` asking for each (the answer read, not decoded); the
//!   bytes each page took are printed once.
//!
//! Run: `cargo bench --bench ingress`

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{ndjson, order, post_batch, BenchGateway};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::ProduceRequest;

fn produce(c: &mut Criterion) {
    let runtime = common::runtime();
    let gateway = BenchGateway::start(
        &runtime,
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
        "",
    );
    let http = gateway.http.clone();
    let client = reqwest::Client::new();
    let grpc_url = gateway.grpc.clone();
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
    let ndjson = ndjson(&orders);
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
        b.iter(|| runtime.block_on(post_batch(&client, &http, "orders", ndjson.clone(), 1000)))
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

    answer_pages(c, &runtime, &client, &http);
    gateway.stop(&runtime);
}

/// A page of 100 dead letters, uncompressed and as each codec compresses it.
fn answer_pages(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    http: &str,
) {
    let invalid: Vec<Bytes> = (0..100)
        .map(|i| {
            Bytes::from(
                String::from_utf8(order(i))
                    .unwrap()
                    .replace("\"qty\":2", "\"qty\":0"),
            )
        })
        .collect();
    runtime.block_on(async {
        let answer = client
            .post(format!("{http}/v1/stations/orders/messages:batch"))
            .header("content-type", "application/x-ndjson")
            .body(ndjson(&invalid))
            .send()
            .await
            .unwrap();
        let answer: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(
            answer["rejected"], 100,
            "every order is refused and dead-lettered"
        );
    });
    let page = format!("{http}/v1/stations/orders/dlq?max=100");
    let fetch = |encoding: &'static str| {
        let request = client.get(&page).header("accept-encoding", encoding);
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200);
            let served = answer
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(served.as_deref().unwrap_or("identity"), encoding);
            answer.bytes().await.unwrap().len()
        }
    };
    let mut group = c.benchmark_group("ingress_answer_page");
    for encoding in ["identity", "gzip", "zstd"] {
        let bytes = runtime.block_on(fetch(encoding));
        println!("ingress_answer_page/{encoding}: {bytes} bytes per page of 100 dead letters");
        group.bench_function(encoding, |b| b.iter(|| runtime.block_on(fetch(encoding))));
    }
    group.finish();
}

criterion_group!(benches, produce);
criterion_main!(benches);
