//! `sluice produce` and `sluice consume` against a running gateway (the real binary): lines in,
//! a summary and each rejected line out; consumed messages as JSON lines, acked or not.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{orders_repo, sluice_binary, Process};
use serde_json::Value;

fn sluice(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(sluice_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn produce_reports_each_rejected_line_and_consume_prints_json_lines() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let gateway = Process::serve(repo.path(), data.path());
    let url = gateway.base();
    let file = data.path().join("orders.ndjson");
    std::fs::write(
        &file,
        concat!(
            "{\"order_id\":\"o-1\",\"items\":[{\"qty\":1}]}\n",
            "{\"order_id\":\"o-2\",\"items\":[{\"qty\":0}]}\n",
            "\n",
            "{\"order_id\":\"o-3\",\"items\":[{\"qty\":3}]}\r\n",
            "not json at all\n",
            "{\"order_id\":\"o-4\",\"items\":[]}",
        ),
    )
    .unwrap();

    let produced = sluice(
        &[
            "produce",
            "orders",
            file.to_str().unwrap(),
            "--url",
            &url,
            "--batch-size",
            "2",
        ],
        None,
    );
    let report = text(&produced.stderr);
    assert_eq!(
        produced.status.code(),
        Some(1),
        "some lines were rejected:\n{report}"
    );
    assert!(
        report.contains("orders: 3 accepted, 2 rejected"),
        "{report}"
    );
    assert!(
        report.contains("line 2: schema_violation: /items/0/qty:"),
        "{report}"
    );
    assert!(report.contains("line 5: "), "{report}");

    let consumed = sluice(
        &[
            "consume",
            "orders",
            "--group",
            "billing",
            "--ack",
            "--max-messages",
            "3",
            "--url",
            &url,
        ],
        None,
    );
    assert!(consumed.status.success(), "{}", text(&consumed.stderr));
    let messages = json_lines(&consumed);
    let ids: Vec<&str> = messages
        .iter()
        .map(|m| m["value"]["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["o-1", "o-3", "o-4"]);
    assert!(messages
        .iter()
        .all(|m| m["delivery"] == 1 && m["offset"].is_u64()));

    // Acked: the group has nothing left.
    let again = sluice(
        &[
            "consume",
            "orders",
            "--group",
            "billing",
            "--idle-timeout",
            "300ms",
            "--url",
            &url,
        ],
        None,
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), "");

    // Another group sees everything; without --ack, messages stay leased.
    let audit = sluice(
        &[
            "consume",
            "orders",
            "--group",
            "audit",
            "--idle-timeout",
            "300ms",
            "--url",
            &url,
        ],
        None,
    );
    assert_eq!(json_lines(&audit).len(), 3);
}

#[test]
fn produce_reads_standard_input_and_whole_files_and_says_why_it_failed() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let gateway = Process::serve(repo.path(), data.path());
    let url = gateway.base();

    let lines: String = (0..1200)
        .map(|i| format!("{{\"order_id\":\"s-{i}\",\"items\":[{{\"qty\":1}}]}}\n"))
        .collect();
    let produced = sluice(&["produce", "orders", "-", "--url", &url], Some(&lines));
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    assert!(
        text(&produced.stderr).contains("orders: 1200 accepted, 0 rejected"),
        "{}",
        text(&produced.stderr)
    );

    let whole = data.path().join("one.json");
    std::fs::write(
        &whole,
        "{\n  \"order_id\": \"w-1\",\n  \"items\": [{\"qty\": 2}]\n}\n",
    )
    .unwrap();
    let produced = sluice(
        &[
            "produce",
            "raw",
            whole.to_str().unwrap(),
            "--whole",
            "--url",
            &url,
        ],
        None,
    );
    assert!(produced.status.success(), "{}", text(&produced.stderr));
    assert!(text(&produced.stderr).contains("accepted 1 message at offset 0 of raw"));

    let unknown = sluice(&["produce", "nope", "-", "--url", &url], Some("{}\n"));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("404 unknown_station: no station named `nope`"),
        "{}",
        text(&unknown.stderr)
    );

    drop(gateway);
    let unreachable = sluice(&["consume", "orders", "--group", "g", "--url", &url], None);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        text(&unreachable.stderr).contains("cannot reach the gateway"),
        "{}",
        text(&unreachable.stderr)
    );
}
