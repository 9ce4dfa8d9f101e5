//! Sluice in front of Kafka and NATS JetStream against the same clients without it, on the same
//! brokers (a `tansu` broker and a `nats-server` started by the bench on loopback), with the same
//! ~200-byte JSON orders. Each group runs twice: `*_1x1000`, one batch of 1,000 at a time, which
//! measures latency (the producer's linger and the broker's round trip); and `*_4x1000`, four
//! batches of 1,000 in flight at once, which measures throughput on the two cores the broker, the
//! client and the gateway share.
//!
//! * `kafka_*/raw_rdkafka`: an rdkafka producer configured as Sluice's (idempotent, `acks=all`,
//!   `linger.ms=5`) sends the orders and awaits every delivery report.
//! * `kafka_*/raw_rdkafka_flushed`: the same, with each batch of 1,000 sent as soon as it is
//!   enqueued (the backend's own flush, as the gateway does at the end of a batch request) rather
//!   than after the linger.
//! * `kafka_*/raw_rdkafka_flushed_sluice_headers`: the same, each record carrying the headers
//!   Sluice's Kafka backend adds to a validated order (schema, version, id, content type; built by
//!   the backend's own `for_each_remote_header`), so the broker stores the same bytes as through
//!   Sluice.
//! * `kafka_*/gateway_http_batch`: HTTP batches to a validated Kafka station, each answered after
//!   the broker acknowledged every message.
//! * `kafka_*/gateway_http_batch_no_schema`: the same batches to a station without a schema, to
//!   separate what validation costs from what the HTTP hop costs.
//! * `nats_*/*`: the same with JetStream publishes, every acknowledgement awaited.
//!
//! Run: `cargo bench --bench backends` (needs `tansu` and `nats-server`, which `scripts/test`
//! installs).

mod common;

#[path = "../tests/common/brokers.rs"]
#[allow(dead_code)]
mod brokers;

use std::sync::Arc;

use bytes::Bytes;
use common::{ndjson, order, post_batch, BenchGateway};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::backends::kafka::send_held_records;
use sluice::backends::{for_each_remote_header, ContentKind, Provenance, Record};

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

    let producer: Arc<FutureProducer> = ClientConfig::new()
        .set("bootstrap.servers", kafka.brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .create()
        .map(Arc::new)
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
    let sluice_headers = runtime.block_on(sluice_order_headers(&client, &http));

    for in_flight in [1, 4] {
        let gateway_rows = GatewayRows {
            runtime: &runtime,
            client: &client,
            http: &http,
            batch: &batch,
            in_flight,
        };
        let mut group = c.benchmark_group(format!("kafka_{in_flight}x{MESSAGES}"));
        group.throughput(Throughput::Elements((in_flight * MESSAGES) as u64));
        group.sample_size(20);
        group.bench_function("raw_rdkafka", |b| {
            b.iter(|| runtime.block_on(raw_kafka(&producer, &orders, in_flight, None, false)))
        });
        group.bench_function("raw_rdkafka_flushed", |b| {
            b.iter(|| runtime.block_on(raw_kafka(&producer, &orders, in_flight, None, true)))
        });
        group.bench_function("raw_rdkafka_flushed_sluice_headers", |b| {
            b.iter(|| {
                runtime.block_on(raw_kafka(
                    &producer,
                    &orders,
                    in_flight,
                    Some(&sluice_headers),
                    true,
                ))
            })
        });
        gateway_rows.bench(&mut group, "orders-kafka", "raw-kafka");
        group.finish();

        let mut group = c.benchmark_group(format!("nats_{in_flight}x{MESSAGES}"));
        group.throughput(Throughput::Elements((in_flight * MESSAGES) as u64));
        group.sample_size(20);
        group.bench_function("raw_async_nats", |b| {
            b.iter(|| runtime.block_on(raw_nats(&jetstream, &orders, in_flight)))
        });
        gateway_rows.bench(&mut group, "orders-nats", "raw-nats");
        group.finish();
    }

    gateway.stop(&runtime);
}

/// Sends `orders` `copies` times through the raw producer and awaits every delivery; with
/// `sluice_headers`, each record carries them; with `flush`, each copy is sent as soon as it is
/// enqueued, the way the gateway sends a batch request's records, instead of after `linger.ms`.
async fn raw_kafka(
    producer: &Arc<FutureProducer>,
    orders: &[Bytes],
    copies: usize,
    sluice_headers: Option<&[(String, String)]>,
    flush: bool,
) {
    let mut flushes = Vec::new();
    let mut deliveries = Vec::with_capacity(copies * orders.len());
    for _ in 0..copies {
        deliveries.extend(orders.iter().map(|order| {
            let mut record = FutureRecord::<(), [u8]>::to("orders-raw").payload(&order[..]);
            if let Some(sluice_headers) = sluice_headers {
                let mut headers = OwnedHeaders::new_with_capacity(sluice_headers.len());
                for (key, value) in sluice_headers {
                    headers = headers.insert(Header {
                        key: key.as_str(),
                        value: Some(value.as_bytes()),
                    });
                }
                record = record.headers(headers);
            }
            producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("{e}"))
        }));
        if flush {
            let producer = producer.clone();
            flushes.push(tokio::task::spawn_blocking(move || {
                send_held_records(&producer)
            }));
        }
    }
    for flushed in flushes {
        flushed.await.unwrap();
    }
    for delivery in join_all(deliveries).await {
        delivery.unwrap().unwrap();
    }
}

/// The headers the gateway's Kafka backend sends with a validated order (schema, version, the
/// version's global id, content type), from the backend's own [`for_each_remote_header`].
async fn sluice_order_headers(client: &reqwest::Client, http: &str) -> Vec<(String, String)> {
    let version: serde_json::Value = client
        .get(format!("{http}/v1/schemas/orders/versions/1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = Record {
        received_at_ms: 0,
        deliver_after_ms: None,
        key: None,
        headers: Vec::new(),
        value: Bytes::new(),
        content: ContentKind::Json,
        schema_version: Some(1),
        dead_letter: None,
        provenance: Provenance {
            schema: Some("orders".into()),
            schema_id: Some(version["id"].as_u64().expect("a schema id") as u32),
            content_type: Some("application/json".into()),
            idempotency_key: None,
        },
    };
    let mut headers = Vec::new();
    for_each_remote_header(&record, |key, value| {
        headers.push((key.to_owned(), value.to_owned()))
    });
    headers
}

/// Publishes `orders` `copies` times to the raw stream and awaits every acknowledgement.
async fn raw_nats(jetstream: &async_nats::jetstream::Context, orders: &[Bytes], copies: usize) {
    let mut acks = Vec::with_capacity(copies * orders.len());
    for order in (0..copies).flat_map(|_| orders) {
        acks.push(
            jetstream
                .publish("orders.raw", order.clone())
                .await
                .unwrap(),
        );
    }
    for ack in join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
        ack.unwrap();
    }
}

/// The gateway's two rows of a group: HTTP batches to a validated station and to one without a
/// schema, `in_flight` batches at a time.
struct GatewayRows<'a> {
    runtime: &'a tokio::runtime::Runtime,
    client: &'a reqwest::Client,
    http: &'a str,
    batch: &'a Bytes,
    in_flight: usize,
}

impl GatewayRows<'_> {
    fn bench(
        &self,
        group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        validated: &str,
        schema_less: &str,
    ) {
        for (name, station) in [
            ("gateway_http_batch", validated),
            ("gateway_http_batch_no_schema", schema_less),
        ] {
            group.bench_function(name, |b| {
                b.iter(|| {
                    self.runtime.block_on(post_batches(
                        self.client,
                        self.http,
                        station,
                        self.batch,
                        self.in_flight,
                    ))
                })
            });
        }
    }
}

/// Posts `in_flight` copies of `batch` to `station` at once and checks every message was accepted.
async fn post_batches(
    client: &reqwest::Client,
    http: &str,
    station: &str,
    batch: &Bytes,
    in_flight: usize,
) {
    join_all((0..in_flight).map(|_| post_batch(client, http, station, batch.clone(), MESSAGES)))
        .await;
}

criterion_group!(benches, backends);
criterion_main!(benches);
