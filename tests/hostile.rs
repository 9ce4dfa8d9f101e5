//! The gateway attacked as a hostile client would: the release build as its own process, on
//! loopback without tokens (so a client needs no right at all), sent what a client controls at
//! its worst. Each attack gets its 4xx naming the limit, the process lives on and still stores a
//! plain message, and what an attack costs is measured: the process's peak resident memory
//! against the bytes sent, and work per input size as the input doubles.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{orders_repo, valid_order, Process, Repo};
use serde_json::{json, Value};

/// Limits small enough that the attacks below reach them quickly.
const CONFIG: &str = r#"
[server]
header_read_timeout = "1s"
idle_timeout = "2s"
max_connections = 64

[limits]
max_idempotency_bytes = 1048576
"#;

const DECIMAL_AVSC: &str = r#"{"type": "record", "name": "Price", "fields": [
  {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}}
]}"#;

/// A recursive JSON Schema with alternatives at each level, as real catalogues hold (a tree).
const TREE_JSON: &str = r##"{"$defs": {"node": {"anyOf": [
  {"type": "object", "properties": {"a": {"$ref": "#/$defs/node"}}},
  {"type": "object", "properties": {"b": {"$ref": "#/$defs/node"}}}
]}}, "$ref": "#/$defs/node"}"##;

/// The orders station, an Avro station with a decimal and a recursive schema, on the embedded
/// store.
fn repo() -> Repo {
    let repo = orders_repo("");
    repo.write("price/v1.avsc", DECIMAL_AVSC);
    repo.write("tree/v1.json", TREE_JSON);
    repo.write(
        "stations.toml",
        "[[station]]\nname = \"orders\"\nschema = \"orders\"\n\n[[station]]\nname = \"price\"\nschema = \"price\"\n",
    );
    repo
}

/// The release gateway on [`repo`] with [`CONFIG`] and `extra` configuration.
struct Target {
    process: Process,
    _repo: Repo,
    _data: tempfile::TempDir,
    client: reqwest::Client,
}

impl Target {
    fn start(extra: &str) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// [`Target::start`] with environment variables, which override [`CONFIG`]'s keys.
    fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Self {
        let repo = repo();
        let data = tempfile::tempdir().unwrap();
        let process =
            Process::serve_release(repo.path(), data.path(), &format!("{CONFIG}\n{extra}"), env);
        Self {
            process,
            _repo: repo,
            _data: data,
            // Its idle connections go before the gateway's server.idle_timeout closes them.
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.base())
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        common::post_to(&self.client, &self.url(path), content_type, body, headers).await
    }

    /// Posts `body` as an NDJSON batch to the orders station.
    async fn batch(&self, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, Value) {
        let path = "/v1/stations/orders/messages:batch";
        self.post(path, "application/x-ndjson", body, headers).await
    }

    /// The process is alive and stores a plain message.
    async fn assert_still_serving(&mut self) {
        assert!(
            self.process.child.try_wait().unwrap().is_none(),
            "the gateway exited"
        );
        let body = serde_json::to_vec(&valid_order("plain")).unwrap();
        let (status, answer) = self
            .post(
                "/v1/stations/orders/messages",
                "application/json",
                body,
                &[],
            )
            .await;
        assert_eq!(status, 201, "a plain produce after the attack: {answer}");
    }

    /// The value of `sluice_limit_hits_total` for `limit`.
    async fn limit_hits(&self, limit: &str) -> u64 {
        let text = common::get_text(&self.client, &self.url("/metrics")).await;
        let needle = format!("sluice_limit_hits_total{{limit=\"{limit}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&needle))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

/// What the kernel says of a process's resident memory (`VmRSS`, or the peak `VmHWM`), in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// How much the process's resident memory rose above what it held before `attack`, at its peak.
async fn peak_growth<F: std::future::Future<Output = T>, T>(pid: u32, attack: F) -> (u64, T) {
    // Resets the peak to what is resident now.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = memory(pid, "VmRSS:");
    let outcome = attack.await;
    (memory(pid, "VmHWM:").saturating_sub(before), outcome)
}

/// Asserts memory held against bytes sent: at most `per_byte` times the bytes plus 16 MiB (the
/// allocator's and the store's own buffers). Prints the figure.
fn assert_proportional(what: &str, grew: u64, sent: usize, per_byte: u64) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{what}: {sent} bytes sent, peak resident memory +{:.1} MiB ({:.1} bytes per byte sent)",
        mib(grew),
        grew as f64 / sent as f64
    );
    assert!(
        grew <= per_byte * sent as u64 + (16 << 20),
        "{what}: +{:.1} MiB for {sent} bytes sent",
        mib(grew)
    );
}

fn ndjson(items: usize, item: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(items * (item.len() + 1));
    for _ in 0..items {
        body.extend_from_slice(item.as_bytes());
        body.push(b'\n');
    }
    body
}

#[tokio::test]
async fn a_batch_of_tiny_items_costs_memory_in_proportion_to_its_bytes() {
    let mut target = Target::start("");
    let pid = target.pid();
    let item = r#"{"value":{"order_id":"t","items":[]}}"#;
    // First batches touch what every later one reuses (worker threads, the allocator's pages,
    // the store's buffers).
    for _ in 0..2 {
        let body = ndjson(10_000, item);
        let (status, _) = target.batch(body, &[("Sluice-Header-T", "warm-up")]).await;
        assert_eq!(status, 200);
    }

    // Request headers that would outweigh the body once applied to each item: 431 at once.
    let heavy = "h".repeat(12 * 1024);
    let body = ndjson(3_000, item);
    let sent = body.len() + heavy.len();
    let (grew, (status, answer)) =
        peak_growth(pid, target.batch(body, &[("Sluice-Header-Big", &heavy)])).await;
    assert_eq!(status, 431, "{answer}");
    assert_eq!(answer["error"], "headers_too_large");
    assert_proportional("3,000 items with a 12 KiB request header", grew, sent, 32);

    // Request headers larger than the server reads: 431 before the body is read.
    let huge = "h".repeat(100 * 1024);
    let (status, answer) = target
        .batch(ndjson(10, item), &[("Sluice-Header-Big", &huge)])
        .await;
    assert_eq!(status, 431, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("server.max_header_bytes"));

    // More items than a batch may hold: refused as the parser meets the first one too many.
    let body = ndjson(200_000, "{}");
    let sent = body.len();
    let (grew, (status, answer)) = peak_growth(pid, target.batch(body, &[])).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "too_many_messages");
    assert_proportional("200,000 items past the 10,000 limit", grew, sent, 8);

    // The worst a batch can be and still be stored: the most items, as small as they come,
    // with request headers as large as the body allows.
    let body = ndjson(10_000, item);
    let header = "t".repeat(body.len() / 10_000 - 8);
    let sent = body.len() + header.len();
    let (grew, (status, answer)) =
        peak_growth(pid, target.batch(body, &[("Sluice-Header-T", &header)])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 10_000);
    assert_proportional(
        "10,000 tiny items stored, each with the request's header",
        grew,
        sent,
        32,
    );
    assert!(target.limit_hits("limits.max_batch_messages").await >= 1);
    target.assert_still_serving().await;
}

/// A datum of `bytes` bytes for the decimal: its length, then a large positive unscaled value.
fn decimal_datum(bytes: usize) -> Vec<u8> {
    let mut datum = Vec::new();
    sluice::formats::confluent::write_zigzag(&mut datum, bytes as i64);
    datum.extend(std::iter::repeat_n(0x7f, bytes));
    datum
}

#[tokio::test]
async fn a_huge_avro_decimal_is_judged_in_time_linear_in_its_size() {
    let mut target = Target::start("");
    let validate =
        |datum: Vec<u8>| target.post("/v1/schemas/price/validate", "avro/binary", datum, &[]);
    // Warm up, then time each size a few times and keep the fastest.
    validate(decimal_datum(1024)).await;
    let mut fastest = Vec::new();
    for kib in [128, 256, 512] {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let (status, answer) = validate(decimal_datum(kib * 1024)).await;
            best = best.min(started.elapsed());
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["valid"], false);
            let reason = answer["violations"][0]["reason"].as_str().unwrap();
            assert!(reason.contains("its precision is 12"), "{reason}");
        }
        println!("a {kib} KiB Avro decimal judged in {best:?}");
        fastest.push(best);
    }
    for pair in fastest.windows(2) {
        // Doubling the input at most about doubles the work (a little slack for the machine).
        assert!(
            pair[1] <= pair[0] * 3 + Duration::from_millis(20),
            "the work grew faster than the input: {fastest:?}"
        );
    }
    target.assert_still_serving().await;
}

#[tokio::test]
async fn idempotency_keys_are_bounded_in_length_and_in_what_they_keep() {
    let mut target = Target::start("");
    let pid = target.pid();
    let order = serde_json::to_vec(&valid_order("k")).unwrap();
    let long = "k".repeat(1_000);
    let (status, answer) = target
        .post(
            "/v1/stations/orders/messages",
            "application/json",
            order.clone(),
            &[("Idempotency-Key", &long)],
        )
        .await;
    assert_eq!(status, 431, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_idempotency_key_bytes"));

    // Many distinct keys at the longest allowed: what is remembered stays within its budget.
    let (grew, sent) = peak_growth(pid, async {
        let mut sent = 0;
        for i in 0..3_000 {
            let key = format!("{i:0>256}");
            let (status, _) = target
                .post(
                    "/v1/stations/orders/messages",
                    "application/json",
                    order.clone(),
                    &[("Idempotency-Key", &key)],
                )
                .await;
            assert_eq!(status, 201);
            sent += order.len() + key.len();
        }
        sent
    })
    .await;
    assert_proportional("3,000 produces with distinct 256-byte keys", grew, sent, 4);
    assert!(
        target.limit_hits("limits.max_idempotency_bytes").await > 0,
        "the oldest keys were forgotten"
    );
    target.assert_still_serving().await;
}

/// Whether the server has closed `stream`: reading what it has sent (an answer, or the start of
/// one) ends or fails at once.
fn closed(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// `inflated` bytes of spaces, compressed in `encoding` (gzip or zstd) as they stream through
/// the encoder.
fn bomb(encoding: &str, inflated: usize) -> Vec<u8> {
    let chunk = vec![b' '; 1 << 20];
    let chunks = inflated / chunk.len();
    match encoding {
        "gzip" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            for _ in 0..chunks {
                encoder.write_all(&chunk).unwrap();
            }
            encoder.finish().unwrap()
        }
        _ => {
            let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            for _ in 0..chunks {
                encoder.write_all(&chunk).unwrap();
            }
            encoder.finish().unwrap()
        }
    }
}

#[tokio::test]
async fn a_compressed_body_inflating_far_past_its_limit_holds_no_more_than_the_limit() {
    let limit = 16usize << 20;
    let mut target = Target::start_with_env("", &[("SLUICE_LIMITS_MAX_BATCH_BYTES", "16777216")]);
    let pid = target.pid();
    for encoding in ["gzip", "zstd"] {
        let bomb = bomb(encoding, 1 << 30);
        let sent = bomb.len();
        let (grew, (status, answer)) = peak_growth(
            pid,
            target.post(
                "/v1/stations/orders/messages:batch",
                "application/x-ndjson",
                bomb,
                &[("Content-Encoding", encoding)],
            ),
        )
        .await;
        println!(
            "a {encoding} body of {sent} bytes that inflates to 1 GiB: {status}, peak resident memory +{:.1} MiB ({:.2}x limits.max_batch_bytes)",
            grew as f64 / (1 << 20) as f64,
            grew as f64 / limit as f64
        );
        assert_eq!(status, 413, "{answer}");
        assert!(answer["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_batch_bytes"));
        assert!(
            grew <= 2 * limit as u64,
            "{encoding}: +{grew} bytes for a body limited to {limit}"
        );
    }
    target.assert_still_serving().await;
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_their_number_is_capped() {
    // A header timeout long enough that opening 200 connections on a busy machine ends well
    // within it, so those refused at once are told apart from those timed out.
    let header_timeout = Duration::from_secs(3);
    let mut target = Target::start_with_env("", &[("SLUICE_SERVER_HEADER_READ_TIMEOUT", "3s")]);
    let addr = target.process.addr;
    // The start-up probe's connection is gone before the count begins.
    std::thread::sleep(Duration::from_millis(200));
    // Connections that never finish their headers, past the cap of 64.
    let opened = Instant::now();
    let half_open: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            let _ = stream
                .write_all(b"POST /v1/stations/orders/messages HTTP/1.1\r\nHost: localhost\r\n");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = half_open.iter().filter(|s| closed(s)).count();
    assert!(
        opened.elapsed() < header_timeout,
        "counted within the header timeout"
    );
    println!("{refused} of 200 half-open connections closed at once (server.max_connections = 64)");
    assert_eq!(refused, 200 - 64, "exactly those past the cap");
    std::thread::sleep(
        (header_timeout + Duration::from_millis(500)).saturating_sub(opened.elapsed()),
    );
    let held = half_open.iter().filter(|s| !closed(s)).count();
    println!("{held} of 200 half-open connections still held after server.header_read_timeout");
    assert_eq!(held, 0);
    assert!(target.limit_hits("server.header_read_timeout").await > 0);
    assert!(target.limit_hits("server.max_connections").await > 0);

    // A connection that made a request and went quiet is closed after the idle timeout.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 512];
    assert!(idle.read(&mut answer).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(!closed(&idle), "open within server.idle_timeout");
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(closed(&idle), "closed after server.idle_timeout");
    target.assert_still_serving().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answer_is_cut_off() {
    let mut target = Target::start("");
    let body = ndjson(
        1_000,
        &json!({"value": {"order_id": "x".repeat(8_000), "items": []}}).to_string(),
    );
    let (status, answer) = target.batch(body, &[]).await;
    assert_eq!(status, 200, "{answer}");
    // Eight megabytes of answer that the client never reads.
    let mut stream = TcpStream::connect(target.process.addr).unwrap();
    stream
        .write_all(b"GET /v1/stations/orders/messages?group=slow&max=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(3_500));
    let mut received = 0;
    let mut chunk = vec![0u8; 1 << 16];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        received += n;
    }
    println!("{received} bytes of an 8 MB answer reached a client that stopped reading");
    assert!(received < 8_000_000, "the answer was cut off");
    assert!(target.limit_hits("server.idle_timeout").await > 0);
    target.assert_still_serving().await;
}

#[tokio::test]
async fn headers_no_backend_could_carry_or_past_their_limits_are_refused() {
    let mut target = Target::start("");
    let order = serde_json::to_vec(&valid_order("h")).unwrap();
    let path = "/v1/stations/orders/messages";
    for (name, status) in [
        ("Sluice-Header-Sluice-Schema", 400),
        ("Sluice-Header-Nats-Msg-Id", 400),
        ("Sluice-Header-Content-Type", 400),
    ] {
        let (got, answer) = target
            .post(path, "application/json", order.clone(), &[(name, "x")])
            .await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"], "invalid_header");
    }
    let batch = [
        json!({"value": valid_order("a"), "headers": {"has space": "v"}}),
        json!({"value": valid_order("b"), "headers": {"h": "line\nbreak"}}),
        json!({"value": valid_order("c"), "content_type": "application/json\r\nx: y"}),
        json!({"value": valid_order("d"), "headers": (0..65).map(|i| (format!("h{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"value": valid_order("e"), "key": "k".repeat(20_000)}),
    ];
    let body = batch
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    let (status, answer) = target.batch(body, &[]).await;
    assert_eq!(status, 200, "{answer}");
    let statuses: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 400, 400, 431, 431], "{answer}");
    assert!(target.limit_hits("limits.max_headers").await >= 1);
    target.assert_still_serving().await;
}

#[tokio::test]
async fn without_tokens_pages_of_other_sites_are_refused() {
    let mut target = Target::start("");
    let order = serde_json::to_vec(&valid_order("w")).unwrap();
    let path = "/v1/stations/orders/messages";
    let (status, answer) = target.post(path, "text/plain", order.clone(), &[]).await;
    assert_eq!(status, 415, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("without auth tokens"));
    for (content_type, header, status) in [
        ("application/x-www-form-urlencoded", None, 415),
        ("multipart/form-data; boundary=x", None, 415),
        (
            "application/json",
            Some(("Host", "rebound.example:8080")),
            403,
        ),
        (
            "application/json",
            Some(("Origin", "https://evil.example")),
            403,
        ),
        (
            "application/json",
            Some(("Sec-Fetch-Site", "cross-site")),
            403,
        ),
    ] {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        let (got, answer) = target
            .post(path, content_type, order.clone(), &headers)
            .await;
        assert_eq!(got, status, "{content_type} {header:?}: {answer}");
    }
    // A cross-site GET that would lease messages.
    let response = target
        .client
        .get(target.url("/v1/stations/orders/messages?group=g"))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    target.assert_still_serving().await;
}

#[tokio::test]
async fn a_huge_nack_delay_or_a_schema_of_nested_alternatives_is_answered() {
    let mut target = Target::start("");
    let (status, answer) = target
        .post(
            "/v1/stations/orders/nack",
            "application/json",
            json!({"group": "g", "offsets": [0], "delay_ms": u64::MAX})
                .to_string()
                .into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_nack_delay"));

    // Alternatives nested forty deep, each level a $ref to the next, compared with the stored
    // recursive tree: a few kilobytes whose comparison would take 4^40 steps without a budget.
    let mut defs = serde_json::Map::new();
    defs.insert("l0".into(), json!({"type": "string"}));
    for level in 1..=40 {
        let below = json!({"$ref": format!("#/$defs/l{}", level - 1)});
        defs.insert(
            format!("l{level}"),
            json!({"anyOf": [{"type": "object", "properties": {"a": below}}, {"type": "object", "properties": {"b": below}}]}),
        );
    }
    let nested = json!({"$defs": defs, "$ref": "#/$defs/l40"});
    let request = json!({"schemaType": "JSON", "schema": nested.to_string()});
    let started = Instant::now();
    let (status, answer) = target
        .post(
            "/compatibility/subjects/tree/versions/latest",
            "application/vnd.schemaregistry.v1+json",
            request.to_string().into_bytes(),
            &[],
        )
        .await;
    println!(
        "a schema of alternatives nested forty deep compared in {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["is_compatible"], false, "{answer}");
    target.assert_still_serving().await;
}

/// A token written as the user name of the registry's URL (the form many git hosts document)
/// is shown nowhere a read token can look, nor in the log or `sluice config`.
#[tokio::test]
async fn a_token_in_the_registry_url_is_shown_nowhere() {
    let data = tempfile::tempdir().unwrap();
    let token = "ghp_hostileTestToken1234567890";
    let url = format!("https://{token}@127.0.0.1:9/acme/schemas.git");
    let config = "[registry]\npoll_interval = \"1s\"\n[nats]\nurl = \"nats://nats-user:nats-pw-9@127.0.0.1:9\"\n";
    let process = Process::serve_release(std::path::Path::new(&url), data.path(), config, &[]);
    let status = process
        .readiness(503, |body| body.to_string().contains("127.0.0.1:9"))
        .await;
    assert!(
        status
            .to_string()
            .contains("https://***@127.0.0.1:9/acme/schemas.git"),
        "{status}"
    );
    for path in ["/subjects", "/schemas/types", "/v1/registry/status"] {
        let (_, body) = process.get(path).await;
        assert!(!body.to_string().contains(token), "{path}: {body}");
    }
    process.assert_secrets_kept(&[token, "nats-pw-9"]).await;
}

/// An alert webhook that cannot be reached is logged without its URL, whose path is often its
/// secret.
#[tokio::test]
async fn an_unreachable_alert_webhook_is_logged_without_its_url() {
    let repo = orders_repo("alert = { rejection_rate = 0.5, min_messages = 4, window = \"1m\" }");
    let data = tempfile::tempdir().unwrap();
    let config = "[alerts]\nwebhook_url = \"http://127.0.0.1:9/services/T0/B0/hook-secret-9\"\n\
                  check_interval = \"100ms\"\nmin_interval = \"1h\"\n";
    let process = Process::serve_release(repo.path(), data.path(), config, &[]);
    let client = reqwest::Client::new();
    for i in 0..6 {
        let invalid = json!({"order_id": format!("bad-{i}"), "items": [{"qty": 0}]});
        let url = format!("{}/v1/stations/orders/messages", process.base());
        let response = client.post(url).json(&invalid).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 422);
    }
    common::eventually(Duration::from_secs(20), || async {
        let log = std::fs::read_to_string(&process.log).unwrap();
        log.contains("the alert webhook could not be reached")
            .then_some(())
    })
    .await;
    process.assert_secrets_kept(&["hook-secret-9"]).await;
}
