//! Several gateways in front of a replicated engine, as real processes on loopback: two `sluice`
//! replicas in front of three clustered `nats-server`s (streams of three replicas), and two in
//! front of a `tansu` broker. Producers and consumers alternate between the replicas while a NATS
//! node (the stream's leader) and a gateway are killed and restarted. Afterwards every message
//! answered 201 is stored (on JetStream exactly once, retries with the same `Idempotency-Key`
//! included), every message reached the group and was acked with no two consumers holding it at
//! once, a poison message reached the dead-letter queue after `max_deliveries`, both replicas list
//! the same dead letters and serve the same commit with the same schema ids, and one dead letter
//! replayed through both replicas at once is forwarded once.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::brokers::{Kafka, Nats, NatsCluster};
use common::{answer, valid_order, GitRepo, Process, Repo, ORDER_SCHEMA};
use serde_json::{json, Value};
use tempfile::TempDir;

/// Messages each of the two producers sends.
const PER_PRODUCER: usize = 150;
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// A producer's pause between messages, so the load outlasts the failures.
const PACE: Duration = Duration::from_millis(30);

/// The `orders` station on `backend` (a TOML value such as `{ nats = "orders.new" }`).
fn stations(backend: &str) -> String {
    format!(
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\nbackend = {backend}\n\
         ack_timeout = \"2s\"\nmax_deliveries = 3\n"
    )
}

fn repo(backend: &str) -> Repo {
    Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("stations.toml", &stations(backend)),
    ])
}

/// The gateways: their processes, and the address each answers on now (a restart picks a new
/// port), shared with the producers and consumers.
struct Replicas {
    processes: Vec<Option<Process>>,
    data: Vec<TempDir>,
    bases: Arc<Mutex<Vec<String>>>,
    repo: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Replicas {
    fn start(repo: &Path, env: &[(&str, String)]) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut replicas = Self {
            processes: vec![None, None],
            data: vec![tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()],
            bases: Arc::new(Mutex::new(vec![String::new(), String::new()])),
            repo: repo.to_owned(),
            env,
        };
        replicas.restart(0);
        replicas.restart(1);
        replicas
    }

    fn restart(&mut self, i: usize) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let process = Process::serve_with_env(&self.repo, self.data[i].path(), &env);
        self.bases.lock().unwrap()[i] = process.base();
        self.processes[i] = Some(process);
    }

    fn kill(&mut self, i: usize) {
        if let Some(process) = self.processes[i].take() {
            process.kill();
        }
    }

    /// SIGTERM: replica `i` finishes what it took and exits.
    fn terminate(&mut self, i: usize) {
        if let Some(process) = self.processes[i].take() {
            assert!(process.terminate(Duration::from_secs(30)).success());
        }
    }

    fn base(&self, i: usize) -> String {
        self.bases.lock().unwrap()[i].clone()
    }
}

/// An HTTP call to replica `i` of `bases`: the status and body, or none when it did not answer.
async fn call(
    client: &reqwest::Client,
    bases: &Arc<Mutex<Vec<String>>>,
    i: usize,
    request: impl Fn(&reqwest::Client, String) -> reqwest::RequestBuilder,
) -> Option<(u16, Value)> {
    let base = bases.lock().unwrap()[i % 2].clone();
    let response = request(client, base)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    Some(answer(response).await)
}

/// Sends `ids` one by one, alternating replicas; a message not answered 201 is sent again with the
/// same `Idempotency-Key` to the other replica until it is. Returns how many sends there were.
async fn produce(bases: Arc<Mutex<Vec<String>>>, ids: Vec<String>, within: Duration) -> usize {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    let mut sends = 0;
    for (n, id) in ids.iter().enumerate() {
        let mut replica = n;
        loop {
            assert!(Instant::now() < deadline, "{id} was never answered 201");
            sends += 1;
            let body = serde_json::to_vec(&valid_order(id)).unwrap();
            let answered = call(&client, &bases, replica, |c, base| {
                c.post(format!("{base}/v1/stations/orders/messages"))
                    .header("content-type", "application/json")
                    .header("idempotency-key", id.as_str())
                    .body(body.clone())
            })
            .await;
            match answered {
                Some((201, _)) => {
                    tokio::time::sleep(PACE).await;
                    break;
                }
                _ => {
                    replica += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    sends
}

/// One delivery a consumer saw.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    delivery: u64,
    consumer: usize,
    /// Partition (Kafka) and offset.
    position: (Option<u64>, u64),
    at: Instant,
}

/// What the consumers saw, and which ids they acked.
#[derive(Default)]
struct Consumed {
    seen: Vec<Seen>,
    acked: BTreeSet<String>,
}

/// A consumer of group `workers`: alternates replicas to consume, acks through the other one (and
/// again through the first if that fails), never acks `poison`. Ends once `done` says so and it
/// has been idle a while, and fails if messages still come a minute after `done`.
async fn consumer(
    me: usize,
    bases: Arc<Mutex<Vec<String>>>,
    consumed: Arc<Mutex<Consumed>>,
    done: Arc<std::sync::atomic::AtomicBool>,
    ack_through_other: bool,
) {
    let client = reqwest::Client::new();
    let mut idle_since = Instant::now();
    let mut done_at = None;
    for round in 0.. {
        if done.load(std::sync::atomic::Ordering::Acquire) {
            let since = *done_at.get_or_insert_with(Instant::now);
            assert!(
                since.elapsed() < Duration::from_secs(60),
                "consumer {me} still receives messages a minute after the load ended"
            );
        }
        let replica = me + round;
        let got = call(&client, &bases, replica, |c, base| {
            c.get(format!(
                "{base}/v1/stations/orders/messages?group=workers&max=20&wait_ms=500"
            ))
        })
        .await;
        let messages = match got {
            Some((200, body)) => body["messages"].as_array().unwrap().clone(),
            _ => Vec::new(),
        };
        if messages.is_empty() {
            let stop = done.load(std::sync::atomic::Ordering::Acquire);
            if stop && idle_since.elapsed() > ACK_TIMEOUT * 5 {
                return;
            }
            continue;
        }
        idle_since = Instant::now();
        let now = Instant::now();
        let mut to_ack: BTreeMap<Option<u64>, Vec<(u64, String)>> = BTreeMap::new();
        {
            let mut consumed = consumed.lock().unwrap();
            for message in &messages {
                let id = message["value"]["order_id"].as_str().unwrap().to_owned();
                consumed.seen.push(Seen {
                    id: id.clone(),
                    delivery: message["delivery"].as_u64().unwrap(),
                    consumer: me,
                    position: (
                        message["partition"].as_u64(),
                        message["offset"].as_u64().unwrap(),
                    ),
                    at: now,
                });
                if id != "poison" {
                    let partition = message["partition"].as_u64();
                    let offset = message["offset"].as_u64().unwrap();
                    to_ack.entry(partition).or_default().push((offset, id));
                }
            }
        }
        let through = if ack_through_other {
            replica + 1
        } else {
            replica
        };
        for (partition, acks) in to_ack {
            let offsets: Vec<u64> = acks.iter().map(|(o, _)| *o).collect();
            let mut body = json!({ "group": "workers", "offsets": offsets });
            if let Some(partition) = partition {
                body["partition"] = json!(partition);
            }
            for attempt in [through, through + 1] {
                let acked = call(&client, &bases, attempt, |c, base| {
                    c.post(format!("{base}/v1/stations/orders/ack")).json(&body)
                })
                .await;
                if let Some((200, answer)) = acked {
                    if answer["unknown"].as_array().unwrap().is_empty() {
                        let mut consumed = consumed.lock().unwrap();
                        consumed.acked.extend(acks.iter().map(|(_, id)| id.clone()));
                    }
                    break;
                }
            }
        }
    }
}

/// No message was handed to a second consumer while a first still held it: a redelivery comes
/// at least an ack timeout after the delivery before it.
fn assert_leases_never_overlap(seen: &[Seen]) {
    let mut by_id: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in seen {
        by_id.entry(&s.id).or_default().push(s);
    }
    for (id, deliveries) in by_id {
        for pair in deliveries.windows(2) {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(
                gap >= ACK_TIMEOUT.mul_f64(0.9),
                "{id} went to consumer {} {gap:?} after consumer {} got it: {deliveries:?}",
                pair[1].consumer,
                pair[0].consumer
            );
        }
    }
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    answer(reqwest::get(format!("{base}{path}")).await.unwrap()).await
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = reqwest::get(format!("{base}/readyz")).await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Both replicas serve the same commit, and give the schema the same ids.
async fn assert_same_registry(replicas: &Replicas) {
    let (_, a) = get(&replicas.base(0), "/v1/registry/status").await;
    let (_, b) = get(&replicas.base(1), "/v1/registry/status").await;
    assert_eq!(a["serving_commit"], b["serving_commit"], "{a}\n{b}");
    let (_, a) = get(&replicas.base(0), "/v1/schemas/orders").await;
    let (_, b) = get(&replicas.base(1), "/v1/schemas/orders").await;
    assert_eq!(a["ids"], b["ids"], "{a}\n{b}");
}

/// Both replicas list the same dead letters; the poison message is among them once, dead-lettered
/// by `max_deliveries`. Returns its id.
async fn assert_same_dead_letters(replicas: &Replicas) -> String {
    let (status, a) = get(&replicas.base(0), "/v1/stations/orders/dlq?max=1000").await;
    assert_eq!(status, 200, "{a}");
    let (_, b) = get(&replicas.base(1), "/v1/stations/orders/dlq?max=1000").await;
    assert_eq!(a, b, "the replicas list different dead letters");
    let letters = a["dead_letters"].as_array().unwrap();
    let poison: Vec<&Value> = letters
        .iter()
        .filter(|l| l["value"]["order_id"] == "poison")
        .collect();
    assert_eq!(poison.len(), 1, "{a}");
    assert_eq!(poison[0]["error"], "max_deliveries");
    poison[0]["id"].as_str().unwrap().to_owned()
}

/// Replays dead letter `id` through both replicas at once: one forwards it, the other is refused.
async fn assert_replayed_once(replicas: &Replicas, id: &str) -> Value {
    let replay = |base: String| {
        let path = format!("{base}/v1/stations/orders/dlq/{id}/replay");
        async move { answer(reqwest::Client::new().post(path).send().await.unwrap()).await }
    };
    let (a, b) = tokio::join!(replay(replicas.base(0)), replay(replicas.base(1)));
    let mut answers = [a, b];
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(answers[0].0, 201, "{answers:?}");
    assert_eq!(answers[1].0, 409, "{answers:?}");
    answers[0].1.clone()
}

/// Produces through both replicas and consumes through both while `chaos` runs. Returns the ids
/// answered 201, how many sends that took (more than one for some: the failures hit the load),
/// and what the consumers saw.
async fn run_load(
    bases: Arc<Mutex<Vec<String>>>,
    ack_through_other: bool,
    chaos: impl std::future::Future<Output = ()>,
) -> (Vec<String>, usize, Arc<Mutex<Consumed>>) {
    let ids: Vec<Vec<String>> = (0..2)
        .map(|p| (0..PER_PRODUCER).map(|i| format!("p{p}-{i}")).collect())
        .collect();
    let consumed = Arc::new(Mutex::new(Consumed::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumers: Vec<_> = (0..2)
        .map(|me| {
            tokio::spawn(consumer(
                me,
                bases.clone(),
                consumed.clone(),
                done.clone(),
                ack_through_other,
            ))
        })
        .collect();
    let producers: Vec<_> = ids
        .iter()
        .cloned()
        .map(|ids| tokio::spawn(produce(bases.clone(), ids, Duration::from_secs(120))))
        .collect();
    let poison = produce(
        bases.clone(),
        vec!["poison".to_owned()],
        Duration::from_secs(60),
    );
    let ((), mut sends) = tokio::join!(chaos, poison);
    for producer in producers {
        sends += producer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for consumer in consumers {
        consumer.await.unwrap();
    }
    let mut all: Vec<String> = ids.concat();
    all.push("poison".to_owned());
    assert!(
        sends > all.len(),
        "no send failed: the failures did not happen while producing"
    );
    (all, sends, consumed)
}

/// Every message but the poison one was delivered and acked; the poison one was delivered
/// `max_deliveries` times and no more. Where the engine holds the leases (JetStream), no two
/// consumers held a message at once, whatever died; on Kafka a lease ends when its partition moves
/// to another gateway (docs/api.md), so that is not asked of it.
fn assert_consumed(produced: &[String], consumed: &Consumed, leases_outlive_gateways: bool) {
    if leases_outlive_gateways {
        assert_leases_never_overlap(&consumed.seen);
    }
    let expected: BTreeSet<String> = produced
        .iter()
        .filter(|id| *id != "poison")
        .cloned()
        .collect();
    let missing: Vec<&String> = expected.difference(&consumed.acked).collect();
    assert!(missing.is_empty(), "never acked: {missing:?}");
    let poison: Vec<(u64, (Option<u64>, u64))> = consumed
        .seen
        .iter()
        .filter(|s| s.id == "poison")
        .map(|s| (s.delivery, s.position))
        .collect();
    assert_eq!(
        poison.iter().map(|(delivery, _)| delivery).max(),
        Some(&3),
        "poison deliveries (delivery, position): {poison:?}"
    );
}

/// Every message of the stream of `subject`, counted by order id.
async fn stored_ids(urls: &str, stream: &str) -> BTreeMap<String, usize> {
    use async_nats::jetstream::{self, consumer::pull};
    use futures_util::StreamExt;
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::connect(servers).await.unwrap();
    let js = jetstream::new(client);
    let stream = js.get_stream(stream).await.unwrap();
    let total = stream.cached_info().state.messages as usize;
    let consumer = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut counts = BTreeMap::new();
    let mut messages = consumer
        .fetch()
        .max_messages(total)
        .messages()
        .await
        .unwrap();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        let value: Value = serde_json::from_slice(&message.payload).unwrap();
        *counts
            .entry(value["order_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(counts.values().sum::<usize>(), total);
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_keep_every_promise_while_a_nats_node_and_a_gateway_die() {
    let mut cluster = NatsCluster::start();
    let repo = repo("{ nats = \"orders.new\" }");
    let env = [
        ("SLUICE_NATS_URL", cluster.urls()),
        ("SLUICE_NATS_REPLICAS", "3".to_owned()),
        ("SLUICE_NATS_REQUEST_TIMEOUT", "3s".to_owned()),
    ];
    let mut replicas = Replicas::start(repo.path(), &env);
    wait_ready(&replicas.base(0)).await;
    wait_ready(&replicas.base(1)).await;
    assert_same_registry(&replicas).await;

    let urls = cluster.urls();
    let bases = replicas.bases.clone();
    let chaos = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The stream's leader and one gateway die at once, mid-load, and come back later.
        let leader = stream_leader(&urls, "SLUICE_ORDERS_NEW").await;
        let node = cluster.node_named(&leader);
        cluster.kill(node);
        replicas.kill(0);
        tokio::time::sleep(Duration::from_secs(4)).await;
        cluster.restart(node);
        replicas.restart(0);
    };
    let (produced, _, consumed) = run_load(bases, true, chaos).await;
    wait_ready(&replicas.base(0)).await;

    let stored = stored_ids(&urls, "SLUICE_ORDERS_NEW").await;
    for id in &produced {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "{id} stored {:?} times",
            stored.get(id)
        );
    }
    assert_eq!(stored.len(), produced.len(), "nothing else was stored");
    assert_consumed(&produced, &consumed.lock().unwrap(), true);
    assert_same_registry(&replicas).await;
    let poison = assert_same_dead_letters(&replicas).await;
    assert_replayed_once(&replicas, &poison).await;
    let stored = stored_ids(&urls, "SLUICE_ORDERS_NEW").await;
    assert_eq!(stored.get("poison"), Some(&2), "the replay was stored once");
}

/// The name of the server leading stream `stream`.
async fn stream_leader(urls: &str, stream: &str) -> String {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::connect(servers).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut found) = js.get_stream(stream).await {
            let info = found.info().await.unwrap();
            if let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone()) {
                return leader;
            }
        }
        assert!(Instant::now() < deadline, "stream {stream} has no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_in_front_of_kafka_keep_what_kafka_supports_while_a_gateway_dies() {
    let kafka = Kafka::start();
    let repo = repo("{ kafka = \"orders\" }");
    let env = [
        ("SLUICE_KAFKA_BROKERS", kafka.brokers()),
        ("SLUICE_KAFKA_PARTITIONS", "2".to_owned()),
        ("SLUICE_KAFKA_REQUEST_TIMEOUT", "5s".to_owned()),
        ("SLUICE_KAFKA_SESSION_TIMEOUT", "6s".to_owned()),
    ];
    let mut replicas = Replicas::start(repo.path(), &env);
    wait_ready(&replicas.base(0)).await;
    wait_ready(&replicas.base(1)).await;
    assert_same_registry(&replicas).await;
    let bases = replicas.bases.clone();
    let chaos = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        replicas.kill(0);
        tokio::time::sleep(Duration::from_secs(4)).await;
        replicas.restart(0);
    };
    // On Kafka a consumer acks through the gateway that delivered the message (docs/api.md).
    let (produced, _, consumed) = run_load(bases, false, chaos).await;
    wait_ready(&replicas.base(0)).await;
    assert_consumed(&produced, &consumed.lock().unwrap(), false);
    assert_same_registry(&replicas).await;
    let poison = assert_same_dead_letters(&replicas).await;
    assert_replayed_once(&replicas, &poison).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_serve_one_commit_follow_a_webhook_and_restart_one_at_a_time() {
    let nats = Nats::start();
    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        ("stations.toml", &stations("{ nats = \"orders.new\" }")),
    ]);
    let env = [
        ("SLUICE_NATS_URL", nats.url()),
        ("SLUICE_REGISTRY_POLL_INTERVAL", "2s".to_owned()),
    ];
    let mut replicas = Replicas::start(repo.path(), &env);
    wait_ready(&replicas.base(0)).await;
    wait_ready(&replicas.base(1)).await;
    assert_same_registry(&replicas).await;

    // The webhook reaches one replica, which serves the commit when it answers; the other serves
    // it by its next poll.
    repo.write(
        "schemas/orders/v2.json",
        &ORDER_SCHEMA.replace("\"minimum\": 1", "\"minimum\": 0"),
    );
    let head = repo.commit("orders v2");
    let synced = reqwest::Client::new()
        .post(format!("{}/v1/registry/sync", replicas.base(0)))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(synced).await;
    assert_eq!(
        (status, body["serving_commit"].as_str()),
        (200, Some(head.as_str()))
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, other) = get(&replicas.base(1), "/v1/registry/status").await;
        if other["serving_commit"] == head.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica 1 never served {head}: {other}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_same_registry(&replicas).await;

    // A rolling restart under load: each replica in turn is stopped and started again while
    // producers send through whichever answers.
    let bases = replicas.bases.clone();
    let restarts = async {
        for i in 0..2 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            replicas.terminate(i);
            tokio::time::sleep(Duration::from_millis(500)).await;
            replicas.restart(i);
        }
    };
    let ids: Vec<String> = (0..200).map(|i| format!("r-{i}")).collect();
    let producing = produce(bases, ids.clone(), Duration::from_secs(60));
    let ((), sends) = tokio::join!(restarts, producing);
    assert!(
        sends > ids.len(),
        "the restarts did not happen while producing"
    );
    let stored = stored_ids(&nats.url(), "SLUICE_ORDERS_NEW").await;
    for id in &ids {
        assert_eq!(
            stored.get(id),
            Some(&1),
            "{id} stored {:?} times",
            stored.get(id)
        );
    }
}
