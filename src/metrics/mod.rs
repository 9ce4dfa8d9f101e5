//! Prometheus metrics (`GET /metrics`): the process's one recorder, every name and label Sluice
//! exports, and the handles the hot path records through. Handles are made once — per station when
//! a registry snapshot is built, per format and backend when the pipeline is, per HTTP route and
//! outcome on its first request — so recording a message is an atomic add, with no label lookup or
//! allocation.
//!
//! What is cheaper to read than to track (dead-letter depth, registry state) is set from the
//! source just before each scrape, by the HTTP front end.
//!
//! Each station also keeps totals readable in-process (for listings, the dashboard and alerts)
//! and a reading of them every [`RATE_INTERVAL`], from which its messages per second are computed.

pub mod schedules;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use strum::{EnumCount as _, VariantArray as _};

use crate::formats::FormatKind;
use crate::model::BackendKind;

/// Produced messages, by station and outcome.
pub const MESSAGES: &str = "sluice_messages_total";
/// Messages stored in a station's dead-letter log, by station.
pub const DEAD_LETTERS: &str = "sluice_dead_letters_total";
/// Messages refused whose dead letter could not be stored (answered 503), by station.
pub const DEAD_LETTERS_NOT_KEPT: &str = "sluice_dead_letters_not_kept_total";
/// Dead letters held by an embedded station's DLQ now, by station.
pub const DLQ_DEPTH: &str = "sluice_dlq_depth";
/// Time to judge one message (a request's mean, one sample per request), by format.
pub const VALIDATION_SECONDS: &str = "sluice_validation_seconds";
/// Time for a backend to durably accept one write (a batch), by backend.
pub const APPEND_SECONDS: &str = "sluice_backend_append_seconds";
/// Registry commits judged since start, by outcome (`served`, `refused`).
pub const REGISTRY_COMMITS: &str = "sluice_registry_commits_total";
/// 1 while a registry snapshot is served.
pub const REGISTRY_READY: &str = "sluice_registry_ready";
/// Schemas in the served snapshot.
pub const REGISTRY_SCHEMAS: &str = "sluice_registry_schemas";
/// HTTP requests, by route, method and status.
pub const HTTP_REQUESTS: &str = "sluice_http_requests_total";
/// HTTP request durations, by route.
pub const HTTP_SECONDS: &str = "sluice_http_request_duration_seconds";
/// gRPC calls, by method and status code.
pub const GRPC_REQUESTS: &str = "sluice_grpc_requests_total";
/// Messages a data-contract rule failed, by station, rule and what the failure did (`dlq`,
/// `warn`).
pub const RULE_FAILURES: &str = "sluice_rule_failures_total";
pub const SCHEDULE_RUNS: &str = "sluice_schedule_runs_total";
/// Times a limit on what clients send was reached, by the limit's configuration key: a request
/// or message refused, a connection closed or refused, a remembered key forgotten early.
pub const LIMIT_HITS: &str = "sluice_limit_hits_total";

/// Histogram buckets, in seconds: 10 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder for this process, once; later calls return the same handle.
/// `None` when another recorder was installed first (metrics then go there).
pub fn install() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        MESSAGES,
        "Messages produced, by station and outcome (accepted, rejected, error)"
    );
    describe_counter!(
        RULE_FAILURES,
        "Messages a data-contract rule failed, by station, rule and on_failure (dlq, warn)"
    );
    describe_counter!(
        SCHEDULE_RUNS,
        "Ticks of schedules.toml's schedules, by schedule and result (ok, failed)"
    );
    describe_counter!(
        DEAD_LETTERS,
        "Messages stored in a station's dead-letter log"
    );
    describe_gauge!(DLQ_DEPTH, "Dead letters an embedded station's DLQ holds");
    describe_counter!(
        DEAD_LETTERS_NOT_KEPT,
        "Messages refused whose dead letter could not be stored, answered 503 so the producer retries"
    );
    describe_histogram!(
        VALIDATION_SECONDS,
        metrics::Unit::Seconds,
        "Time to judge one message against its schema (mean over a request's messages, one sample per request), by format"
    );
    describe_histogram!(
        APPEND_SECONDS,
        metrics::Unit::Seconds,
        "Time for a backend to durably accept one write, by backend"
    );
    describe_counter!(
        REGISTRY_COMMITS,
        "Registry commits judged, by outcome (served, refused)"
    );
    describe_gauge!(REGISTRY_READY, "1 while a registry snapshot is served");
    describe_gauge!(REGISTRY_SCHEMAS, "Schemas in the served registry snapshot");
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by route, method and status");
    describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request durations, by route"
    );
    describe_counter!(GRPC_REQUESTS, "gRPC calls, by method and status code");
    describe_counter!(
        LIMIT_HITS,
        "Times a limit on what clients send was reached (a request refused, a connection closed, a key forgotten early), by the limit's configuration key"
    );
}

/// The Prometheus text of every metric, or an empty page without a recorder.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Drains histogram samples into their buckets; run every few seconds so that a gateway nobody
/// scrapes does not hold samples without bound.
pub fn run_upkeep() {
    if let Some(handle) = install() {
        handle.run_upkeep();
    }
}

/// How often [`sample_station_rates`] is meant to run: the resolution of station rate histories.
pub const RATE_INTERVAL: Duration = Duration::from_secs(5);
/// Readings kept per station: two minutes of history at [`RATE_INTERVAL`].
const RATE_SAMPLES: usize = 25;
/// The span the current rate of a station is averaged over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// What one station produced since the process started, readable (unlike the Prometheus
/// counters) by the alert checker and listings, with periodic readings for its rates. Shared by
/// every snapshot's binding of the station, so a registry change does not reset it. The hot path
/// only adds to the atomics; the readings' lock is taken by the sampler and by listings.
#[derive(Debug, Default)]
pub struct StationTotals {
    accepted: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    readings: Mutex<VecDeque<(Instant, Totals)>>,
}

/// Messages per second of one station: now (averaged over the last minute) and a history, one
/// point per sampling interval, oldest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rates {
    pub interval_seconds: u64,
    pub accepted_per_second: f64,
    pub rejected_per_second: f64,
    pub errors_per_second: f64,
    pub history: Vec<RatePoint>,
}

/// Messages per second over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct RatePoint {
    pub accepted: f64,
    pub rejected: f64,
    pub errors: f64,
}

impl RatePoint {
    fn between(earlier: (Instant, Totals), later: (Instant, Totals)) -> Self {
        let seconds = later.0.saturating_duration_since(earlier.0).as_secs_f64();
        let per_second = |a: u64, b: u64| {
            if seconds > 0.0 {
                b.saturating_sub(a) as f64 / seconds
            } else {
                0.0
            }
        };
        let (a, b) = (earlier.1, later.1);
        Self {
            accepted: per_second(a.accepted, b.accepted),
            rejected: per_second(a.rejected, b.rejected),
            errors: per_second(a.errors, b.errors),
        }
    }
}

/// Totals of a station: accepted, rejected, errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub accepted: u64,
    pub rejected: u64,
    pub errors: u64,
}

impl StationTotals {
    pub fn read(&self) -> Totals {
        Totals {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Records a reading taken at `now`, dropping the oldest beyond two minutes' worth.
    fn sample(&self, now: Instant) {
        let totals = self.read();
        let mut readings = self.readings.lock().expect("station readings lock");
        readings.push_back((now, totals));
        while readings.len() > RATE_SAMPLES {
            readings.pop_front();
        }
    }

    /// The station's rates as of `now`: the current one from the oldest reading within the last
    /// minute to the live totals, the history from successive readings.
    pub fn rates(&self, now: Instant) -> Rates {
        let readings = self.readings.lock().expect("station readings lock");
        let history = readings
            .iter()
            .zip(readings.iter().skip(1))
            .map(|(earlier, later)| RatePoint::between(*earlier, *later))
            .collect();
        let current = readings
            .iter()
            .find(|(at, _)| now.saturating_duration_since(*at) <= RATE_WINDOW)
            .map(|earlier| RatePoint::between(*earlier, (now, self.read())))
            .unwrap_or_default();
        Rates {
            interval_seconds: RATE_INTERVAL.as_secs(),
            accepted_per_second: current.accepted,
            rejected_per_second: current.rejected,
            errors_per_second: current.errors,
            history,
        }
    }
}

/// Every station's totals, by name.
fn all_totals() -> &'static Mutex<HashMap<String, Arc<StationTotals>>> {
    static TOTALS: OnceLock<Mutex<HashMap<String, Arc<StationTotals>>>> = OnceLock::new();
    TOTALS.get_or_init(Default::default)
}

/// Takes a reading of every station's totals; run every [`RATE_INTERVAL`].
pub fn sample_station_rates() {
    let now = Instant::now();
    let stations: Vec<Arc<StationTotals>> = all_totals()
        .lock()
        .expect("station totals lock")
        .values()
        .cloned()
        .collect();
    for totals in stations {
        totals.sample(now);
    }
}

/// The totals of `station`, made on first use.
fn totals_of(station: &str) -> Arc<StationTotals> {
    all_totals()
        .lock()
        .expect("station totals lock")
        .entry(station.to_owned())
        .or_insert_with(|| {
            // A first reading of zeros, so the rate is known before the sampler's next round.
            let totals = StationTotals::default();
            totals.sample(Instant::now());
            Arc::new(totals)
        })
        .clone()
}

/// The counters of one station.
#[derive(Clone)]
pub struct StationMetrics {
    accepted: Counter,
    rejected: Counter,
    errors: Counter,
    dead_letters: Counter,
    dead_letters_not_kept: Counter,
    totals: Arc<StationTotals>,
}

impl std::fmt::Debug for StationMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StationMetrics")
    }
}

impl StationMetrics {
    pub fn new(station: &str) -> Self {
        let outcome = |outcome: &'static str| counter!(MESSAGES, "station" => station.to_owned(), "outcome" => outcome);
        Self {
            accepted: outcome("accepted"),
            rejected: outcome("rejected"),
            errors: outcome("error"),
            dead_letters: counter!(DEAD_LETTERS, "station" => station.to_owned()),
            dead_letters_not_kept: counter!(DEAD_LETTERS_NOT_KEPT, "station" => station.to_owned()),
            totals: totals_of(station),
        }
    }

    /// What the station produced since the process started.
    pub fn totals(&self) -> Totals {
        self.totals.read()
    }

    /// The station's messages per second, now and over the last two minutes.
    pub fn rates(&self) -> Rates {
        self.totals.rates(Instant::now())
    }

    /// Counts refused messages whose dead letters could not be stored.
    pub fn dead_letters_not_kept(&self, messages: u64) {
        self.dead_letters_not_kept.increment(messages);
    }

    /// Counts one produce call's outcomes: stored, refused by the schema, and failed otherwise.
    pub fn produced(&self, accepted: u64, rejected: u64, errors: u64, dead_lettered: u64) {
        self.accepted.increment(accepted);
        self.rejected.increment(rejected);
        self.errors.increment(errors);
        self.dead_letters.increment(dead_lettered);
        self.totals.accepted.fetch_add(accepted, Ordering::Relaxed);
        self.totals.rejected.fetch_add(rejected, Ordering::Relaxed);
        self.totals.errors.fetch_add(errors, Ordering::Relaxed);
    }
}

/// Latency histograms of the pipeline, one per format and per backend kind.
#[derive(Clone)]
pub struct PipelineMetrics {
    validation: [Histogram; FormatKind::COUNT],
    append: [Histogram; BackendKind::COUNT],
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self {
            validation: std::array::from_fn(|index| {
                let format = FormatKind::ALL[index].name();
                metrics::histogram!(VALIDATION_SECONDS, "format" => format)
            }),
            append: std::array::from_fn(|index| {
                let kind = BackendKind::VARIANTS[index].name();
                metrics::histogram!(APPEND_SECONDS, "backend" => kind)
            }),
        }
    }
}

/// The time one request's validations took, added up as they run and recorded once, when the
/// request is judged (see [`PipelineMetrics::validated`]).
#[derive(Debug, Default)]
pub struct ValidationTally {
    format: Option<FormatKind>,
    took: Duration,
    messages: u32,
}

impl ValidationTally {
    /// One message was judged against a `format` schema in `took`.
    pub fn add(&mut self, format: FormatKind, took: Duration) {
        self.format = Some(format);
        self.took += took;
        self.messages += 1;
    }

    /// The mean time per message, and the format, if any message was judged.
    fn mean(&self) -> Option<(FormatKind, Duration)> {
        let format = self.format?;
        Some((format, self.took / self.messages.max(1)))
    }
}

impl PipelineMetrics {
    /// Records a request's validations as one sample: the mean time to judge one of its messages
    /// (a station has one schema, so a request's messages share a format). One sample per request
    /// rather than per message keeps recording off the per-message path; for single-message
    /// produce the two are the same.
    pub fn validated(&self, tally: &ValidationTally) {
        let Some((format, mean)) = tally.mean() else {
            return;
        };
        self.validation[format.index()].record(mean);
    }

    /// A write to a `backend` took `took`.
    pub fn appended(&self, backend: BackendKind, took: Duration) {
        self.append[backend as usize].record(took);
    }
}

/// Counts one time `limit` (a configuration key, such as `limits.max_batch_bytes`) was reached.
pub fn limit_hit(limit: &'static str) {
    counter!(LIMIT_HITS, "limit" => limit).increment(1);
}

/// Counts one finished HTTP request.
pub fn http_request(route: &str, method: &str, status: u16, took: Duration) {
    static HANDLES: OnceLock<HttpHandles> = OnceLock::new();
    HANDLES
        .get_or_init(HttpHandles::default)
        .record(route, method, status, took);
}

/// Most (route, method, status) counters kept; beyond it (a client inventing methods, say)
/// requests are still counted, through the registry's own lookup.
const MAX_HTTP_HANDLES: usize = 1024;

/// The HTTP handles of each route seen: its duration histogram, and a request counter per
/// (method, status) — a handful each. Made on a request's first occurrence, so that every later one
/// records without building label strings.
#[derive(Default)]
struct HttpHandles(RwLock<HashMap<String, RouteHandles>>);

struct RouteHandles {
    seconds: Histogram,
    requests: Vec<(String, u16, Counter)>,
}

impl RouteHandles {
    fn requests(&self, method: &str, status: u16) -> Option<&Counter> {
        self.requests
            .iter()
            .find(|(m, s, _)| *s == status && m == method)
            .map(|(.., counter)| counter)
    }
}

fn http_requests_counter(route: &str, method: &str, status: u16) -> Counter {
    counter!(
        HTTP_REQUESTS,
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status.to_string()
    )
}

impl HttpHandles {
    fn record(&self, route: &str, method: &str, status: u16, took: Duration) {
        let known = self.0.read().expect("HTTP metric handles lock");
        if let Some(handles) = known.get(route) {
            if let Some(requests) = handles.requests(method, status) {
                requests.increment(1);
                handles.seconds.record(took);
                return;
            }
        }
        let full = known.values().map(|r| r.requests.len()).sum::<usize>() >= MAX_HTTP_HANDLES;
        drop(known);
        if full {
            http_requests_counter(route, method, status).increment(1);
            metrics::histogram!(HTTP_SECONDS, "route" => route.to_owned()).record(took);
            return;
        }
        let mut known = self.0.write().expect("HTTP metric handles lock");
        let handles = known
            .entry(route.to_owned())
            .or_insert_with(|| RouteHandles {
                seconds: metrics::histogram!(HTTP_SECONDS, "route" => route.to_owned()),
                requests: Vec::new(),
            });
        // Another request may have added it between the two locks.
        let requests = match handles.requests(method, status).cloned() {
            Some(requests) => requests,
            None => {
                let requests = http_requests_counter(route, method, status);
                handles
                    .requests
                    .push((method.to_owned(), status, requests.clone()));
                requests
            }
        };
        requests.increment(1);
        handles.seconds.record(took);
    }
}

/// Counts one finished gRPC call.
pub fn grpc_request(method: &'static str, code: tonic::Code) {
    /// A counter per (method, code) seen: a few methods, seventeen codes at most.
    static HANDLES: RwLock<Vec<(&str, tonic::Code, Counter)>> = RwLock::new(Vec::new());
    let find = |handles: &[(&str, tonic::Code, Counter)]| {
        handles
            .iter()
            .find(|(m, c, _)| *c == code && *m == method)
            .map(|(.., counter)| counter.clone())
    };
    let known = find(&HANDLES.read().expect("gRPC metric handles lock"));
    let requests = known.unwrap_or_else(|| {
        let mut handles = HANDLES.write().expect("gRPC metric handles lock");
        // Another call may have added it between the two locks.
        find(&handles).unwrap_or_else(|| {
            let requests =
                counter!(GRPC_REQUESTS, "method" => method, "code" => grpc_code_name(code));
            handles.push((method, code, requests.clone()));
            requests
        })
    });
    requests.increment(1);
}

pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Sets the gauges and counters read from the registry and the store, just before a scrape.
pub fn refresh_registry(ready: bool, schemas: usize, served_total: u64, refused_total: u64) {
    metrics::gauge!(REGISTRY_READY).set(if ready { 1.0 } else { 0.0 });
    metrics::gauge!(REGISTRY_SCHEMAS).set(schemas as f64);
    counter!(REGISTRY_COMMITS, "outcome" => "served").absolute(served_total);
    counter!(REGISTRY_COMMITS, "outcome" => "refused").absolute(refused_total);
}

/// Sets one embedded station's dead-letter depth, just before a scrape.
pub fn refresh_dlq_depth(station: &str, depth: u64) {
    metrics::gauge!(DLQ_DEPTH, "station" => station.to_owned()).set(depth as f64);
}

/// Counts one message that failed rule `rule` of station `station`'s schema.
pub fn rule_failed(station: &str, rule: &str, on_failure: &'static str) {
    counter!(RULE_FAILURES, "station" => station.to_owned(), "rule" => rule.to_owned(), "on_failure" => on_failure)
        .increment(1);
}

pub fn schedule_ran(schedule: &str, result: &'static str) {
    counter!(SCHEDULE_RUNS, "schedule" => schedule.to_owned(), "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(totals: &StationTotals, accepted: u64, rejected: u64) {
        totals.accepted.fetch_add(accepted, Ordering::Relaxed);
        totals.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    #[test]
    fn rates_come_from_successive_readings_and_the_live_totals() {
        let totals = StationTotals::default();
        let start = Instant::now();
        assert_eq!(totals.rates(start).history, []);
        assert_eq!(totals.rates(start).accepted_per_second, 0.0);

        totals.sample(start);
        add(&totals, 50, 5);
        totals.sample(start + RATE_INTERVAL);
        add(&totals, 100, 0);
        totals.sample(start + RATE_INTERVAL * 2);
        add(&totals, 20, 10);

        let rates = totals.rates(start + RATE_INTERVAL * 3);
        let history: Vec<(f64, f64)> = rates
            .history
            .iter()
            .map(|p| (p.accepted, p.rejected))
            .collect();
        assert_eq!(history, [(10.0, 1.0), (20.0, 0.0)]);
        // Over the 15 s since the first reading: 170 accepted, 15 rejected.
        assert!((rates.accepted_per_second - 170.0 / 15.0).abs() < 1e-9);
        assert!((rates.rejected_per_second - 1.0).abs() < 1e-9);
        assert_eq!(rates.interval_seconds, 5);
    }

    #[test]
    fn readings_older_than_the_window_leave_the_current_rate_and_the_history_is_bounded() {
        let totals = StationTotals::default();
        let start = Instant::now();
        for i in 0..40u32 {
            totals.sample(start + RATE_INTERVAL * i);
            add(&totals, if i < 20 { 1000 } else { 0 }, 0);
        }
        // The last 100 s carried no traffic; the first 100 s carried a lot.
        let rates = totals.rates(start + RATE_INTERVAL * 40);
        assert_eq!(rates.history.len(), RATE_SAMPLES - 1);
        assert_eq!(rates.accepted_per_second, 0.0);
    }

    #[test]
    fn http_requests_are_counted_per_route_method_and_status_past_the_handle_cap() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let scrape = recorder.handle();
        let handles = HttpHandles::default();
        let took = Duration::from_millis(2);
        metrics::with_local_recorder(&recorder, || {
            handles.record("/v1/stations/{station}/messages", "POST", 201, took);
            handles.record("/v1/stations/{station}/messages", "POST", 201, took);
            handles.record("/v1/stations/{station}/messages", "POST", 422, took);
            for n in 0..MAX_HTTP_HANDLES + 5 {
                handles.record("/healthz", &format!("M{n}"), 200, took);
            }
            handles.record("/healthz", &format!("M{}", MAX_HTTP_HANDLES + 4), 200, took);
        });
        let text = scrape.render();
        let route = r#"route="/v1/stations/{station}/messages""#;
        assert!(text.contains(&format!(
            r#"sluice_http_requests_total{{{route},method="POST",status="201"}} 2"#
        )));
        assert!(text.contains(&format!(
            r#"sluice_http_requests_total{{{route},method="POST",status="422"}} 1"#
        )));
        assert!(text.contains(&format!(
            "sluice_http_request_duration_seconds_count{{{route}}} 3"
        )));
        // Past the cap, requests are still counted; only their handles are not kept.
        let past = MAX_HTTP_HANDLES + 4;
        assert!(text.contains(&format!(
            r#"sluice_http_requests_total{{route="/healthz",method="M{past}",status="200"}} 2"#
        )));
        let kept: usize = handles
            .0
            .read()
            .unwrap()
            .values()
            .map(|r| r.requests.len())
            .sum();
        assert_eq!(kept, MAX_HTTP_HANDLES);
    }
}
