//! The scenarios, each a function of the backend the `orders` station is stored on. They speak
//! only the HTTP API, and name messages by what the gateway answered (offset, and partition on
//! Kafka), never by a backend's numbering.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::brokers::{Kafka, Nats};
use crate::common::{valid_order, Gateway, Repo, ORDER_SCHEMA};

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Embedded,
    Nats,
    Kafka,
}

/// A gateway with the `orders` station on a backend, and what keeps it running.
pub struct Setup {
    pub gw: Gateway,
    _repo: Repo,
    _broker: Option<Broker>,
}

#[allow(dead_code)] // held so the broker lives as long as the gateway
enum Broker {
    Nats(Nats),
    Kafka(Kafka),
}

/// How long a scenario waits for something the backend does in the background (a Kafka group
/// being joined, a lease running out).
const PATIENCE: Duration = Duration::from_secs(30);

impl Backend {
    /// The `orders` station with `station_extra` (more keys of its `[[station]]`) on this backend.
    pub async fn start(self, station_extra: &str) -> Setup {
        self.start_station("orders", station_extra).await
    }

    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Nats => "nats",
            Backend::Kafka => "kafka",
        }
    }

    /// Station `name` on the `orders` schema, with `station_extra`, on this backend.
    pub async fn start_station(self, name: &str, station_extra: &str) -> Setup {
        self.start_configured(name, station_extra, "").await
    }

    /// [`Backend::start_station`] with more of the gateway's configuration (TOML sections).
    pub async fn start_configured(self, name: &str, station_extra: &str, more: &str) -> Setup {
        let (backend, config, broker) = match self {
            Backend::Embedded => (String::new(), String::new(), None),
            Backend::Nats => {
                let nats = Nats::start();
                let config = format!(
                    "[nats]\nurl = \"{}\"\nrequest_timeout = \"5s\"\n",
                    nats.url()
                );
                (
                    "backend = { nats = \"orders.new\" }".to_owned(),
                    config,
                    Some(Broker::Nats(nats)),
                )
            }
            Backend::Kafka => {
                let kafka = Kafka::start();
                let config = format!(
                    "[kafka]\nbrokers = \"{}\"\nrequest_timeout = \"5s\"\n",
                    kafka.brokers()
                );
                (
                    "backend = { kafka = \"orders\" }".to_owned(),
                    config,
                    Some(Broker::Kafka(kafka)),
                )
            }
        };
        let stations = format!(
            "[[station]]\nname = \"{name}\"\nschema = \"orders\"\n{station_extra}\n{backend}\n\n\
             [[station]]\nname = \"raw\"\n"
        );
        let repo = Repo::new(&[
            ("orders/v1.json", ORDER_SCHEMA),
            ("stations.toml", &stations),
        ]);
        let gw = Gateway::start(&repo, &format!("{config}\n{more}")).await;
        Setup {
            gw,
            _repo: repo,
            _broker: broker,
        }
    }
}

/// Where the gateway said a message is: (partition, offset).
fn at(message: &Value) -> (Option<u64>, u64) {
    (
        message["partition"].as_u64(),
        message["offset"].as_u64().unwrap(),
    )
}

fn order_id(message: &Value) -> String {
    message["value"]["order_id"].as_str().unwrap().to_owned()
}

/// Up to `max` messages for `group`, waiting up to `wait` for the first.
async fn consume(gw: &Gateway, group: &str, max: usize, wait: Duration) -> Vec<Value> {
    let (status, body) = gw
        .get(&format!(
            "/v1/stations/orders/messages?group={group}&max={max}&wait_ms={}",
            wait.as_millis()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().unwrap().clone()
}

/// Acks (or, with `delay_ms`, nacks) `messages` for `group`, a call per partition; the answers'
/// `acked` summed and `unknown` joined.
async fn settle(gw: &Gateway, group: &str, messages: &[Value], delay_ms: Option<u64>) -> Value {
    let mut by_partition: BTreeMap<Option<u64>, Vec<u64>> = BTreeMap::new();
    for message in messages {
        let (partition, offset) = at(message);
        by_partition.entry(partition).or_default().push(offset);
    }
    let (mut acked, mut unknown) = (0, Vec::new());
    for (partition, offsets) in by_partition {
        let mut body = json!({ "group": group, "offsets": offsets });
        if let Some(partition) = partition {
            body["partition"] = json!(partition);
        }
        let path = match delay_ms {
            Some(delay) => {
                body["delay_ms"] = json!(delay);
                "/v1/stations/orders/nack"
            }
            None => "/v1/stations/orders/ack",
        };
        let (status, answer) = gw.post_json(path, &body).await;
        assert_eq!(status, 200, "{answer}");
        acked += answer["acked"].as_u64().unwrap();
        unknown.extend(answer["unknown"].as_array().unwrap().iter().cloned());
    }
    json!({ "acked": acked, "unknown": unknown })
}

/// Consumes for `group` until `count` messages came (acking each), failing after [`PATIENCE`].
async fn drain(gw: &Gateway, group: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(Instant::now() < deadline, "{group} got only {got:?}");
        let messages = consume(gw, group, count - got.len(), Duration::from_secs(1)).await;
        if !messages.is_empty() {
            settle(gw, group, &messages, None).await;
        }
        got.extend(messages);
    }
    got
}

async fn produce_orders(gw: &Gateway, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        let (status, body) = gw.produce("orders", &valid_order(&id)).await;
        assert_eq!(status, 201, "{id}: {body}");
    }
}

pub async fn a_group_shares_the_work_and_every_group_sees_everything(backend: Backend) {
    let setup = backend.start("").await;
    let gw = std::sync::Arc::new(setup.gw);
    let ids: Vec<String> = (0..24).map(|i| format!("o-{i}")).collect();
    produce_orders(&gw, ids.clone()).await;

    // Two workers of one group pull at once, a few at a time, acking what they get.
    let worker = |gw: std::sync::Arc<Gateway>| async move {
        let mut mine = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let messages = consume(&gw, "workers", 4, Duration::from_millis(500)).await;
            if !messages.is_empty() {
                settle(&gw, "workers", &messages, None).await;
                mine.extend(messages.iter().map(order_id));
            } else if !mine.is_empty() {
                break;
            }
        }
        mine
    };
    let (a, b) = tokio::join!(
        tokio::spawn(worker(gw.clone())),
        tokio::spawn(worker(gw.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let a_set: BTreeSet<&String> = a.iter().collect();
    let b_set: BTreeSet<&String> = b.iter().collect();
    assert!(a_set.is_disjoint(&b_set), "a: {a:?}\nb: {b:?}");
    assert_eq!(
        a.len() + b.len(),
        ids.len(),
        "each message went to one worker"
    );

    let audit: Vec<String> = drain(&gw, "audit", ids.len())
        .await
        .iter()
        .map(order_id)
        .collect();
    assert_eq!(audit, ids, "another group gets every message, in order");
}

pub async fn a_long_poll_returns_as_soon_as_a_message_arrives(backend: Backend) {
    let setup = backend.start("").await;
    let gw = std::sync::Arc::new(setup.gw);
    let poller = {
        let gw = gw.clone();
        tokio::spawn(async move { consume(&gw, "g", 5, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poller.is_finished(),
        "the poll waits while the station is empty"
    );
    produce_orders(&gw, ["late".to_owned()]).await;
    let messages = tokio::time::timeout(Duration::from_secs(10), poller)
        .await
        .expect("the poll returns once a message arrives")
        .unwrap();
    assert_eq!(order_id(&messages[0]), "late");
}

pub async fn acks_stick_and_unacked_messages_come_back_after_the_ack_timeout(backend: Backend) {
    let setup = backend.start("ack_timeout = \"1s\"").await;
    let gw = &setup.gw;
    produce_orders(gw, (0..3).map(|i| format!("o-{i}"))).await;
    let delivered = drain_unacked(gw, "g", 3).await;
    assert!(delivered.iter().all(|m| m["delivery"] == 1));
    let mut never = delivered[0].clone();
    never["offset"] = json!(at(&delivered[2]).1 + 1000);
    let answer = settle(
        gw,
        "g",
        &[delivered[0].clone(), delivered[2].clone(), never],
        None,
    )
    .await;
    assert_eq!(answer["acked"], 2, "{answer}");
    assert_eq!(answer["unknown"], json!([at(&delivered[2]).1 + 1000]));

    let again = consume(gw, "g", 10, Duration::from_secs(5)).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(order_id(&again[0]), "o-1");
    assert_eq!(again[0]["delivery"], 2);
    settle(gw, "g", &again, None).await;
    assert!(consume(gw, "g", 10, Duration::from_millis(1500))
        .await
        .is_empty());
}

/// Consumes for `group` until `count` messages came, acking none.
async fn drain_unacked(gw: &Gateway, group: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(Instant::now() < deadline, "{group} got only {got:?}");
        got.extend(consume(gw, group, count - got.len(), Duration::from_secs(1)).await);
    }
    got
}

pub async fn a_nack_with_a_delay_redelivers_after_it(backend: Backend) {
    let setup = backend.start("ack_timeout = \"30s\"").await;
    let gw = &setup.gw;
    produce_orders(gw, ["late".to_owned()]).await;
    let first = drain_unacked(gw, "g", 1).await;
    let nacked = Instant::now();
    let answer = settle(gw, "g", &first, Some(1500)).await;
    assert_eq!(answer["acked"], 1, "{answer}");
    assert!(consume(gw, "g", 10, Duration::from_millis(500))
        .await
        .is_empty());
    let again = consume(gw, "g", 10, Duration::from_secs(5)).await;
    assert!(
        nacked.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        nacked.elapsed()
    );
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["delivery"], 2);
    assert_eq!(at(&again[0]), at(&first[0]));
}

pub async fn a_poison_message_reaches_the_dlq_after_max_deliveries(backend: Backend) {
    let setup = backend
        .start("ack_timeout = \"300ms\"\nmax_deliveries = 2")
        .await;
    let gw = &setup.gw;
    produce_orders(gw, ["poison".to_owned(), "fine".to_owned()]).await;

    // A worker that never acks "poison" and acks everything else.
    let mut poison_deliveries = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, dlq) = gw.get("/v1/stations/orders/dlq").await;
        assert_eq!(status, 200, "{dlq}");
        if !dlq["dead_letters"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message never reached the DLQ"
        );
        for message in consume(gw, "workers", 10, Duration::from_millis(200)).await {
            if order_id(&message) == "poison" {
                poison_deliveries.push(message["delivery"].as_u64().unwrap());
            } else {
                settle(gw, "workers", &[message], None).await;
            }
        }
    }
    assert_eq!(
        poison_deliveries,
        vec![1, 2],
        "max_deliveries times, then no more"
    );
    let (_, dlq) = gw.get("/v1/stations/orders/dlq").await;
    let letters = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{dlq}");
    assert_eq!(letters[0]["error"], "max_deliveries");
    assert_eq!(letters[0]["value"]["order_id"], "poison");
    let reason = letters[0]["violations"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 times") && reason.contains("`workers`"),
        "{reason}"
    );

    // Well past another lease, the group never sees it again; another group is not affected.
    assert!(consume(gw, "workers", 10, Duration::from_millis(1000))
        .await
        .is_empty());
    let audit: Vec<String> = drain(gw, "audit", 2).await.iter().map(order_id).collect();
    assert_eq!(audit, ["poison", "fine"]);
}

pub async fn deliver_after_holds_one_message_and_not_the_next(backend: Backend) {
    let setup = backend.start("").await;
    let gw = &setup.gw;
    let produced = Instant::now();
    let (status, body) = gw
        .post_bytes(
            "/v1/stations/orders/messages",
            "application/json",
            serde_json::to_vec(&valid_order("later")).unwrap(),
            &[("Sluice-Deliver-After", "5s")],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    produce_orders(gw, ["now".to_owned()]).await;

    let first = drain(gw, "g", 1).await;
    assert_eq!(
        order_id(&first[0]),
        "now",
        "the later message holds back nothing"
    );
    let later = drain(gw, "g", 1).await;
    assert_eq!(order_id(&later[0]), "later");
    assert_eq!(later[0]["delivery"], 1, "the hold is not a delivery");
    assert!(
        produced.elapsed() >= Duration::from_millis(4900),
        "{:?}",
        produced.elapsed()
    );
}

pub async fn dead_letters_are_browsed_and_replayed_at_most_once(backend: Backend) {
    let setup = backend
        .start("ack_timeout = \"300ms\"\nmax_deliveries = 1")
        .await;
    let gw = std::sync::Arc::new(setup.gw);
    let mut refused = Vec::new();
    for i in 0..3 {
        let (status, body) = gw
            .produce("orders", &json!({"order_id": format!("bad-{i}")}))
            .await;
        assert_eq!(status, 422, "{body}");
        refused.push(body["dlq_id"].as_str().unwrap().to_owned());
    }
    // A valid message a consumer fails on: dead-lettered after its one delivery.
    produce_orders(&gw, ["retry-me".to_owned()]).await;
    drain_unacked(&gw, "workers", 1).await;
    let deadline = Instant::now() + PATIENCE;
    while dead_letter_count(&gw).await < 4 {
        assert!(
            Instant::now() < deadline,
            "the failed message never reached the DLQ"
        );
        consume(&gw, "workers", 10, Duration::from_millis(300)).await;
    }

    // Pages of two, each page's `next` the `from` of the following one.
    let (status, page) = gw.get("/v1/stations/orders/dlq?max=2").await;
    assert_eq!(status, 200, "{page}");
    let first = page["dead_letters"].as_array().unwrap();
    let ids: Vec<&str> = first.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, refused[..2], "{page}");
    assert_eq!(first[0]["error"], "schema_violation");
    assert_eq!(first[0]["value"]["order_id"], "bad-0");
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, page) = gw
        .get(&format!("/v1/stations/orders/dlq?max=10&from={next}"))
        .await;
    let rest = page["dead_letters"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 2, "{page}");
    assert_eq!(rest[0]["id"], refused[2].as_str());
    assert_eq!(rest[1]["error"], "max_deliveries");
    assert_eq!(rest[1]["value"]["order_id"], "retry-me");

    // Still invalid: refused again, and left to be replayed later.
    let replay_path = |id: &str| format!("/v1/stations/orders/dlq/{id}/replay");
    let (status, body) = gw.post_json(&replay_path(&refused[0]), &json!({})).await;
    assert_eq!(status, 422, "{body}");

    // Valid today: of two replays at once, one forwards it and the other is refused.
    let letter = rest[1]["id"].as_str().unwrap().to_owned();
    let replay = |gw: std::sync::Arc<Gateway>, path: String| async move {
        gw.post_json(&path, &json!({})).await
    };
    let (a, b) = tokio::join!(
        tokio::spawn(replay(gw.clone(), replay_path(&letter))),
        tokio::spawn(replay(gw.clone(), replay_path(&letter)))
    );
    let mut answers = [a.unwrap(), b.unwrap()];
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(answers[0].0, 201, "{:?}", answers);
    assert_eq!(answers[1].0, 409, "{:?}", answers);
    let forwarded = answers[0].1["offset"].clone();
    let (status, again) = gw.post_json(&replay_path(&letter), &json!({})).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("already_replayed"))
    );
    let (_, page) = gw
        .get(&format!("/v1/stations/orders/dlq?from={letter}"))
        .await;
    assert_eq!(page["dead_letters"][0]["replayed_to"], forwarded, "{page}");

    // The station holds it twice now: as first sent and as replayed.
    let seen: Vec<String> = drain(&gw, "after", 2).await.iter().map(order_id).collect();
    assert_eq!(seen, ["retry-me", "retry-me"]);
    let (status, body) = gw.post_json(&replay_path("999999"), &json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "unknown_dead_letter");
}

async fn dead_letter_count(gw: &Gateway) -> usize {
    let (status, page) = gw.get("/v1/stations/orders/dlq").await;
    assert_eq!(status, 200, "{page}");
    page["dead_letters"].as_array().unwrap().len()
}

pub async fn listings_and_metrics_count_messages_and_dead_letters(backend: Backend) {
    // A station of its own: `/metrics` is the process's, shared by the tests running in it.
    let station = format!("counted-{}", backend.name());
    let setup = backend.start_station(&station, "").await;
    let gw = &setup.gw;
    for i in 0..5 {
        let (status, body) = gw.produce(&station, &valid_order(&format!("o-{i}"))).await;
        assert_eq!(status, 201, "{body}");
    }
    for _ in 0..2 {
        let (status, _) = gw.produce(&station, &json!({"order_id": 7})).await;
        assert_eq!(status, 422);
    }
    let (status, shown) = gw.get(&format!("/v1/stations/{station}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["messages"]["messages"], 5, "{shown}");
    assert_eq!(shown["dead_letters"]["messages"], 2, "{shown}");
    let (_, listing) = gw.get("/v1/stations").await;
    let listed = listing["stations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == station.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["dead_letters"]["messages"], 2, "{listed}");
    let metrics = gw.metrics().await;
    let depth = format!("sluice_dlq_depth{{station=\"{station}\"}} 2");
    assert!(metrics.contains(&depth), "{metrics}");
}

/// A station takes at most `limits.max_groups_per_station` consumer groups: a new one past it is
/// refused `429` naming the limit, whether it consumes, acks or nacks, while the groups it has
/// keep consuming.
pub async fn groups_past_the_limit_are_refused_and_the_others_keep_working(backend: Backend) {
    let setup = backend
        .start_configured("orders", "", "[limits]\nmax_groups_per_station = 3\n")
        .await;
    let gw = &setup.gw;
    for group in ["a", "b", "c"] {
        consume(gw, group, 10, Duration::ZERO).await;
    }
    let (status, body) = gw.get("/v1/stations/orders/messages?group=d&max=10").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_groups");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_groups_per_station"),
        "{body}"
    );
    for path in ["/v1/stations/orders/ack", "/v1/stations/orders/nack"] {
        let (status, body) = gw
            .post_json(path, &json!({"group": "e", "offsets": [0]}))
            .await;
        assert_eq!(status, 429, "{path}: {body}");
    }
    produce_orders(gw, (0..3).map(|i| format!("g-{i}"))).await;
    assert_eq!(
        drain(gw, "a", 3).await.len(),
        3,
        "an existing group still consumes"
    );
    assert!(gw.metrics().await.contains("limits.max_groups_per_station"));
}
