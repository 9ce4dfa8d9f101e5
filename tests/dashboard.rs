//! The dashboard at `/`, driven in headless Chromium by `tests/dashboard/drive.mjs`
//! (playwright-core): it loads from the binary with nothing fetched from elsewhere, the station
//! row shows the counts, a schema its versions, ids, files and a diff, the registry tab its
//! serving commit, a dead letter opens with its reason and the failing path highlighted, and
//! Replay forwards it once a new schema version accepts it — on the embedded store and on a NATS
//! JetStream station alike. Screenshots are saved in
//! `$CARGO_TARGET_DIR/dashboard-screenshots/<backend>/` (or `target/`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::brokers::Nats;
use common::{project_file, valid_order, Gateway, GitRepo, ORDER_SCHEMA};
use serde_json::{json, Value};

/// `ORDER_SCHEMA` with quantities of 0 allowed: a backward-compatible v2.
fn relaxed_schema() -> String {
    ORDER_SCHEMA.replace("\"minimum\": 1", "\"minimum\": 0")
}

fn screenshot_dir(backend: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_file("target"));
    let dir = target.join("dashboard-screenshots").join(backend);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the driver `script` of `tests/dashboard/` saw, run with `args`.
async fn drive(script: &str, args: &[&str]) -> Value {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is needed (scripts/test installs it)"
    );
    let driver = project_file("tests/dashboard");
    assert!(
        driver.join("node_modules/playwright-core").exists(),
        "playwright-core is needed: npm ci in tests/dashboard (scripts/test does it)"
    );
    let mut command = Command::new("node");
    command.arg(script).args(args).current_dir(driver);
    let output = tokio::task::spawn_blocking(move || command.output().expect("node runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(stdout.trim()).expect("the driver prints what it saw");
    assert_eq!(
        seen["offsite_requests"],
        json!([]),
        "the page fetches nothing from elsewhere"
    );
    seen
}

#[tokio::test]
async fn the_dashboard_lists_rules_with_their_failures_and_names_the_rule_of_a_dead_letter() {
    let rules = "[[rule]]\nname = \"at_most_ten\"\nexpr = \"message.items.all(i, i.qty <= 10)\"\n\
                 doc = \"no more than ten of one item\"\n\n\
                 [[rule]]\nname = \"named_customer\"\nexpr = \"has(message.customer)\"\non_failure = \"warn\"\n";
    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        ("schemas/orders/v1.rules.toml", rules),
        (
            "stations.toml",
            "[[station]]\nname = \"ruled-orders\"\nschema = \"orders\"\n",
        ),
    ]);
    let gw = Gateway::start(&repo, "").await;
    let big =
        json!({"order_id": "r-1", "items": [{"sku": "tea", "qty": 1}, {"sku": "cup", "qty": 40}]});
    assert_eq!(gw.produce("ruled-orders", &big).await.0, 422);
    for id in ["r-2", "r-3"] {
        assert_eq!(gw.produce("ruled-orders", &valid_order(id)).await.0, 201);
    }

    let shots = screenshot_dir("rules");
    let seen = drive(
        "rules.mjs",
        &[
            &gw.base,
            "ruled-orders",
            "orders",
            "1",
            &shots.display().to_string(),
        ],
    )
    .await;
    let rows: Vec<Vec<&str>> = seen["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "{seen}");
    assert_eq!(&rows[0][..3], ["at_most_ten", "dlq", "1"], "{seen}");
    assert!(
        rows[0][3].contains("no more than ten of one item"),
        "{seen}"
    );
    // Every rule is judged on each message: the warn rule failed on all three, the refused too.
    assert_eq!(&rows[1][..3], ["named_customer", "warn", "3"], "{seen}");

    let reasons = seen["reasons"].as_str().unwrap();
    assert!(reasons.contains("rule at_most_ten"), "{seen}");
    assert!(reasons.contains("/items"), "{seen}");
    let highlighted: Vec<&str> = seen["highlighted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        highlighted.iter().any(|l| l.contains("\"qty\": 40")),
        "{seen}"
    );
    assert!(shots.join("rule-dead-letter.png").metadata().unwrap().len() > 1000);
}

#[tokio::test]
async fn the_dashboard_shows_counts_opens_a_dead_letter_and_replays_it() {
    drive_the_dashboard("embedded", "", "", 3).await;
}

#[tokio::test]
async fn the_dashboard_counts_and_replays_on_a_jetstream_station_too() {
    let nats = Nats::start();
    let config = format!("[nats]\nurl = \"{}\"\n", nats.url());
    // Stream sequences start at 1: the fourth message is at 4.
    drive_the_dashboard("nats", "backend = { nats = \"shop.orders\" }", &config, 4).await;
}

/// Produces three valid orders and one refused to station `<name>-orders` on `backend` (a line of
/// its `[[station]]`, with `config` for the gateway), drives the dashboard, and checks what it
/// showed; the replayed dead letter lands at `replayed_offset`. Each backend has a station name of
/// its own: a station's produced totals are the process's, shared by the tests in it.
async fn drive_the_dashboard(name: &str, backend: &str, config: &str, replayed_offset: u64) {
    let station = format!("{name}-orders");
    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            &format!(
                "[[station]]\nname = \"{station}\"\nschema = \"orders\"\n{backend}\n\n\
                 [[station]]\nname = \"{name}-ticks\"\n"
            ),
        ),
        // Hourly, so that no tick falls in the test: the dashboard shows when the next will.
        (
            "schedules.toml",
            &format!(
                "[[schedule]]\nname = \"hourly-{name}\"\nstation = \"{name}-ticks\"\n\
                 cron = \"0 * * * *\"\ntimezone = \"Europe/Berlin\"\nvalue = {{ report = \"sales\" }}\n"
            ),
        ),
    ]);
    assert!(relaxed_schema() != ORDER_SCHEMA);
    let gw = Gateway::start(&repo, config).await;
    let (page_status, page) = {
        let answer = gw.client.get(gw.url("/")).send().await.unwrap();
        (answer.status(), answer.text().await.unwrap())
    };
    assert_eq!(page_status, 200);
    assert!(page.contains("<title>Sluice</title>"));

    for id in ["d-1", "d-2", "d-3"] {
        assert_eq!(gw.produce(&station, &valid_order(id)).await.0, 201);
    }
    let zero = json!({"order_id": "d-0", "items": [{"qty": 0}]});
    assert_eq!(gw.produce(&station, &zero).await.0, 422);
    // A new version that accepts it, so that Replay can forward it.
    repo.write("schemas/orders/v2.json", &relaxed_schema());
    repo.commit("orders v2: a quantity of 0 is allowed");
    assert_eq!(gw.post_json("/v1/registry/sync", &json!({})).await.0, 200);

    let shots = screenshot_dir(name);
    let seen = drive(
        "drive.mjs",
        &[&gw.base, &station, "orders", &shots.display().to_string()],
    )
    .await;

    let row: Vec<&str> = seen["station_row"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().trim())
        .collect();
    assert_eq!(row[0], station, "{seen}");
    assert_eq!(row[1], "orders", "{seen}");
    assert_eq!(
        &row[4..=8],
        ["3", "1", "0", "3", "1"],
        "accepted, rejected, errors, stored, DLQ: {seen}"
    );
    let summary = seen["schema_summary"].as_str().unwrap();
    assert!(summary.contains("json_schema"), "{seen}");
    assert!(summary.contains("compatibility backward"), "{seen}");
    assert!(summary.contains("newest v2"), "{seen}");
    let ids = gw.get("/v1/schemas/orders").await.1["ids"].clone();
    let versions: Vec<String> = seen["schema_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_str()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        versions,
        [
            format!("v1 {} schemas/orders/v1.json", ids[0]),
            format!("v2 {} schemas/orders/v2.json", ids[1])
        ],
        "{seen}"
    );
    assert_eq!(
        seen["schema_diff_removed"].as_array().unwrap().len(),
        1,
        "{seen}"
    );
    assert!(
        seen["schema_diff_removed"][0]
            .as_str()
            .unwrap()
            .contains("\"minimum\": 1"),
        "{seen}"
    );
    assert!(
        seen["schema_diff_added"][0]
            .as_str()
            .unwrap()
            .contains("\"minimum\": 0"),
        "{seen}"
    );
    let serving = gw.get("/v1/registry/status").await.1["serving_commit"].clone();
    assert!(
        seen["registry"]
            .as_str()
            .unwrap()
            .contains(serving.as_str().unwrap()),
        "{seen}"
    );

    let schedule = seen["schedules"][0].as_str().unwrap_or_default();
    assert!(
        schedule.contains(&format!("hourly-{name}"))
            && schedule.contains("0 * * * * (Europe/Berlin)")
            && schedule.contains(":00:00Z"),
        "the schedule with its cadence and next tick: {seen}"
    );

    let reasons = seen["reasons"].as_str().unwrap();
    assert!(reasons.contains("/items/0/qty"), "{seen}");
    assert!(reasons.contains("minimum"), "{seen}");
    let highlighted = seen["highlighted"].as_array().unwrap();
    assert_eq!(highlighted.len(), 1, "{seen}");
    assert!(
        highlighted[0].as_str().unwrap().contains("\"qty\": 0"),
        "{seen}"
    );
    let replay = seen["replay"].as_str().unwrap();
    assert!(
        replay.contains(&format!(
            "Forwarded to {station} at offset {replayed_offset}"
        )),
        "{seen}"
    );
    // What the button did: the fourth message is on the station, judged by v2.
    let stored = gw.consume(&station, "check", 10).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3]["value"]["order_id"], "d-0");
    assert_eq!(stored[3]["schema_version"], 2);
    for shot in [
        "stations.png",
        "schema.png",
        "dead-letter.png",
        "replayed.png",
    ] {
        assert!(shots.join(shot).metadata().unwrap().len() > 1000, "{shot}");
    }
    println!("screenshots in {}", shots.display());
}
