//! `sluice produce` and `sluice consume` (part of the `sluice` binary, not the library): reading
//! input lines into batches with a progress bar and a summary, and printing consumed messages as
//! JSON lines. The HTTP conversation itself is [`sluice::client`].

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use sluice::client::{envelope_line, GatewayClient, ItemResult, ProduceOptions};

/// Rejected lines printed in full before the rest are only counted.
const MAX_REJECTIONS_SHOWN: usize = 20;

/// Where the gateway is and how to talk to it.
#[derive(Args)]
pub struct GatewayArgs {
    /// The gateway's base URL (`https://...` when it serves TLS).
    #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Bearer token, for a gateway with `[[auth.tokens]]`.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of CA certificates to trust besides the system's, for a gateway whose TLS
    /// certificate a private CA signed (or that signed itself).
    #[arg(long, env = "SLUICE_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

impl GatewayArgs {
    fn client(&self) -> anyhow::Result<GatewayClient> {
        let client = GatewayClient::new(&self.url).with_token(self.token.clone());
        match &self.ca_cert {
            None => Ok(client),
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
                Ok(client
                    .trusting(&pem)
                    .with_context(|| format!("--ca-cert {}", path.display()))?)
            }
        }
    }
}

#[derive(Args)]
pub struct ProduceArgs {
    /// The station to send to.
    station: String,
    /// A file of messages, one per line; `-` or nothing reads standard input.
    file: Option<PathBuf>,
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Send the whole input as one message (binary payloads: Protobuf, Avro) instead of a line each.
    #[arg(long)]
    whole: bool,
    /// With --whole: the message's Content-Type (default: JSON if it parses as JSON, else bytes).
    #[arg(long, requires = "whole")]
    content_type: Option<String>,
    /// Messages per batch request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// The schema version to be judged by (Sluice-Schema-Version).
    #[arg(long)]
    schema_version: Option<u32>,
    /// Do not deliver before this delay (`30s`) or RFC 3339 time (Sluice-Deliver-After).
    #[arg(long)]
    deliver_after: Option<String>,
}

#[derive(Args)]
pub struct ConsumeArgs {
    /// The station to read.
    station: String,
    /// The consumer group; consumers of one group share the messages.
    #[arg(long)]
    group: String,
    /// Acknowledge each message once it is printed (otherwise it comes back after the station's
    /// ack_timeout).
    #[arg(long)]
    ack: bool,
    /// Stop after this many messages.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop when no message arrives for this long (`5s`); without it, wait for messages forever.
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    #[command(flatten)]
    gateway: GatewayArgs,
}

pub fn produce(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(produce_async(args))
}

pub fn consume(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(consume_async(args))
}

/// The input and, for a file, its size (for the progress bar).
fn open_input(file: Option<&PathBuf>) -> anyhow::Result<(Box<dyn Read>, Option<u64>, String)> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            let opened = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let size = opened.metadata().ok().map(|m| m.len());
            Ok((Box::new(opened), size, path.display().to_string()))
        }
        _ => Ok((
            Box::new(std::io::stdin()),
            None,
            "standard input".to_owned(),
        )),
    }
}

async fn produce_async(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let client = args.gateway.client()?;
    let options = ProduceOptions {
        schema_version: args.schema_version,
        deliver_after: args.deliver_after.clone(),
    };
    let (input, size, name) = open_input(args.file.as_ref())?;
    if args.whole {
        return produce_whole(&client, &args, &options, input, &name).await;
    }
    let progress = progress_bar(size);
    let started = Instant::now();
    let mut batcher = Batcher {
        client: &client,
        station: &args.station,
        options: &options,
        body: Vec::with_capacity(64 * 1024),
        lines: Vec::new(),
        summary: Summary::default(),
    };
    let reader = BufReader::with_capacity(1 << 20, input);
    let mut bytes_read = 0u64;
    for (index, line) in reader.split(b'\n').enumerate() {
        let mut line = line.with_context(|| format!("cannot read {name}"))?;
        bytes_read += line.len() as u64 + 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        envelope_line(&line, &mut batcher.body);
        batcher.lines.push(index + 1);
        if batcher.lines.len() == args.batch_size as usize {
            batcher.send().await?;
            let summary = &batcher.summary;
            progress.set_position(size.map_or(summary.sent(), |_| bytes_read));
            progress.set_message(format!(
                "{} accepted, {} rejected",
                summary.accepted, summary.rejected
            ));
        }
    }
    batcher.send().await?;
    progress.finish_and_clear();
    Ok(batcher.summary.report(&args.station, started.elapsed()))
}

/// `--whole`: the input as one message.
async fn produce_whole(
    client: &GatewayClient,
    args: &ProduceArgs,
    options: &ProduceOptions,
    mut input: Box<dyn Read>,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let mut payload = Vec::new();
    input
        .read_to_end(&mut payload)
        .with_context(|| format!("cannot read {name}"))?;
    let content_type = args.content_type.clone().unwrap_or_else(|| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_ok() {
            "application/json".to_owned()
        } else {
            "application/octet-stream".to_owned()
        }
    });
    match client
        .produce_one(&args.station, Bytes::from(payload), &content_type, options)
        .await
    {
        Ok(offset) => {
            eprintln!("accepted 1 message at offset {offset} of {}", args.station);
            Ok(ExitCode::SUCCESS)
        }
        Err(sluice::client::ClientError::Refused {
            status: 422,
            message,
            ..
        }) => {
            eprintln!("rejected: {message}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
struct Summary {
    accepted: u64,
    rejected: u64,
}

impl Summary {
    fn sent(&self) -> u64 {
        self.accepted + self.rejected
    }

    /// Prints the totals; the exit code says whether any line was rejected.
    fn report(&self, station: &str, elapsed: Duration) -> ExitCode {
        let elapsed = elapsed.as_secs_f64();
        eprintln!(
            "{station}: {} accepted, {} rejected, in {elapsed:.1}s ({:.0} messages/s)",
            self.accepted,
            self.rejected,
            self.sent() as f64 / elapsed.max(1e-9)
        );
        if self.rejected > MAX_REJECTIONS_SHOWN as u64 {
            eprintln!(
                "(the first {MAX_REJECTIONS_SHOWN} rejected lines are shown above; the dead-letter queue has them all)"
            );
        }
        if self.rejected == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Lines gathered into one batch request, and what the requests sent so far were answered.
struct Batcher<'a> {
    client: &'a GatewayClient,
    station: &'a str,
    options: &'a ProduceOptions,
    /// The batch's NDJSON envelope.
    body: Vec<u8>,
    /// The input line number of each message in `body`.
    lines: Vec<usize>,
    summary: Summary,
}

fn progress_bar(size: Option<u64>) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = match size {
        Some(size) => ProgressBar::with_draw_target(Some(size), target).with_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            )
            .expect("a valid template"),
        ),
        None => ProgressBar::with_draw_target(None, target).with_style(
            ProgressStyle::with_template("{spinner} {pos} messages {per_sec} {msg}")
                .expect("a valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl Batcher<'_> {
    /// Sends the pending batch, if any, and reports its rejected lines.
    async fn send(&mut self) -> anyhow::Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let body = Bytes::from(std::mem::take(&mut self.body));
        let results = self
            .client
            .produce_batch(self.station, body, self.options)
            .await?;
        anyhow::ensure!(
            results.len() == self.lines.len(),
            "the gateway answered {} results for {} messages",
            results.len(),
            self.lines.len()
        );
        let summary = &mut self.summary;
        for (result, line) in results.iter().zip(&self.lines) {
            if result.status == 201 {
                summary.accepted += 1;
            } else {
                summary.rejected += 1;
                if summary.rejected <= MAX_REJECTIONS_SHOWN as u64 {
                    eprintln!("line {line}: {}", describe_rejection(result));
                }
            }
        }
        self.lines.clear();
        Ok(())
    }
}

fn describe_rejection(result: &ItemResult) -> String {
    let code = result.error.as_deref().unwrap_or("error");
    if result.violations.is_empty() {
        return format!("{code}: {}", result.message.as_deref().unwrap_or(""));
    }
    let violations: Vec<String> = result
        .violations
        .iter()
        .map(|v| {
            if v.path.is_empty() {
                v.reason.clone()
            } else {
                format!("{}: {}", v.path, v.reason)
            }
        })
        .collect();
    format!("{code}: {}", violations.join("; "))
}

async fn consume_async(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let client = args.gateway.client()?;
    let mut printed = 0u64;
    let mut idle_since = Instant::now();
    let stdout = std::io::stdout();
    loop {
        let remaining = args
            .max_messages
            .map_or(100, |max| max.saturating_sub(printed).min(100));
        if remaining == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        let wait = match args.idle_timeout {
            Some(idle) => idle
                .saturating_sub(idle_since.elapsed())
                .min(Duration::from_secs(10)),
            None => Duration::from_secs(10),
        };
        let messages = client
            .consume(&args.station, &args.group, remaining as usize, wait)
            .await?;
        if messages.is_empty() {
            if args
                .idle_timeout
                .is_some_and(|idle| idle_since.elapsed() >= idle)
            {
                return Ok(ExitCode::SUCCESS);
            }
            continue;
        }
        idle_since = Instant::now();
        {
            let mut out = stdout.lock();
            for message in &messages {
                writeln!(out, "{}", message.json.get())
                    .context("cannot write to standard output")?;
            }
            out.flush().context("cannot write to standard output")?;
        }
        printed += messages.len() as u64;
        if args.ack {
            let mut by_partition: std::collections::BTreeMap<Option<u32>, Vec<u64>> =
                Default::default();
            for message in &messages {
                by_partition
                    .entry(message.partition)
                    .or_default()
                    .push(message.offset);
            }
            for (partition, offsets) in by_partition {
                client
                    .ack(&args.station, &args.group, partition, &offsets)
                    .await?;
            }
        }
    }
}
