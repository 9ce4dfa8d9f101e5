//! A producer: sends orders to the `orders` station of a running gateway, one by one and then as a
//! batch, and prints what Sluice answered — offsets for valid orders, violations for invalid ones.
//!
//! Run the gateway (`cargo run --release -- serve`), then:
//! `cargo run --example producer [-- URL]` (default http://127.0.0.1:8080)

use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client = reqwest::Client::new();
    let url = format!("{base}/v1/stations/orders/messages");

    let orders = [
        json!({"order_id": "A-1001", "items": [{"sku": "tea", "qty": 2}]}),
        json!({"order_id": "A-1002", "items": [{"sku": "cup", "qty": 0}]}),
        json!({"order_id": "A-1003", "items": [{"sku": "pot", "qty": 1}],
               "total": {"amount": 42.5, "currency": "EUR"}}),
    ];
    for order in &orders {
        let response = client
            .post(&url)
            .header("Sluice-Key", order["order_id"].as_str().unwrap_or_default())
            .json(order)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        match status.as_u16() {
            201 => println!("stored {} at offset {}", order["order_id"], body["offset"]),
            422 => println!(
                "refused {}: {} (dead letter {})",
                order["order_id"], body["violations"][0]["reason"], body["dlq_id"]
            ),
            _ => println!("{status}: {body}"),
        }
    }

    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"key": format!("B-{i}"), "value": {"order_id": format!("B-{i}"), "items": [{"sku": "tea", "qty": i}]}}))
        .collect();
    let response = client
        .post(format!("{url}:batch"))
        .json(&batch)
        .send()
        .await?;
    let body: Value = response.json().await?;
    println!(
        "batch: {} accepted, {} rejected",
        body["accepted"], body["rejected"]
    );
    Ok(())
}
