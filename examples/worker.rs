//! A mail worker in Rust: takes jobs from the `emails` station as a member of group `mailers`,
//! sends them and acknowledges each one. A job that fails is given back with a delay (nack) and
//! retried; after the station's `max_deliveries` it lands in `emails.dlq` instead of looping.
//! Run several workers at once and they share the jobs.
//!
//! `cargo run --example worker [-- URL]` (default http://127.0.0.1:8080); runs until interrupted.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

const STATION: &str = "emails";
const GROUP: &str = "mailers";
const RETRY_DELAY: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Jobs {
    messages: Vec<Job>,
}

#[derive(Deserialize)]
struct Job {
    offset: u64,
    delivery: u32,
    value: Email,
}

#[derive(Deserialize)]
struct Email {
    to: String,
    template: String,
}

/// Stands in for the real work; addresses at bounce.example always fail.
async fn send_email(email: &Email) -> Result<(), String> {
    if email.to.ends_with("@bounce.example") {
        return Err(format!("mailbox {} does not exist", email.to));
    }
    println!("sent {} to {}", email.template, email.to);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client = reqwest::Client::new();
    loop {
        let jobs: Jobs = client
            .get(format!(
                "{base}/v1/stations/{STATION}/messages?group={GROUP}&max=10&wait_ms=10000"
            ))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for job in &jobs.messages {
            match send_email(&job.value).await {
                Ok(()) => done.push(job.offset),
                Err(error) => {
                    println!(
                        "job {} failed (delivery {}): {error}",
                        job.offset, job.delivery
                    );
                    failed.push(job.offset);
                }
            }
        }
        if !done.is_empty() {
            client
                .post(format!("{base}/v1/stations/{STATION}/ack"))
                .json(&json!({"group": GROUP, "offsets": done}))
                .send()
                .await?
                .error_for_status()?;
        }
        if !failed.is_empty() {
            client
                .post(format!("{base}/v1/stations/{STATION}/nack"))
                .json(&json!({
                    "group": GROUP,
                    "offsets": failed,
                    "delay_ms": RETRY_DELAY.as_millis() as u64,
                }))
                .send()
                .await?
                .error_for_status()?;
        }
    }
}
