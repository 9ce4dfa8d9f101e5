//! The gateway's background tasks, started with it and stopped with it: the registry syncer, the
//! first connection to the stations' remote backends, metrics upkeep and station rates, alerts,
//! the embedded store's retention, and the scheduler of `schedules.toml`.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::ServeError;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::registry::sync::Syncer;

/// The running background tasks.
pub struct Background(Vec<JoinHandle<()>>);

impl Background {
    pub fn start(
        config: &Config,
        pipeline: &Arc<Pipeline>,
        syncer: Syncer,
    ) -> Result<Self, ServeError> {
        let webhook_secret = std::env::var(&config.registry.webhook_secret_env)
            .ok()
            .filter(|secret| !secret.is_empty())
            .map(String::into_bytes);
        let syncing = syncer.spawn(
            config.registry.poll_interval,
            config.registry.watch,
            webhook_secret,
        )?;
        // Kafka and NATS stations: connect and create topics or streams now, not on the first
        // message.
        let preparing = pipeline.clone();
        let retention = pipeline.clone();
        Ok(Self(vec![
            syncing,
            tokio::spawn(async move { preparing.prepare_backends().await }),
            every(crate::metrics::RATE_INTERVAL, || async {
                crate::metrics::run_upkeep();
                crate::metrics::sample_station_rates();
            }),
            tokio::spawn(crate::alerts::run(
                pipeline.registry().clone(),
                pipeline.schedule_runs().clone(),
                config.alerts.clone(),
            )),
            every(config.storage.retention_check_interval, move || {
                let retention = retention.clone();
                async move { retention.enforce_retention().await }
            }),
            tokio::spawn(super::scheduler::run(
                pipeline.clone(),
                config.storage.dir.join("schedules"),
            )),
        ]))
    }

    /// Stops every task and waits until each is gone.
    pub async fn stop(self) {
        for task in self.0 {
            task.abort();
            let _ = task.await;
        }
    }
}

/// A task that runs `work` every `period`, the first time at once.
fn every<F, Fut>(period: Duration, mut work: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            work().await;
        }
    })
}
