//! A consumer: long-polls the `orders` station as a member of group `example`, prints each order
//! and acknowledges it. Run several at once and they share the work; another group sees it all.
//!
//! `cargo run --example consumer [-- URL [GROUP]]` (defaults http://127.0.0.1:8080, `example`).
//! Stops after a poll that waited 5 seconds and got nothing.

use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let group = args.next().unwrap_or_else(|| "example".into());
    let client = reqwest::Client::new();
    loop {
        let response = client
            .get(format!(
                "{base}/v1/stations/orders/messages?group={group}&max=100&wait_ms=5000"
            ))
            .send()
            .await?;
        let body: Value = response.json().await?;
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            println!("no new orders; done");
            return Ok(());
        }
        let mut offsets = Vec::new();
        for message in &messages {
            println!(
                "offset {} (schema v{}, delivery {}): {}",
                message["offset"], message["schema_version"], message["delivery"], message["value"]
            );
            offsets.push(message["offset"].clone());
        }
        client
            .post(format!("{base}/v1/stations/orders/ack"))
            .json(&json!({"group": group, "offsets": offsets}))
            .send()
            .await?
            .error_for_status()?;
    }
}
