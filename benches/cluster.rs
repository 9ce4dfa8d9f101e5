//! Two gateways in front of a three-node JetStream cluster, against async-nats on the same
//! cluster: three `nats-server`s clustered on loopback (the station's stream has three replicas)
//! and two `sluice serve` processes (the release binary) with the same configuration.
//!
//! * produce: batches of 1,000 ~200-byte JSON orders, four always in flight, sent alternately to
//!   the two gateways (validated, every message acknowledged by the stream's quorum before the
//!   answer), against async-nats publishing the same orders to a stream of three replicas, four
//!   batches of 1,000 in flight, every acknowledgement awaited;
//! * consume and ack: 20,000 stored orders read by one consumer group through the two gateways
//!   (one consumer each, 100 per request, every message acked through the gateway that delivered
//!   it, answered once JetStream confirmed the acks), against a raw durable pull consumer fetching
//!   100 at a time and acking every message, without and with JetStream's confirmation of each
//!   ack (`double_ack`).
//!
//! Each pair is measured alternately, five rounds each, the best round of each side counting; the
//! machine's two cores run the three servers, the two gateways and the clients. Run:
//! `cargo bench --bench cluster` (needs `nats-server`, which `scripts/test` installs).

mod common;

#[path = "../tests/common/brokers.rs"]
#[allow(dead_code)]
mod brokers;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ndjson, order, post_batch, ORDER_SCHEMA};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};

const BATCH: usize = 1000;
/// Batches per produce round, four in flight.
const PRODUCE_BATCHES: usize = 40;
const IN_FLIGHT: usize = 4;
/// Orders each consume round reads.
const STORED: usize = 20_000;
const ROUNDS: usize = 5;

/// A `sluice serve` process, killed when dropped.
struct Replica {
    child: Child,
    http: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(repo: &std::path::Path, data: &std::path::Path, nats: &str) -> Replica {
    let port = brokers::free_port();
    let config = data.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhttp = \"127.0.0.1:{port}\"\ngrpc = \"127.0.0.1:{}\"\n\n\
             [registry]\nsource = \"{}\"\n\n[storage]\ndir = \"{}\"\n\n\
             [nats]\nurl = \"{nats}\"\nreplicas = 3\n",
            brokers::free_port(),
            repo.display(),
            data.join("store").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Replica {
        child,
        http: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(client: &reqwest::Client, http: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(answer) = client.get(format!("{http}/readyz")).send().await {
            if answer.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{http} never became ready");
}

/// Sends `batches` batches made by `one`, `IN_FLIGHT` at a time; the messages per second.
async fn window<F, Fut>(batches: usize, one: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut in_flight: FuturesUnordered<_> = (0..IN_FLIGHT.min(batches)).map(&one).collect();
    let mut sent = in_flight.len();
    while in_flight.next().await.is_some() {
        if sent < batches {
            in_flight.push(one(sent));
            sent += 1;
        }
    }
    (batches * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// Stores one batch through `http`, trying again while the gateway answers 503 (the cluster
/// elects its stream's leader in the first seconds).
async fn store_batch(client: &reqwest::Client, http: &str, batch: Bytes) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: Value = client
            .post(format!("{http}/v1/stations/orders/messages:batch"))
            .header("content-type", "application/x-ndjson")
            .body(batch.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["accepted"] == BATCH {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never stored: {}",
            answer["results"][0]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads `STORED` messages as group `group` through both gateways, acking each; messages per
/// second.
async fn consume_through(client: &reqwest::Client, replicas: &[String], group: &str) -> f64 {
    let started = Instant::now();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let consumers = replicas.iter().map(|http| {
        let (client, http, done) = (client.clone(), http.clone(), done.clone());
        let group = group.to_owned();
        async move {
            while done.load(std::sync::atomic::Ordering::Acquire) < STORED {
                let url =
                    format!("{http}/v1/stations/orders/messages?group={group}&max=100&wait_ms=200");
                let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                let offsets: Vec<u64> = body["messages"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{body}"))
                    .iter()
                    .map(|m| m["offset"].as_u64().unwrap())
                    .collect();
                if offsets.is_empty() {
                    continue;
                }
                let ack = json!({"group": group, "offsets": offsets});
                let answer: Value = client
                    .post(format!("{http}/v1/stations/orders/ack"))
                    .json(&ack)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(answer["acked"], offsets.len(), "{answer}");
                done.fetch_add(offsets.len(), std::sync::atomic::Ordering::AcqRel);
            }
        }
    });
    futures_util::future::join_all(consumers).await;
    done.load(std::sync::atomic::Ordering::Acquire) as f64 / started.elapsed().as_secs_f64()
}

/// Reads `STORED` messages with a new durable pull consumer, acking each (`confirmed`: waiting for
/// JetStream to confirm each ack, as the gateway does before it answers); messages per second.
async fn consume_raw(
    jetstream: &async_nats::jetstream::Context,
    name: &str,
    confirmed: bool,
) -> f64 {
    use async_nats::jetstream::consumer::pull;
    let stream = jetstream.get_stream("SLUICE_ORDERS_CLUSTER").await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            filter_subject: "orders.cluster".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let mut done = 0;
    while done < STORED {
        let mut batch = consumer.fetch().max_messages(100).messages().await.unwrap();
        let mut acks = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            if confirmed {
                acks.push(async move { message.double_ack().await.unwrap() });
            } else {
                message.ack().await.unwrap();
            }
            done += 1;
        }
        futures_util::future::join_all(acks).await;
    }
    STORED as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let cluster = brokers::NatsCluster::start();
    let urls = cluster.urls();
    let runtime = common::runtime();
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("orders")).unwrap();
    std::fs::write(repo.path().join("orders/v1.json"), ORDER_SCHEMA).unwrap();
    std::fs::write(
        repo.path().join("stations.toml"),
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\nbackend = { nats = \"orders.cluster\" }\n",
    )
    .unwrap();
    let data: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let replicas: Vec<Replica> = data
        .iter()
        .map(|d| start_replica(repo.path(), d.path(), &urls))
        .collect();
    let http: Vec<String> = replicas.iter().map(|r| r.http.clone()).collect();
    let client = reqwest::Client::new();
    let orders: Vec<Bytes> = (0..BATCH).map(|i| Bytes::from(order(i))).collect();
    let batch = ndjson(&orders);

    runtime.block_on(async {
        for replica in &http {
            wait_ready(&client, replica).await;
        }
        let servers: Vec<&str> = urls.split(',').collect();
        let jetstream = async_nats::jetstream::new(async_nats::connect(servers).await.unwrap());
        // The cluster elects its leaders in the first seconds: retry until the stream is made.
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = jetstream
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: "RAW".into(),
                subjects: vec!["orders.raw".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
        {
            assert!(Instant::now() < deadline, "the cluster never took a stream: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Warm-up, and the stream the consume rounds read.
        for i in 0..STORED / BATCH {
            store_batch(&client, &http[i % 2], batch.clone()).await;
        }
        common::raw_nats(&jetstream, &orders).await;

        let (mut gateway, mut raw) = (0f64, 0f64);
        for _ in 0..ROUNDS {
            raw = raw.max(window(PRODUCE_BATCHES, |_| common::raw_nats(&jetstream, &orders)).await);
            gateway = gateway.max(
                window(PRODUCE_BATCHES, |i| {
                    post_batch(&client, &http[i % 2], "orders", batch.clone(), BATCH)
                })
                .await,
            );
        }
        println!(
            "produce, validated, through 2 gateways: {gateway:.0} msg/s; async-nats: {raw:.0} msg/s; ratio {:.2}",
            gateway / raw
        );

        let (mut gateway, mut raw, mut confirmed) = (0f64, 0f64, 0f64);
        for round in 0..ROUNDS {
            raw = raw.max(consume_raw(&jetstream, &format!("raw-{round}"), false).await);
            confirmed =
                confirmed.max(consume_raw(&jetstream, &format!("confirmed-{round}"), true).await);
            gateway = gateway.max(consume_through(&client, &http, &format!("bench-{round}")).await);
        }
        println!(
            "consume and ack, through 2 gateways: {gateway:.0} msg/s; raw pull consumer: {raw:.0} msg/s (ratio {:.2}); with each ack confirmed: {confirmed:.0} msg/s (ratio {:.2})",
            gateway / raw,
            gateway / confirmed
        );
    });
    drop(replicas);
    drop(cluster);
}
