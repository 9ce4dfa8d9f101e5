//! What a 201 promises, under the real binary: eight producers write concurrently while the
//! process is killed with SIGKILL (no shutdown code runs) or stopped with SIGTERM (graceful
//! shutdown); after a restart on the same data directory, every message that was answered 201 is
//! there for a consumer. SIGTERM ends the process within `server.shutdown_timeout` even with a
//! stream that would never end on its own.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, orders_repo, valid_order, Process};

const PRODUCERS: usize = 8;

/// Load on a running gateway: what it answered 201, counted as it goes.
struct Load {
    accepted: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Eight producers, each sending its own orders one after another until the gateway stops
    /// answering.
    fn start(base: String) -> Self {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let tasks = (0..PRODUCERS)
            .map(|producer| {
                let (accepted, count, client, base) = (
                    accepted.clone(),
                    count.clone(),
                    client.clone(),
                    base.clone(),
                );
                tokio::spawn(async move {
                    for i in 0.. {
                        let id = format!("p{producer}-{i}");
                        let sent = client
                            .post(format!("{base}/v1/stations/orders/messages"))
                            .json(&valid_order(&id))
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status() == 201 => {
                                accepted.lock().unwrap().push(id);
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            // 503 while shutting down, or the connection gone: this producer stops.
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        Self {
            accepted,
            count,
            tasks,
        }
    }

    /// Waits until at least `n` messages were answered 201.
    async fn reached(&self, n: usize) {
        eventually(Duration::from_secs(60), || async {
            (self.count.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await
    }

    /// Waits for every producer to stop; the ids answered 201.
    async fn finish(self) -> Vec<String> {
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.accepted)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// Every order id a fresh consumer group reads from `base`.
async fn stored_ids(base: &str) -> HashSet<String> {
    let client = reqwest::Client::new();
    let mut ids = HashSet::new();
    loop {
        let body: serde_json::Value = client
            .get(format!(
                "{base}/v1/stations/orders/messages?group=audit&max=1000"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = body["messages"].as_array().unwrap();
        if messages.is_empty() {
            return ids;
        }
        let offsets: Vec<u64> = messages
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect();
        client
            .post(format!("{base}/v1/stations/orders/ack"))
            .json(&serde_json::json!({"group": "audit", "offsets": offsets}))
            .send()
            .await
            .unwrap();
        ids.extend(
            messages
                .iter()
                .map(|m| m["value"]["order_id"].as_str().unwrap().to_owned()),
        );
    }
}

fn assert_all_stored(accepted: &[String], stored: &HashSet<String>) {
    let missing: Vec<&String> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages answered 201 are gone: {missing:?}",
        missing.len(),
        accepted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_201_survives_a_sigkill_in_the_middle_of_concurrent_load() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let gateway = Process::serve(repo.path(), data.path());
    let load = Load::start(gateway.base());
    load.reached(300).await;
    tokio::task::spawn_blocking(move || gateway.kill())
        .await
        .unwrap();
    let accepted = load.finish().await;
    assert!(accepted.len() >= 300);

    let restarted = Process::serve(repo.path(), data.path());
    let stored = stored_ids(&restarted.base()).await;
    assert_all_stored(&accepted, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_0_losing_no_201() {
    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let gateway = Process::serve(repo.path(), data.path());
    let load = Load::start(gateway.base());
    load.reached(300).await;
    let status = tokio::task::spawn_blocking(move || gateway.terminate(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let accepted = load.finish().await;

    let restarted = Process::serve(repo.path(), data.path());
    let stored = stored_ids(&restarted.base()).await;
    assert_all_stored(&accepted, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_within_shutdown_timeout_even_with_a_stream_open() {
    use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
    use sluice::ingress::grpc::proto::ConsumeRequest;

    let repo = orders_repo("");
    let data = tempfile::tempdir().unwrap();
    let gateway = Process::serve_with_env(
        repo.path(),
        data.path(),
        &[("SLUICE_SERVER_SHUTDOWN_TIMEOUT", "1s")],
    );
    // A consumer that never ends its stream (no max_messages) would hold a drain open forever.
    let mut client = GatewayClient::connect(format!("http://{}", gateway.grpc_addr))
        .await
        .unwrap();
    let mut stream = client
        .consume(ConsumeRequest {
            station: "orders".into(),
            group: "forever".into(),
            max_messages: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let status = tokio::task::spawn_blocking(move || gateway.terminate(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // The consumer sees its stream end rather than hang.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await;
    assert!(ended.is_ok(), "the consume stream did not end");
}
