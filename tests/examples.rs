//! The README's work-queue example: the plain-Python mail worker (`examples/worker.py`) against
//! the example schemas — good jobs sent and acked once, a failing job retried with nack delays and
//! then dead-lettered after the station's `max_deliveries`.

mod common;

use std::process::Command;

use common::{project_file, Gateway};
use serde_json::json;

#[tokio::test]
async fn the_python_worker_acks_good_jobs_and_a_failing_job_ends_in_the_dlq() {
    let gw = Gateway::start(project_file("schemas"), "").await;
    for to in ["ann@example.com", "bob@bounce.example", "cy@example.com"] {
        let (status, body) = gw
            .post_json(
                "/v1/stations/emails/messages",
                &json!({"to": to, "template": "welcome"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = gw
        .post_json(
            "/v1/stations/emails/messages",
            &json!({"to": "nobody", "template": "welcome"}),
        )
        .await;
    assert_eq!(
        status, 422,
        "a malformed job never reaches a worker: {body}"
    );

    let base = gw.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(project_file("examples/worker.py"))
            .arg(&base)
            .args(["--idle-exit", "1.5"])
            .env("RETRY_DELAY_MS", "50")
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        log.matches("sent welcome to ann@example.com").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("sent welcome to cy@example.com").count(),
        1,
        "{log}"
    );
    for delivery in 1..=5 {
        assert!(
            log.contains(&format!("job 1 failed (delivery {delivery})")),
            "{log}"
        );
    }
    assert!(!log.contains("delivery 6"), "{log}");

    let (_, dlq) = gw.get("/v1/stations/emails/dlq").await;
    let reasons: Vec<&str> = dlq["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| letter["error"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["schema_violation", "max_deliveries"], "{dlq}");
    assert_eq!(dlq["dead_letters"][1]["value"]["to"], "bob@bounce.example");
    assert!(gw.consume("emails", "mailers", 10).await.is_empty());
}
