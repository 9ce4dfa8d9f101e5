//! Sluice in front of Kafka and NATS JetStream against the same clients without it, on the same
//! brokers (a `tansu` broker and a `nats-server` started by the bench on loopback), with the same
//! ~200-byte JSON orders, batches of 1,000 sent three ways:
//!
//! * `*_1x1000`: one batch at a time, which measures latency (the producer's linger and the
//!   broker's round trip);
//! * `*_4x1000`: rounds of four batches sent at once, each round awaited whole before the next;
//! * `*_window4x1000`: four batches always in flight, each one answered replaced by the next at
//!   once, which measures sustained throughput on the two cores the broker, the client and the
//!   gateway share (a round leaves one side idle while the other works: the gateway judges, then
//!   the broker stores).
//!
//! Criterion measures a group's rows one after another, seconds apart, while the broker's speed
//! drifts; after each group the bench also prints every row's throughput relative to the raw
//! producer measured in alternation, round by round (best of several), the figures to quote
//! (for the groups a filter on the command line names, or all of them without one).
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

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ndjson, order, post_batch, BenchGateway};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice::backends::for_each_remote_header;
use sluice::backends::kafka::send_held_records;
use sluice::model::{ContentKind, Provenance, Record};

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
    let kafka = brokers::Kafka::start_in_memory();
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
    let orders: Arc<Vec<Bytes>> = Arc::new((0..MESSAGES).map(|i| Bytes::from(order(i))).collect());
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
    let sluice_headers: &'static [(String, String)] = runtime
        .block_on(sluice_order_headers(&client, &http))
        .leak();

    for flow in [Flow::Rounds(1), Flow::Rounds(4), Flow::Window(4)] {
        let batches = flow.batches();
        let elements = Throughput::Elements((batches * MESSAGES) as u64);
        let raw = |flushed: bool, headers: Option<&'static [(String, String)]>| {
            let producer = producer.clone();
            let orders = orders.clone();
            move || {
                let producer = producer.clone();
                let orders = orders.clone();
                async move { raw_kafka(&producer, &orders, headers, flushed).await }
            }
        };
        let gateway_batches = |station: &'static str| {
            let client = client.clone();
            let http = http.clone();
            let batch = batch.clone();
            move || {
                let client = client.clone();
                let http = http.clone();
                let batch = batch.clone();
                async move { post_batch(&client, &http, station, batch, MESSAGES).await }
            }
        };

        let kafka_rows: [(&str, BatchMaker); 5] = [
            ("raw_rdkafka", Box::new(boxed(raw(false, None)))),
            ("raw_rdkafka_flushed", Box::new(boxed(raw(true, None)))),
            (
                "raw_rdkafka_flushed_sluice_headers",
                Box::new(boxed(raw(true, Some(sluice_headers)))),
            ),
            (
                "gateway_http_batch",
                Box::new(boxed(gateway_batches("orders-kafka"))),
            ),
            (
                "gateway_http_batch_no_schema",
                Box::new(boxed(gateway_batches("raw-kafka"))),
            ),
        ];
        let group_name = format!("kafka_{}", flow.name());
        let mut group = c.benchmark_group(&group_name);
        group.throughput(elements.clone());
        group.sample_size(20);
        for (name, one_batch) in &kafka_rows {
            group.bench_function(*name, |b| bench_flow(b, &runtime, flow, one_batch));
        }
        group.finish();
        interleaved_ratios(&group_name, &runtime, flow, &kafka_rows);

        let nats_rows: [(&str, BatchMaker); 3] = [
            ("raw_async_nats", {
                let jetstream = jetstream.clone();
                let orders = orders.clone();
                Box::new(move || {
                    let jetstream = jetstream.clone();
                    let orders = orders.clone();
                    Box::pin(async move { common::raw_nats(&jetstream, &orders).await })
                        as std::pin::Pin<Box<dyn Future<Output = ()>>>
                })
            }),
            (
                "gateway_http_batch",
                Box::new(boxed(gateway_batches("orders-nats"))),
            ),
            (
                "gateway_http_batch_no_schema",
                Box::new(boxed(gateway_batches("raw-nats"))),
            ),
        ];
        let group_name = format!("nats_{}", flow.name());
        let mut group = c.benchmark_group(&group_name);
        group.throughput(elements);
        group.sample_size(20);
        for (name, one_batch) in &nats_rows {
            group.bench_function(*name, |b| bench_flow(b, &runtime, flow, one_batch));
        }
        group.finish();
        interleaved_ratios(&group_name, &runtime, flow, &nats_rows);
    }

    gateway.stop(&runtime);
}

/// Sends `orders` once through the raw producer and awaits every delivery; with `sluice_headers`,
/// each record carries them; with `flush`, the batch is sent as soon as it is enqueued, the way the
/// gateway sends a batch request's records, instead of after `linger.ms`.
async fn raw_kafka(
    producer: &Arc<FutureProducer>,
    orders: &[Bytes],
    sluice_headers: Option<&[(String, String)]>,
    flush: bool,
) {
    let deliveries: Vec<_> = orders
        .iter()
        .map(|order| {
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
        })
        .collect();
    if flush {
        let producer = producer.clone();
        tokio::task::spawn_blocking(move || send_held_records(&producer))
            .await
            .unwrap();
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
        headers: Default::default(),
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

/// Sends one batch of a row (raw client or gateway) and awaits all of its acknowledgements.
type BatchMaker = Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>>;

fn boxed<F, Fut>(make: F) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    move || Box::pin(make())
}

/// How a row's batches are sent.
#[derive(Clone, Copy)]
enum Flow {
    /// This many batches sent at once, all of them awaited before the next round.
    Rounds(usize),
    /// This many batches always in flight: each one answered is replaced by the next at once.
    Window(usize),
}

impl Flow {
    /// Batches per measured iteration.
    fn batches(self) -> usize {
        match self {
            Flow::Rounds(n) | Flow::Window(n) => n,
        }
    }

    fn name(self) -> String {
        match self {
            Flow::Rounds(n) => format!("{n}x{MESSAGES}"),
            Flow::Window(n) => format!("window{n}x{MESSAGES}"),
        }
    }

    /// Sends `iterations` times [`Flow::batches`] batches made by `one_batch`; returns how long
    /// that took.
    async fn run(self, iterations: u64, one_batch: &BatchMaker) -> Duration {
        let started = Instant::now();
        match self {
            Flow::Rounds(n) => {
                for _ in 0..iterations {
                    join_all((0..n).map(|_| one_batch())).await;
                }
            }
            Flow::Window(n) => {
                let total = iterations as usize * n;
                let mut in_flight: FuturesUnordered<_> =
                    (0..n.min(total)).map(|_| one_batch()).collect();
                let mut sent = in_flight.len();
                while in_flight.next().await.is_some() {
                    if sent < total {
                        in_flight.push(one_batch());
                        sent += 1;
                    }
                }
            }
        }
        started.elapsed()
    }
}

fn bench_flow(
    b: &mut criterion::Bencher<'_>,
    runtime: &tokio::runtime::Runtime,
    flow: Flow,
    one_batch: &BatchMaker,
) {
    b.iter_custom(|iterations| runtime.block_on(flow.run(iterations, one_batch)));
}

/// Prints each row's throughput relative to the first (the raw client), measured in alternation:
/// every round runs each row for the same number of iterations (about 300 ms of the raw client's
/// work), and the best of the rounds counts for each row.
fn interleaved_ratios(
    group: &str,
    runtime: &tokio::runtime::Runtime,
    flow: Flow,
    rows: &[(&str, BatchMaker)],
) {
    const ROUNDS: usize = 7;
    if !chosen_by_the_filter(group) {
        return;
    }
    let (raw_name, raw) = &rows[0];
    let mut iterations = 1u64;
    while runtime.block_on(flow.run(iterations, raw)) < Duration::from_millis(300) {
        iterations *= 2;
    }
    let mut best = vec![Duration::MAX; rows.len()];
    for _ in 0..ROUNDS {
        for ((_, one_batch), best) in rows.iter().zip(&mut best) {
            *best = (*best).min(runtime.block_on(flow.run(iterations, one_batch)));
        }
    }
    for ((name, _), best_time) in rows.iter().zip(&best).skip(1) {
        let ratio = best[0].as_secs_f64() / best_time.as_secs_f64();
        println!("{group}/{name}: {ratio:.2}x {raw_name} (interleaved, best of {ROUNDS} rounds)");
    }
}

/// Whether `group` is one the command line asked for: no filter (`cargo bench --bench backends`),
/// or a filter the group's name contains (`-- kafka`, `-- window`). A filter naming one row
/// (`-- kafka_1x1000/gateway_http_batch`) measures that row alone, without the alternation.
fn chosen_by_the_filter(group: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|filter| group.contains(filter.as_str()))
}

criterion_group!(benches, backends);
criterion_main!(benches);
