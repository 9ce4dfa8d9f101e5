//! Webhook notifications (`[alerts]`): a station refusing more than its `alert.rejection_rate` of
//! the messages produced over its `alert.window`, a registry commit being refused, and a schedule
//! failing to produce its tick. The body is
//! Slack's incoming-webhook JSON, `{"text": "..."}`, which most chat and paging tools also take.
//!
//! A checker task samples each station's totals every `check_interval`; notifications are sent on
//! their own tasks, so a slow webhook never delays a check, and at most one per station (and one
//! for the registry) goes out per `min_interval`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::metrics::schedules::ScheduleRuns;
use crate::metrics::Totals;
use crate::registry::Registry;

/// Where and how often notifications go (`[alerts]`); what triggers them is per station
/// (`alert` in a station binding) plus refused registry commits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// An incoming-webhook URL (Slack's, or anything taking `{"text": ...}`); none: no alerts.
    pub webhook_url: Option<String>,
    /// Notify when a registry commit is refused.
    pub registry_refusals: bool,
    /// At most one notification per station (and one for the registry) in this interval.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// How often rejection rates are checked.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            registry_refusals: true,
            min_interval: Duration::from_secs(300),
            check_interval: Duration::from_secs(10),
        }
    }
}

/// Longest a webhook may take to answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks and notifies until the task is aborted. Does nothing without a webhook URL.
pub async fn run(registry: Arc<Registry>, schedules: Arc<ScheduleRuns>, config: AlertsConfig) {
    let Some(url) = config.webhook_url.clone().filter(|u| !u.is_empty()) else {
        return;
    };
    crate::crypto::install_provider();
    let client = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "alerts are off: no HTTP client");
            return;
        }
    };
    let mut checker = Checker::new(config.clone(), registry.refusals_total());
    let mut ticks = tokio::time::interval(config.check_interval);
    loop {
        ticks.tick().await;
        let mut due = checker.check(&registry, Instant::now());
        due.extend(checker.check_schedules(&registry, &schedules, Instant::now()));
        for text in due {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { send(&client, &url, &text).await });
        }
    }
}

async fn send(client: &reqwest::Client, url: &str, text: &str) {
    let sent = client.post(url).json(&json!({ "text": text })).send().await;
    match sent.map(|answer| answer.status()) {
        Ok(status) if status.is_success() => tracing::info!(%text, "alert sent"),
        Ok(status) => tracing::warn!(%status, %text, "the alert webhook refused a notification"),
        // Without the URL: a webhook's URL often holds its secret.
        Err(e) => {
            tracing::warn!(error = %e.without_url(), %text, "the alert webhook could not be reached")
        }
    }
}

/// One reading of a station's totals.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    totals: Totals,
}

/// Decides what to notify, from successive readings; holds no I/O.
struct Checker {
    config: AlertsConfig,
    samples: HashMap<String, VecDeque<Sample>>,
    last_sent: HashMap<String, Instant>,
    refusals_seen: u64,
    /// Each schedule's failed runs, as of the last check.
    schedule_failures_seen: HashMap<String, u64>,
}

/// The rate-limit key of registry notifications (station names cannot contain spaces).
const REGISTRY_KEY: &str = "registry refusals";

impl Checker {
    fn new(config: AlertsConfig, refusals_seen: u64) -> Self {
        Self {
            config,
            samples: HashMap::new(),
            last_sent: HashMap::new(),
            refusals_seen,
            schedule_failures_seen: HashMap::new(),
        }
    }

    /// The notifications due for schedules that failed to produce a tick since the last check.
    fn check_schedules(
        &mut self,
        registry: &Registry,
        runs: &ScheduleRuns,
        now: Instant,
    ) -> Vec<String> {
        let mut due = Vec::new();
        for schedule in registry.snapshot().schedules() {
            let seen = runs.get(&schedule.name);
            let before = self
                .schedule_failures_seen
                .insert(schedule.name.clone(), seen.failed)
                .unwrap_or(0);
            let key = format!("schedule {}", schedule.name);
            if seen.failed > before
                && may_send(&mut self.last_sent, self.config.min_interval, &key, now)
            {
                due.push(format!(
                    ":alarm_clock: Sluice schedule `{}` could not produce its message to station `{}`: {}. It is tried again; /v1/schedules shows when it succeeds.",
                    schedule.name,
                    schedule.station,
                    seen.last_error.as_deref().unwrap_or("unknown error"),
                ));
            }
        }
        due
    }

    /// The notifications due now.
    fn check(&mut self, registry: &Registry, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        let snapshot = registry.snapshot();
        for station in snapshot.stations() {
            let Some(rule) = station.alert else {
                continue;
            };
            let samples = self.samples.entry(station.name.clone()).or_default();
            samples.push_back(Sample {
                at: now,
                totals: station.metrics.totals(),
            });
            // Keep the newest sample at least a window old, as the window's start.
            while samples.len() > 2 && now.duration_since(samples[1].at) >= rule.window {
                samples.pop_front();
            }
            let (first, last) = (samples[0], samples[samples.len() - 1]);
            let rejected = last.totals.rejected - first.totals.rejected;
            let produced = rejected
                + (last.totals.accepted - first.totals.accepted)
                + (last.totals.errors - first.totals.errors);
            if produced < rule.min_messages || produced == 0 {
                continue;
            }
            let rate = rejected as f64 / produced as f64;
            if rate >= rule.rejection_rate
                && may_send(
                    &mut self.last_sent,
                    self.config.min_interval,
                    &station.name,
                    now,
                )
            {
                due.push(format!(
                    ":warning: Sluice station `{}` refused {rejected} of {produced} messages ({:.0}%) in the last {}: over its alert threshold of {:.0}%. Its dead letters say why: /v1/stations/{}/dlq",
                    station.name,
                    rate * 100.0,
                    humantime::format_duration(last.at.duration_since(first.at).max(rule.window)),
                    rule.rejection_rate * 100.0,
                    station.name,
                ));
                // Judge the next window afresh.
                samples.retain(|s| s.at == now);
            }
        }
        self.samples
            .retain(|name, _| snapshot.station(name).is_some_and(|s| s.alert.is_some()));

        let refusals = registry.refusals_total();
        if refusals > self.refusals_seen {
            self.refusals_seen = refusals;
            if self.config.registry_refusals
                && may_send(
                    &mut self.last_sent,
                    self.config.min_interval,
                    REGISTRY_KEY,
                    now,
                )
            {
                if let Some(refusal) = registry.last_refusal() {
                    let problems: Vec<String> = refusal
                        .errors
                        .iter()
                        .take(5)
                        .map(|p| format!("• {p}"))
                        .collect();
                    due.push(format!(
                        ":no_entry: Sluice refused schema commit `{}` of {}; commit `{}` keeps serving.\n{}",
                        refusal.revision,
                        registry.source(),
                        snapshot.revision,
                        problems.join("\n")
                    ));
                }
            }
        }
        due
    }
}

/// Whether `key` may be notified now, at most once per `min_interval` (if so, notes that it was).
fn may_send(
    last_sent: &mut HashMap<String, Instant>,
    min_interval: Duration,
    key: &str,
    now: Instant,
) -> bool {
    if let Some(last) = last_sent.get(key) {
        if now.duration_since(*last) < min_interval {
            return false;
        }
    }
    last_sent.insert(key.to_owned(), now);
    true
}
