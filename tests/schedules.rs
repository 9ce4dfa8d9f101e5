//! `schedules.toml` is judged with its revision, like everything in the schema repository: a
//! schedule with a cadence that cannot be, a station that is not declared, or a message the
//! station's schema, constraints or rules would refuse makes `sluice check` (and a sync) refuse the
//! revision, naming the schedule and why.

mod common;

use std::process::Command;

use common::{sluice_binary, Repo, ORDER_SCHEMA};

/// `sluice check` on `repo`: whether it passed, and what it printed.
fn check(repo: &Repo) -> (bool, String) {
    let output = Command::new(sluice_binary())
        .arg("check")
        .arg(repo.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
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
