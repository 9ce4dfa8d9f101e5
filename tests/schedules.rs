//! `schedules.toml`: judged with its revision, like everything in the schema repository (a
//! schedule with a cadence that cannot be, a station that is not declared, or a message the
//! station's schema, constraints or rules would refuse makes `sluice check` and a sync refuse the
//! revision, naming the schedule and why), and run by the gateway: each tick once, with its
//! headers, the missed ones caught up after a restart as `catch_up` says, shown by
//! `GET /v1/schedules`.

mod common;

use std::time::Duration;

use common::brokers::{Kafka, Nats};
use common::{every_second_schedule, sluice_check, Gateway, Repo, ORDER_SCHEMA};
use jiff::Timestamp;

/// `sluice check` on `repo`: whether it passed, and what it printed.
fn check(repo: &Repo) -> (bool, String) {
    sluice_check(repo.path(), &[])
}

const STATIONS: &str =
    "[[station]]\nname = \"jobs\"\nschema = \"orders\"\n\n[[station]]\nname = \"raw\"\n";

const GOOD: &str = r#"
[[schedule]]
name = "nightly-orders"
station = "jobs"
cron = "0 2 * * *"
timezone = "Europe/Berlin"
value = { order_id = "nightly", items = [{ qty = 1 }] }
headers = { team = "finance" }

[[schedule]]
name = "heartbeat"
station = "raw"
every = "15m"
value_base64 = "aGVsbG8="
catch_up = "all"
max_catch_up = 10
"#;

#[test]
fn valid_schedules_pass_and_each_broken_one_is_named_with_why() {
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("stations.toml", STATIONS),
        ("schedules.toml", GOOD),
    ]);
    let (passed, printed) = check(&repo);
    assert!(passed, "{printed}");

    let cases = [
        (
            "name = \"bad-value\"\nstation = \"jobs\"\nevery = \"1m\"\nvalue = { order_id = \"x\", items = [{ qty = 0 }] }",
            "schedule `bad-value` has a message schema version 1 refuses: /items/0/qty:",
        ),
        (
            "name = \"nowhere\"\nstation = \"nope\"\nevery = \"1m\"\nvalue = {}",
            "schedule `nowhere` names station `nope`, which is not declared",
        ),
        (
            "name = \"bad-cron\"\nstation = \"raw\"\ncron = \"61 * * * *\"\nvalue = {}",
            "schedule `bad-cron` `61 * * * *` is not a five-field cron expression",
        ),
        (
            "name = \"bad-zone\"\nstation = \"raw\"\ncron = \"0 * * * *\"\ntimezone = \"Mars/Olympus\"\nvalue = {}",
            "`Mars/Olympus` is not an IANA time zone name",
        ),
        (
            "name = \"both\"\nstation = \"raw\"\ncron = \"0 * * * *\"\nevery = \"1m\"\nvalue = {}",
            "schedule `both` needs exactly one of `cron` and `every`",
        ),
        (
            "name = \"never\"\nstation = \"raw\"\ncron = \"0 0 30 2 *\"\nvalue = {}",
            "schedule `never` never fires",
        ),
        (
            "name = \"Upper\"\nstation = \"raw\"\nevery = \"1m\"\nvalue = {}",
            "schedule `Upper` has a name that is not [a-z0-9-]+",
        ),
        (
            "name = \"heartbeat\"\nstation = \"raw\"\nevery = \"1m\"\nvalue = {}",
            "schedule `heartbeat` is named twice",
        ),
    ];
    for (entry, expected) in cases {
        repo.write(
            "schedules.toml",
            &format!("{GOOD}\n[[schedule]]\n{entry}\n"),
        );
        let (passed, printed) = check(&repo);
        assert!(!passed, "{entry}");
        assert!(
            printed.contains("schedules.toml: schedule: ") && printed.contains(expected),
            "{entry}\n{printed}"
        );
    }
}

#[test]
fn a_new_schema_version_that_would_refuse_a_scheduled_message_refuses_its_commit() {
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("orders/schema.toml", "compatibility = \"none\"\n"),
        ("stations.toml", STATIONS),
        ("schedules.toml", GOOD),
    ]);
    assert!(check(&repo).0);
    let stricter = ORDER_SCHEMA.replace(
        r#""required": ["order_id", "items"]"#,
        r#""required": ["order_id", "items", "customer"]"#,
    );
    assert_ne!(stricter, ORDER_SCHEMA);
    repo.write("orders/v2.json", &stricter);
    let (passed, printed) = check(&repo);
    assert!(!passed, "{printed}");
    assert!(
        printed.contains("schedule `nightly-orders` has a message schema version 2 refuses")
            && printed.contains("customer"),
        "{printed}"
    );
    // Rules count too: a dlq rule the scheduled order breaks.
    std::fs::remove_file(repo.path().join("orders/v2.json")).unwrap();
    repo.write("orders/v2.json", ORDER_SCHEMA);
    repo.write(
        "orders/v2.rules.toml",
        "[[rule]]\nname = \"real_ids\"\nexpr = \"message.order_id != 'nightly'\"\n",
    );
    let (passed, printed) = check(&repo);
    assert!(!passed, "{printed}");
    assert!(printed.contains("rule `real_ids`"), "{printed}");
}

/// The `sluice-scheduled-for` ticks stored on `station`, in order, read by a fresh group.
async fn stored_ticks(gw: &Gateway, station: &str, group: &str) -> Vec<Timestamp> {
    gw.consume(station, group, 1000)
        .await
        .iter()
        .map(|m| {
            assert_eq!(m["headers"]["sluice-schedule"], "every-second", "{m}");
            assert_eq!(m["headers"]["team"], "ops", "{m}");
            assert_eq!(m["value"]["order_id"], "tick", "{m}");
            m["headers"]["sluice-scheduled-for"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

async fn wait_for_ticks(gw: &Gateway, at_least: usize) {
    let started = std::time::Instant::now();
    loop {
        let (_, body) = gw.get("/v1/schedules").await;
        let succeeded = body["schedules"][0]["runs"]["succeeded"]
            .as_u64()
            .unwrap_or(0);
        if succeeded as usize >= at_least {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_every_second_schedule_produces_each_tick_once_and_catches_up_the_latest_after_a_restart(
) {
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        ("stations.toml", STATIONS),
        ("schedules.toml", &every_second_schedule("jobs")),
    ]);
    let gw = Gateway::start(&repo, "").await;
    wait_for_ticks(&gw, 3).await;
    let (status, listed) = gw.get("/v1/schedules").await;
    assert_eq!(status, 200);
    let listed = &listed["schedules"][0];
    assert_eq!(listed["station"], "jobs");
    assert_eq!(listed["every"], "1s");
    assert_eq!(listed["last_result"]["result"], "ok", "{listed}");
    let last: Timestamp = listed["last_tick"].as_str().unwrap().parse().unwrap();
    let next: Timestamp = listed["next_tick"].as_str().unwrap().parse().unwrap();
    assert!(next > last, "{listed}");

    let data = gw.stop().await;
    // Down for two and a half ticks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let gw = Gateway::start_with_data(&repo, "", data).await;
    wait_for_ticks(&gw, 2).await;
    let ticks = stored_ticks(&gw, "jobs", "check").await;
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "no tick twice: {ticks:?}"
    );
    // One message a second, but across the downtime: its missed ticks are caught up by one
    // message, for the latest of them (with every missed tick produced, no gap would show).
    let gaps: Vec<i64> = ticks
        .windows(2)
        .map(|w| (w[1] - w[0]).get_seconds())
        .collect();
    let downtime: Vec<&i64> = gaps.iter().filter(|gap| **gap != 1).collect();
    assert_eq!(downtime.len(), 1, "{ticks:?}");
    assert!((2..=4).contains(downtime[0]), "{ticks:?}");
}

#[tokio::test]
async fn two_gateways_on_jetstream_put_each_tick_on_the_station_once_even_across_a_restart() {
    let nats = Nats::start();
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"jobs\"\nschema = \"orders\"\nbackend = { nats = \"jobs.ticks\" }\n",
        ),
        ("schedules.toml", &every_second_schedule("jobs")),
    ]);
    let config = format!("[nats]\nurl = \"{}\"\n", nats.url());
    let first = Gateway::start(&repo, &config).await;
    let second = Gateway::start(&repo, &config).await;
    wait_for_ticks(&first, 3).await;
    wait_for_ticks(&second, 3).await;
    // The second gateway goes down for two and a half ticks, then catches up the latest one:
    // a tick the first already produced.
    let data = second.stop().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = Gateway::start_with_data(&repo, &config, data).await;
    let restarted_at = Timestamp::now();
    wait_for_ticks(&second, 2).await;
    wait_for_ticks(&first, 8).await;

    let ticks = stored_ticks(&first, "jobs", "check").await;
    assert!(ticks.len() >= 8, "{ticks:?}");
    assert!(
        ticks.windows(2).all(|w| w[0] < w[1]),
        "each tick once: {ticks:?}"
    );
    assert!(
        ticks.windows(2).all(|w| (w[1] - w[0]).get_seconds() == 1),
        "no tick missed while one gateway ran: {ticks:?}"
    );
    assert!(ticks.iter().any(|t| *t > restarted_at), "{ticks:?}");
}

/// Each gateway's count of ticks produced.
async fn succeeded(gateways: &[&Gateway]) -> Vec<u64> {
    let mut counts = Vec::new();
    for gw in gateways {
        let (_, body) = gw.get("/v1/schedules").await;
        counts.push(
            body["schedules"][0]["runs"]["succeeded"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    counts
}

#[tokio::test]
async fn on_kafka_one_gateway_at_a_time_runs_the_schedules() {
    let kafka = Kafka::start();
    let repo = Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"jobs\"\nschema = \"orders\"\nbackend = { kafka = \"jobs\" }\n",
        ),
        ("schedules.toml", &every_second_schedule("jobs")),
    ]);
    let config = format!(
        "[kafka]\nbrokers = \"{}\"\nrequest_timeout = \"10s\"\n",
        kafka.brokers()
    );
    let first = Gateway::start(&repo, &config).await;
    let second = Gateway::start(&repo, &config).await;
    let started = std::time::Instant::now();
    let counts = loop {
        let counts = succeeded(&[&first, &second]).await;
        if counts.iter().sum::<u64>() >= 4 {
            break counts;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for gw in [&first, &second] {
        let (_, listed) = gw.get("/v1/schedules").await;
        assert_eq!(listed["schedules"][0]["runs"]["failed"], 0, "{listed}");
    }
    // Both gateways fire every tick; had both produced one, Kafka (which cannot drop a
    // duplicate) would hold it twice. The role moves between them as they join, so a tick may
    // be skipped during the handover, but none is produced twice.
    let mut ticks = Vec::new();
    let started = std::time::Instant::now();
    while ticks.len() < counts.iter().sum::<u64>() as usize {
        ticks.extend(stored_ticks(&first, "jobs", "check").await);
        assert!(started.elapsed() < Duration::from_secs(60), "{ticks:?}");
    }
    ticks.sort();
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(unique, ticks, "each tick once: {counts:?}");
}
