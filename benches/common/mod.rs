//! Shared by the end-to-end benches: a gateway served in-process on loopback ports, on a schema
//! repository written into a temp dir, stopped when dropped.

#![allow(dead_code)]

use std::path::Path;

use tempfile::TempDir;

/// The allocator the `sluice` binary runs with, so a gateway served in-process here allocates as
/// it does in production (glibc's malloc costs it about a sixth of its CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The order schema the end-to-end benches (and `examples/load.rs`) validate against.
pub const ORDER_SCHEMA: &str = include_str!("../fixtures/order-schema.json");

/// Three typical data-contract rules on the order: a string test, a check on every item, a
/// string test on another field. Every order of [`order`] passes them.
pub const ORDER_RULES: &str = r#"
[[rule]]
name = "known_prefix"
expr = "message.order_id.startsWith('ord-')"

[[rule]]
name = "sane_quantities"
expr = "message.items.all(i, i.qty <= 100)"

[[rule]]
name = "not_internal"
expr = "!message.customer.endsWith('@example.org')"
"#;

/// Order `i`: about 200 bytes of JSON that passes [`ORDER_SCHEMA`].
pub fn order(i: usize) -> Vec<u8> {
    format!(
        r#"{{"order_id":"ord-{i:08}","customer":"cus-{c:05}","note":"leave at the door, ring twice","items":[{{"sku":"SKU-{i:06}-A","qty":2}},{{"sku":"SKU-{i:06}-B","qty":1}}]}}"#,
        c = i % 10_000
    )
    .into_bytes()
}

/// NDJSON batch envelopes (`{"value": ...}` per line) for `orders`.
pub fn ndjson(orders: &[bytes::Bytes]) -> bytes::Bytes {
    orders
        .iter()
        .flat_map(|o| [br#"{"value":"#.as_slice(), o, b"}\n"].concat())
        .collect::<Vec<u8>>()
        .into()
}

/// The multi-threaded runtime the gateway and the bench's clients share.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub struct BenchGateway {
    pub http: String,
    pub grpc: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), sluice::server::ServeError>>>,
    _repo: TempDir,
    _data: TempDir,
}

impl BenchGateway {
    /// Serves `stations_toml` over the order schema, with `extra_config` (TOML sections) added.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        stations_toml: &str,
        extra_config: &str,
    ) -> Self {
        let repo = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        write(repo.path(), "orders/v1.json", ORDER_SCHEMA);
        write(repo.path(), "stations.toml", stations_toml);
        let config_file = data.path().join("sluice.toml");
        std::fs::write(
            &config_file,
            format!(
                "[registry]\nsource = \"{}\"\n\n[storage]\ndir = \"{}\"\nfsync = \"always\"\n\n{extra_config}\n",
                repo.path().display(),
                data.path().join("store").display()
            ),
        )
        .unwrap();
        let config = sluice::config::Config::load(&config_file, true, std::iter::empty()).unwrap();
        let listeners = runtime.block_on(async {
            sluice::server::Listeners {
                http: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                grpc: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            }
        });
        let http = format!("http://{}", listeners.http.local_addr().unwrap());
        let grpc = format!(
            "http://{}",
            listeners.grpc.as_ref().unwrap().local_addr().unwrap()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(sluice::server::serve(config, listeners, async {
            let _ = stopped.await;
        }));
        Self {
            http,
            grpc,
            stop: Some(stop),
            server: Some(server),
            _repo: repo,
            _data: data,
        }
    }

    pub fn stop(mut self, runtime: &tokio::runtime::Runtime) {
        let _ = self.stop.take().unwrap().send(());
        runtime
            .block_on(self.server.take().unwrap())
            .unwrap()
            .unwrap();
    }
}

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

/// The part of a batch answer the benches check (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct BatchCounts {
    accepted: usize,
    rejected: usize,
}

/// POSTs one NDJSON batch to `station` and checks every message was accepted.
pub async fn post_batch(
    client: &reqwest::Client,
    http: &str,
    station: &str,
    body: bytes::Bytes,
    count: usize,
) {
    let answer: BatchCounts = client
        .post(format!("{http}/v1/stations/{station}/messages:batch"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (answer.accepted, answer.rejected),
        (count, 0),
        "every message of the batch is accepted"
    );
}

/// Benchmarks `raw` (the library alone) and each of `contenders` (the same work through Sluice)
/// in one criterion group, one message per iteration, then prints each contender's throughput
/// relative to `raw` measured again round by round in alternation (best of 15 rounds each): a
/// criterion group measures its functions one after another, seconds apart, and a shared machine
/// drifts in that time, so the interleaved ratios are the figures to quote.
pub fn raw_versus(
    c: &mut criterion::Criterion,
    group_name: &str,
    raw: (&str, &dyn Fn()),
    contenders: &[(&str, &dyn Fn())],
) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(criterion::Throughput::Elements(1));
    group.measurement_time(std::time::Duration::from_secs(3));
    for (name, work) in std::iter::once(&raw).chain(contenders) {
        group.bench_function(*name, |b| b.iter(work));
    }
    group.finish();
    interleaved_ratios(group_name, raw.1, contenders);
}

/// Throughput of each of `contenders` relative to `raw`, measured round by round in alternation,
/// best of 15 rounds of about 50 ms of raw work each; printed one line per contender.
fn interleaved_ratios(group: &str, raw: &dyn Fn(), contenders: &[(&str, &dyn Fn())]) {
    const ROUNDS: usize = 15;
    // About 50 ms of raw work per round.
    let started = std::time::Instant::now();
    let mut calibration = 0u32;
    while started.elapsed() < std::time::Duration::from_millis(50) {
        raw();
        calibration += 1;
    }
    let iterations = calibration.max(1);
    let time = |work: &dyn Fn()| {
        let started = std::time::Instant::now();
        for _ in 0..iterations {
            work();
        }
        started.elapsed().as_secs_f64()
    };
    let mut best_raw = f64::MAX;
    let mut best = vec![f64::MAX; contenders.len()];
    for _ in 0..ROUNDS {
        best_raw = best_raw.min(time(raw));
        for ((_, work), best) in contenders.iter().zip(&mut best) {
            *best = best.min(time(*work));
        }
    }
    for ((name, _), best) in contenders.iter().zip(&best) {
        let ratio = best_raw / best;
        println!("{group}/{name}: {ratio:.2}x raw (interleaved, best of {ROUNDS} rounds)");
    }
}

/// Publishes `orders` once to the raw stream (`orders.raw`) and awaits every acknowledgement.
pub async fn raw_nats(jetstream: &async_nats::jetstream::Context, orders: &[bytes::Bytes]) {
    let mut acks = Vec::with_capacity(orders.len());
    for order in orders {
        acks.push(
            jetstream
                .publish("orders.raw", order.clone())
                .await
                .unwrap(),
        );
    }
    for ack in
        futures_util::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
            .await
    {
        ack.unwrap();
    }
}
