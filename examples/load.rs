//! End-to-end load generator: drives a gateway over HTTP or gRPC with ~200-byte JSON orders — one
//! message per request, or batches — from many connections at once, and reports messages per
//! second and request latency (p50, p99).
//!
//! One scenario against a running gateway:
//!
//! ```sh
//! cargo run --release --example load -- --station orders --protocol http --batch 1 --connections 64
//! ```
//!
//! The whole matrix (`scripts/load` does this): `--matrix --sluice target/release/sluice` starts
//! the gateway as its own process on a temp schema repository (`benches/fixtures/order-schema.json`)
//! with `fsync = "always"`, a validated station `orders`, the same schema with three data-contract
//! rules on station `ruled`, and a schema-less station `raw`, runs single and batch produce over
//! HTTP and gRPC against each, and prints a Markdown table where each validated row is compared
//! with its schema-less twin (and the rules row with the validated one). Each scenario runs as
//! raw, validated, rules, rules, validated, raw for half the duration each (with its own
//! warm-up), so drift of the machine weighs on every row alike.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
use sluice::ingress::grpc::proto::{produce_result, ProduceRequest};

#[path = "../benches/common/mod.rs"]
mod common;

use common::{ndjson, order, ORDER_RULES, ORDER_SCHEMA};

/// Distinct orders cycled through by every connection.
const POOL: usize = 4096;

#[derive(Parser, Debug, Clone)]
#[command(about = "Drives a Sluice gateway with JSON orders and reports msg/s, p50 and p99")]
struct Args {
    /// The gateway's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The gateway's gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    grpc: String,
    /// The station to produce to.
    #[arg(long, default_value = "orders")]
    station: String,
    #[arg(long, value_enum, default_value = "http")]
    protocol: Protocol,
    /// Messages per request: 1 is single-message produce; more is `messages:batch` over HTTP or
    /// one `ProduceStream` call carrying that many over gRPC.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Concurrent connections, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before measuring starts.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Run the whole matrix against a gateway started from this binary (see the module docs).
    #[arg(long)]
    matrix: bool,
    /// The `sluice` binary for `--matrix`.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// For `--matrix`: this many more schemas (each with two versions and a station of its own),
    /// so the idle memory figure is for a registry of that size.
    #[arg(long, default_value_t = 1000)]
    extra_schemas: usize,
    /// While the scenario runs, also send HTTP batches of this many messages to the same station
    /// (0: none); their answers are not counted. Shows what big batches do to other requests.
    #[arg(long, default_value_t = 0)]
    alongside_batch: usize,
    /// Connections sending the `--alongside-batch` batches.
    #[arg(long, default_value_t = 2)]
    alongside_connections: usize,
    /// The `Content-Encoding` of HTTP request bodies, compressed before the clock starts (at the
    /// codecs' default levels, as producers' libraries send them).
    #[arg(long, value_enum, default_value = "identity")]
    encoding: Encoding,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Zstd => Some("zstd"),
        }
    }

    fn encode(self, body: Bytes) -> Bytes {
        use std::io::Write as _;
        match self {
            Encoding::Identity => body,
            Encoding::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(&body).expect("gzip in memory");
                Bytes::from(encoder.finish().expect("gzip in memory"))
            }
            Encoding::Zstd => Bytes::from(zstd::encode_all(&body[..], 3).expect("zstd in memory")),
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Grpc,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Http => "HTTP",
            Protocol::Grpc => "gRPC",
        })
    }
}

/// What one scenario measured.
#[derive(Debug)]
struct Outcome {
    messages: u64,
    errors: u64,
    seconds: f64,
    latency: Histogram<u64>,
    /// Average bytes of request body per message sent, for HTTP.
    wire_per_message: Option<f64>,
}

impl Outcome {
    /// Adds `other`'s messages, time and latencies to these.
    fn merge(&mut self, other: &Outcome) {
        self.messages += other.messages;
        self.errors += other.errors;
        self.seconds += other.seconds;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
    }

    fn per_second(&self) -> f64 {
        self.messages as f64 / self.seconds
    }

    fn millis(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn line(&self, args: &Args) -> String {
        let mut line = format!(
            "{} batch={} connections={} station={}: {:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms per request, {} errors, {:.1} s",
            args.protocol,
            args.batch,
            args.connections,
            args.station,
            self.per_second(),
            self.millis(0.5),
            self.millis(0.99),
            self.errors,
            self.seconds
        );
        if let Some(per_message) = self.wire_per_message {
            line += &format!(
                ", encoding={:?}: {per_message:.1} bytes per message on the wire",
                args.encoding
            );
        }
        line
    }
}

/// Requests prepared before the clock starts, so the generator spends its time sending.
#[derive(Clone)]
enum Prepared {
    /// Single JSON bodies, or NDJSON batch bodies.
    Http(Arc<Vec<Bytes>>),
    /// gRPC requests, grouped per call.
    Grpc(Arc<Vec<Vec<ProduceRequest>>>),
}

fn prepare(args: &Args) -> Prepared {
    let orders: Vec<Bytes> = (0..POOL).map(|i| Bytes::from(order(i))).collect();
    let calls = (POOL / args.batch).max(1);
    let batch = args.batch;
    let orders_ref = &orders;
    let call = move |c: usize| (0..batch).map(move |m| &orders_ref[(c * batch + m) % POOL]);
    let encoding = args.encoding;
    match args.protocol {
        Protocol::Http if args.batch == 1 => Prepared::Http(Arc::new(
            orders.iter().map(|o| encoding.encode(o.clone())).collect(),
        )),
        Protocol::Http => Prepared::Http(Arc::new(
            (0..calls)
                .map(|c| encoding.encode(ndjson(&call(c).cloned().collect::<Vec<_>>())))
                .collect(),
        )),
        Protocol::Grpc => Prepared::Grpc(Arc::new(
            (0..calls)
                .map(|c| {
                    call(c)
                        .map(|payload| ProduceRequest {
                            station: args.station.clone(),
                            payload: payload.clone(),
                            content_type: "application/json".into(),
                            ..ProduceRequest::default()
                        })
                        .collect()
                })
                .collect(),
        )),
    }
}

/// One connection's loop: send, wait for the answer, record, until `until`. Requests that start
/// before `measure_from` warm up and are not counted.
async fn connection(
    args: Arc<Args>,
    http: reqwest::Client,
    prepared: Prepared,
    first: usize,
    measure_from: Instant,
    until: Instant,
) -> Outcome {
    let mut outcome = Outcome {
        messages: 0,
        errors: 0,
        seconds: 0.0,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        wire_per_message: None,
    };
    let url = if args.batch == 1 {
        format!("{}/v1/stations/{}/messages", args.url, args.station)
    } else {
        format!("{}/v1/stations/{}/messages:batch", args.url, args.station)
    };
    let mut grpc = match args.protocol {
        Protocol::Grpc => Some(connect_grpc(&args.grpc).await),
        Protocol::Http => None,
    };
    let mut i = first;
    loop {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let stored = match (&prepared, grpc.as_mut()) {
            (Prepared::Http(bodies), _) => {
                let body = bodies[i % bodies.len()].clone();
                send_http(&http, &url, body, &args).await
            }
            (Prepared::Grpc(calls), Some(client)) => {
                let call = &calls[i % calls.len()];
                send_grpc(client, call).await
            }
            (Prepared::Grpc(_), None) => unreachable!("gRPC requests need a gRPC client"),
        };
        i += 1;
        if started < measure_from {
            continue;
        }
        let took = started.elapsed();
        match stored {
            Some(stored) if stored == args.batch as u64 => {
                outcome.messages += stored;
                outcome.latency.saturating_record(took.as_micros() as u64);
            }
            Some(stored) => {
                outcome.messages += stored;
                outcome.errors += args.batch as u64 - stored;
            }
            None => outcome.errors += args.batch as u64,
        }
    }
    outcome
}

async fn connect_grpc(url: &str) -> GatewayClient<Http2> {
    let origin: tonic::codegen::http::Uri = url.parse().expect("a gRPC URL");
    let authority = origin.authority().expect("a gRPC URL with a host").as_str();
    for _ in 0..200 {
        if let Ok(tcp) = tokio::net::TcpStream::connect(authority).await {
            tcp.set_nodelay(true).expect("TCP_NODELAY");
            let (sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tcp),
            )
            .await
            .expect("an HTTP/2 handshake with the gRPC API");
            tokio::spawn(connection);
            return GatewayClient::with_origin(Http2 { sender }, origin);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gRPC API at {url} never accepted a connection");
}

/// One HTTP/2 connection as tonic's transport: each call is a stream on it, sent straight from the
/// caller's task. tonic's `Channel` hands every call to a buffer task first: with it the generator
/// spent about a tenth more CPU per unary call (64 connections, same gateway, runs alternated).
#[derive(Clone)]
struct Http2 {
    sender: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
}

impl tower_service::Service<tonic::codegen::http::Request<tonic::body::Body>> for Http2 {
    type Response = tonic::codegen::http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.sender.send_request(request))
    }
}

/// The part of a batch answer the generator reads.
#[derive(serde::Deserialize)]
struct BatchCounts {
    accepted: u64,
}

/// Sends one request; the number of messages stored, or None when the request failed.
async fn send_http(client: &reqwest::Client, url: &str, body: Bytes, args: &Args) -> Option<u64> {
    let batch = args.batch;
    let content_type = if batch == 1 {
        "application/json"
    } else {
        "application/x-ndjson"
    };
    let mut request = client.post(url).header("content-type", content_type);
    if let Some(encoding) = args.encoding.header() {
        request = request.header("content-encoding", encoding);
    }
    let answer = request.body(body).send().await.ok()?;
    let status = answer.status().as_u16();
    if batch == 1 {
        return (status == 201).then_some(1);
    }
    if status != 200 {
        return None;
    }
    let bytes = answer.bytes().await.ok()?;
    let counts: BatchCounts = serde_json::from_slice(&bytes).ok()?;
    Some(counts.accepted)
}

async fn send_grpc(client: &mut GatewayClient<Http2>, call: &[ProduceRequest]) -> Option<u64> {
    if let [only] = call {
        return client.produce(only.clone()).await.ok().map(|_| 1);
    }
    let requests = tokio_stream::iter(call.to_vec());
    let mut results = client.produce_stream(requests).await.ok()?.into_inner();
    let mut stored = 0;
    while let Some(result) = results.message().await.ok()? {
        if matches!(result.outcome, Some(produce_result::Outcome::Accepted(_))) {
            stored += 1;
        }
    }
    Some(stored)
}

/// Runs one scenario against the gateway `args` points at.
async fn run(args: Args) -> Outcome {
    let prepared = prepare(&args);
    // One client for every HTTP connection, made before the clock starts: each client loads the
    // system's root certificates, which for 64 clients took seconds of CPU from the gateway under
    // test. Its pool keeps one connection per concurrent request.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .expect("HTTP client");
    let args = Arc::new(args);
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let until = measure_from + args.duration;
    let connections: Vec<_> = (0..args.connections)
        .map(|c| {
            tokio::spawn(connection(
                args.clone(),
                http.clone(),
                prepared.clone(),
                c * 7919,
                measure_from,
                until,
            ))
        })
        .collect();
    let alongside = alongside_batches(&args, &http, start, until);
    let mut total = Outcome {
        messages: 0,
        errors: 0,
        seconds: 0.0,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        wire_per_message: None,
    };
    for connection in connections {
        let outcome = connection.await.expect("a connection task panicked");
        total.messages += outcome.messages;
        total.errors += outcome.errors;
        total.latency.add(&outcome.latency).expect("same bounds");
    }
    // The last requests may finish after `until`; count the time they took.
    total.seconds = measure_from.elapsed().as_secs_f64();
    if let Prepared::Http(bodies) = &prepared {
        let bytes: usize = bodies.iter().map(Bytes::len).sum();
        total.wire_per_message = Some(bytes as f64 / (bodies.len() * args.batch) as f64);
    }
    for batches in alongside {
        batches.await.expect("a batch connection panicked");
    }
    total
}

/// The connections that send `--alongside-batch` batches over HTTP from `start` until `until`.
fn alongside_batches(
    args: &Args,
    http: &reqwest::Client,
    start: Instant,
    until: Instant,
) -> Vec<tokio::task::JoinHandle<Outcome>> {
    if args.alongside_batch == 0 {
        return Vec::new();
    }
    let batches = Args {
        protocol: Protocol::Http,
        batch: args.alongside_batch,
        alongside_batch: 0,
        ..args.clone()
    };
    let prepared = prepare(&batches);
    let batches = Arc::new(batches);
    (0..args.alongside_connections)
        .map(|c| {
            tokio::spawn(connection(
                batches.clone(),
                http.clone(),
                prepared.clone(),
                c * 104_729,
                start,
                until,
            ))
        })
        .collect()
}

/// A gateway process on a temp schema repository and data dir, stopped when dropped.
struct Gateway {
    child: Child,
    http: String,
    grpc: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(sluice: &Path, extra_schemas: usize, runtime: &tokio::runtime::Runtime) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("schemas");
        std::fs::create_dir_all(repo.join("orders")).unwrap();
        std::fs::write(repo.join("orders/v1.json"), ORDER_SCHEMA).unwrap();
        // The same schema with three typical data-contract rules.
        std::fs::create_dir_all(repo.join("ruled-orders")).unwrap();
        std::fs::write(repo.join("ruled-orders/v1.json"), ORDER_SCHEMA).unwrap();
        std::fs::write(repo.join("ruled-orders/v1.rules.toml"), ORDER_RULES).unwrap();
        let mut stations = String::from(
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\n\n[[station]]\nname = \"raw\"\n\n\
             [[station]]\nname = \"ruled\"\nschema = \"ruled-orders\"\n",
        );
        for n in 0..extra_schemas {
            let name = format!("extra-{n:04}");
            std::fs::create_dir_all(repo.join(&name)).unwrap();
            std::fs::write(repo.join(&name).join("v1.json"), ORDER_SCHEMA).unwrap();
            // v2: a backward-compatible change (a longer note allowed).
            let v2 = ORDER_SCHEMA.replacen(r#""maxLength": 200"#, r#""maxLength": 400"#, 1);
            assert_ne!(
                v2, ORDER_SCHEMA,
                "the order schema has a note of at most 200 characters"
            );
            std::fs::write(repo.join(&name).join("v2.json"), v2).unwrap();
            stations.push_str(&format!(
                "\n[[station]]\nname = \"{name}\"\nschema = \"{name}\"\n"
            ));
        }
        // A recursive Avro schema, for refused datums that nest deep.
        std::fs::create_dir_all(repo.join("list")).unwrap();
        std::fs::write(repo.join("list/v1.avsc"), LIST_AVSC).unwrap();
        stations.push_str("\n[[station]]\nname = \"list\"\nschema = \"list\"\n");
        std::fs::write(repo.join("stations.toml"), stations).unwrap();
        let (http, grpc) = (free_port(), free_port());
        let config = dir.path().join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhttp = \"127.0.0.1:{http}\"\ngrpc = \"127.0.0.1:{grpc}\"\n\n\
                 [registry]\nsource = \"{}\"\nwatch = false\n\n\
                 [storage]\ndir = \"{}\"\nfsync = \"always\"\n",
                repo.display(),
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let child = Command::new(sluice)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", sluice.display()));
        let gateway = Self {
            child,
            http: format!("http://127.0.0.1:{http}"),
            grpc: format!("http://127.0.0.1:{grpc}"),
            _dir: dir,
        };
        runtime.block_on(gateway.wait_ready());
        gateway
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/readyz", self.http);
        while Instant::now() < deadline {
            if let Ok(answer) = reqwest::get(&url).await {
                if answer.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway was not ready within 30 s");
    }

    /// CPU time the gateway process has used so far (user and system), from /proc.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the gateway's /proc/PID/stat");
        // Fields after the command name, which is in parentheses: utime and stime are the 12th
        // and 13th, in clock ticks of 1/100 s.
        let after = &stat[stat.rfind(')').expect("a command name") + 2..];
        let fields: Vec<u64> = after
            .split(' ')
            .skip(11)
            .take(2)
            .map(|f| f.parse().expect("a number of ticks"))
            .collect();
        Duration::from_millis((fields[0] + fields[1]) * 10)
    }

    /// Resident memory of the gateway process, from /proc.
    fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A recursive Avro record: a linked list of nodes.
const LIST_AVSC: &str =
    r#"{"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}"#;

/// Requests of one kind sent one after another for `duration`: how many, their p50 and p99, and
/// the gateway's CPU per request.
fn sequential(
    gateway: &Gateway,
    runtime: &tokio::runtime::Runtime,
    duration: Duration,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    check: impl Fn(u16, &[u8]),
) -> (Outcome, Duration) {
    let client = reqwest::Client::new();
    let mut latency = Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let send = |client: &reqwest::Client| {
        let started = Instant::now();
        let answer = runtime.block_on(async {
            let response = request(client).send().await.expect("the gateway answers");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("a body"))
        });
        check(answer.0, &answer.1);
        started.elapsed()
    };
    send(&client); // warm-up
    let cpu_before = gateway.cpu();
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        latency.saturating_record(send(&client).as_micros() as u64);
        count += 1;
    }
    let cpu = gateway.cpu().saturating_sub(cpu_before) / count.max(1) as u32;
    let outcome = Outcome {
        messages: count,
        errors: 0,
        seconds: started.elapsed().as_secs_f64(),
        latency,
        wire_per_message: None,
    };
    (outcome, cpu)
}

/// The cost of requests that make the gateway work hard for one answer: a Confluent
/// compatibility check against a repository of a thousand schemas, and a batch of 10,000 Avro
/// datums refused 51 levels deep.
fn costly_requests(args: &Args, gateway: &Gateway, runtime: &tokio::runtime::Runtime) {
    println!("| request | requests/s | p50 | p99 | gateway CPU per request |");
    println!("|---|---|---|---|---|");
    let candidate = ORDER_SCHEMA.replacen(r#""maxLength": 200"#, r#""maxLength": 800"#, 1);
    let body = serde_json::json!({ "schema": candidate, "schemaType": "JSON" }).to_string();
    let url = format!(
        "{}/compatibility/subjects/extra-0500/versions/latest",
        gateway.http
    );
    let (outcome, cpu) = sequential(
        gateway,
        runtime,
        args.duration / 2,
        |client| {
            client
                .post(&url)
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.clone())
        },
        |status, body| assert_eq!(status, 200, "{}", String::from_utf8_lossy(body)),
    );
    print_costly(
        &format!(
            "Confluent compatibility check, one of {} schemas",
            args.extra_schemas + 1
        ),
        &outcome,
        cpu,
    );
    let mut datum = vec![0x02u8; 50];
    datum.push(0x04);
    let item = serde_json::json!({
        "value_base64": base64::engine::general_purpose::STANDARD.encode(&datum),
        "content_type": "avro/binary",
    });
    let batch = serde_json::Value::Array(vec![item; 10_000]).to_string();
    let url = format!("{}/v1/stations/list/messages:batch", gateway.http);
    let (outcome, cpu) = sequential(
        gateway,
        runtime,
        args.duration / 2,
        |client| {
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(batch.clone())
        },
        |status, body| {
            assert_eq!(status, 200);
            let answer: serde_json::Value = serde_json::from_slice(body).expect("JSON");
            assert_eq!(answer["rejected"], 10_000, "every datum refused");
        },
    );
    print_costly(
        "batch of 10,000 Avro datums refused 51 levels deep",
        &outcome,
        cpu,
    );
}

fn print_costly(request: &str, outcome: &Outcome, cpu: Duration) {
    println!(
        "| {request} | {:.1} | {:.2} ms | {:.2} ms | {:.2} ms |",
        outcome.per_second(),
        outcome.millis(0.5),
        outcome.millis(0.99),
        cpu.as_secs_f64() * 1000.0
    );
}

/// Every scenario: (protocol, batch size, connections).
const MATRIX: &[(Protocol, usize, usize)] = &[
    (Protocol::Http, 1, 64),
    (Protocol::Grpc, 1, 64),
    (Protocol::Http, 1000, 4),
    (Protocol::Grpc, 1000, 4),
];

fn matrix(args: &Args, runtime: &tokio::runtime::Runtime) {
    let gateway = Gateway::start(&args.sluice, args.extra_schemas, runtime);
    println!(
        "gateway {} (fsync = \"always\"), {} s per station and scenario (two halves, each after {} s of warm-up)",
        args.sluice.display(),
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
    );
    println!(
        "idle RSS with {} schemas ({} versions) and as many stations: {:.0} MiB",
        args.extra_schemas + 1,
        args.extra_schemas * 2 + 1,
        gateway.rss_mib().unwrap_or(f64::NAN)
    );
    // The store's first seconds (journal files, first flushes) are not what a running gateway
    // sees; load it before measuring anything.
    runtime.block_on(run(Args {
        url: gateway.http.clone(),
        station: "raw".to_owned(),
        protocol: Protocol::Http,
        batch: 100,
        connections: 8,
        duration: Duration::ZERO,
        warmup: Duration::from_secs(5),
        ..args.clone()
    }));
    println!();
    println!("| protocol | messages per request | connections | station | msg/s | vs schema-less | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|---|");
    for &(protocol, batch, connections) in MATRIX {
        // Each station runs twice for half the time, in the order raw, orders, ruled, ruled,
        // orders, raw, so that the machine drifting during the row weighs on each station alike.
        let mut outcomes: Vec<(&str, Option<Outcome>)> =
            vec![("raw", None), ("orders", None), ("ruled", None)];
        for index in [0, 1, 2, 2, 1, 0] {
            let station = outcomes[index].0;
            let scenario = Args {
                url: gateway.http.clone(),
                grpc: gateway.grpc.clone(),
                station: station.to_owned(),
                protocol,
                batch,
                connections,
                duration: args.duration / 2,
                ..args.clone()
            };
            let outcome = runtime.block_on(run(scenario.clone()));
            eprintln!("{}", outcome.line(&scenario));
            match &mut outcomes[index].1 {
                Some(earlier) => earlier.merge(&outcome),
                slot => *slot = Some(outcome),
            }
        }
        let raw_rate = outcomes[0].1.as_ref().map_or(f64::NAN, Outcome::per_second);
        let validated_rate = outcomes[1].1.as_ref().map_or(f64::NAN, Outcome::per_second);
        for (station, outcome) in &outcomes {
            let outcome = outcome.as_ref().expect("each station ran");
            let rate = outcome.per_second();
            let name = match *station {
                "raw" => "schema-less".to_owned(),
                "orders" => "validated (JSON Schema)".to_owned(),
                _ => format!(
                    "validated + 3 rules ({:.2} of validated)",
                    rate / validated_rate
                ),
            };
            println!(
                "| {protocol} | {batch} | {connections} | {name} | {:.0} | {:.2} | {:.2} ms | {:.2} ms |{}",
                rate,
                rate / raw_rate,
                outcome.millis(0.5),
                outcome.millis(0.99),
                if outcome.errors > 0 {
                    format!(" {} errors", outcome.errors)
                } else {
                    String::new()
                }
            );
        }
    }
    println!();
    println!("| single messages (HTTP, 8 connections) | alongside | msg/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for alongside_batch in [0, 10_000] {
        let scenario = Args {
            url: gateway.http.clone(),
            station: "orders".to_owned(),
            protocol: Protocol::Http,
            batch: 1,
            connections: 8,
            alongside_batch,
            alongside_connections: 2,
            ..args.clone()
        };
        let outcome = runtime.block_on(run(scenario.clone()));
        eprintln!(
            "{} alongside batches of {alongside_batch}",
            outcome.line(&scenario)
        );
        let alongside = match alongside_batch {
            0 => "nothing".to_owned(),
            n => format!("2 connections sending batches of {n}"),
        };
        println!(
            "| validated (JSON Schema) | {alongside} | {:.0} | {:.2} ms | {:.2} ms |",
            outcome.per_second(),
            outcome.millis(0.5),
            outcome.millis(0.99)
        );
    }
    println!();
    costly_requests(args, &gateway, runtime);
    println!();
    println!(
        "gateway RSS after the run: {:.0} MiB",
        gateway.rss_mib().unwrap_or(f64::NAN)
    );
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args.matrix {
        matrix(&args, &runtime);
    } else {
        let outcome = runtime.block_on(run(args.clone()));
        println!("{}", outcome.line(&args));
    }
}
