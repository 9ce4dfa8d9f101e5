//! Sluice in front of Kafka and NATS JetStream against the same clients without it, on the same
//! brokers (a `tansu` broker and a `nats-server` started by the bench on loopback), with the same
//! 1,000 ~200-byte JSON orders per iteration:
//!
//! * `kafka_1000/raw_rdkafka`: an rdkafka producer configured as Sluice's (idempotent,
//!   `acks=all`, `linger.ms=5`) sends the orders and awaits every delivery report.
//! * `kafka_1000/gateway_http_batch`: one HTTP batch to a validated Kafka station, answered after
//!   the broker acknowledged every message.
//! * `kafka_1000/gateway_http_batch_no_schema`: the same batch to a station without a schema, to
//!   separate what validation costs from what the HTTP hop costs.
//! * `nats_1000/*`: the same three with JetStream publishes, every acknowledgement awaited.
//!
//! Run: `cargo bench --bench backends` (needs `tansu` and `nats-server`, which `scripts/test`
//! installs).

mod common;

#[path = "../tests/common/brokers.rs"]
#[allow(dead_code)]
mod brokers;

use bytes::Bytes;
use common::{ndjson, order, post_batch, BenchGateway};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const MESSAGES: usize = 1000;

const STATIONS: &str = r#"
[[station]]
name = "orders-kafka"
schema = "orders"
backend = { kafka = "orders-via-sluice" }

[[station]]
name = "orders-nats"
schema = "orders"
backend = { nats = "orders.via-sluice" }

[[station]]
name = "raw-kafka"
backend = { kafka = "raw-via-sluice" }

[[station]]
name = "raw-nats"
backend = { nats = "raw.via-sluice" }
"#;

fn backends(c: &mut Criterion) {
    let kafka = brokers::Kafka::start();
    let nats = brokers::Nats::start();
    let runtime = common::runtime();
    let gateway = BenchGateway::start(
        &runtime,
        STATIONS,
        &format!(
            "[kafka]\nbrokers = \"{}\"\n\n[nats]\nurl = \"{}\"\n",
            kafka.brokers(),
            nats.url()
        ),
    );
    let client = reqwest::Client::new();
    let orders: Vec<Bytes> = (0..MESSAGES).map(|i| Bytes::from(order(i))).collect();
    let batch = ndjson(&orders);
    let http = gateway.http.clone();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .create()
        .unwrap();
    runtime.block_on(async {
        let topic = NewTopic::new("orders-raw", 1, TopicReplication::Fixed(1));
        for result in admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .unwrap()
        {
            result.unwrap();
        }
    });
    let jetstream = runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        jetstream
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "RAW".into(),
                subjects: vec!["orders.raw".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        jetstream
    });
    // One warm-up message each way, so topics and streams exist before measuring.
    runtime.block_on(async {
        post_batch(&client, &http, "orders-kafka", ndjson(&orders[..1]), 1).await;
        post_batch(&client, &http, "orders-nats", ndjson(&orders[..1]), 1).await;
        post_batch(&client, &http, "raw-kafka", ndjson(&orders[..1]), 1).await;
        post_batch(&client, &http, "raw-nats", ndjson(&orders[..1]), 1).await;
    });

    let mut group = c.benchmark_group("kafka_1000");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(20);
    group.bench_function("raw_rdkafka", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let deliveries: Vec<_> = orders
                    .iter()
                    .map(|order| {
                        producer
                            .send_result(
                                FutureRecord::<(), [u8]>::to("orders-raw").payload(&order[..]),
                            )
                            .unwrap_or_else(|(e, _)| panic!("{e}"))
                    })
                    .collect();
                for delivery in join_all(deliveries).await {
                    delivery.unwrap().unwrap();
                }
            })
        })
    });
    for (name, station) in [
        ("gateway_http_batch", "orders-kafka"),
        ("gateway_http_batch_no_schema", "raw-kafka"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(post_batch(&client, &http, station, batch.clone(), MESSAGES))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("nats_1000");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.sample_size(20);
    group.bench_function("raw_async_nats", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut acks = Vec::with_capacity(MESSAGES);
                for order in &orders {
                    acks.push(
                        jetstream
                            .publish("orders.raw", order.clone())
                            .await
                            .unwrap(),
                    );
                }
                for ack in
                    join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await
                {
                    ack.unwrap();
                }
            })
        })
    });
    for (name, station) in [
        ("gateway_http_batch", "orders-nats"),
        ("gateway_http_batch_no_schema", "raw-nats"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(post_batch(&client, &http, station, batch.clone(), MESSAGES))
            })
        });
    }
    group.finish();

    gateway.stop(&runtime);
}

criterion_group!(benches, backends);
criterion_main!(benches);
