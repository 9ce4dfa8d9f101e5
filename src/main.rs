//! The `sluice` command: `serve` runs the gateway, `check` vets a schema repository offline (and,
//! with `--base`, a change to one), `produce` and `consume` talk to a running gateway.

// Functions fit on a screen: at most 80 lines of code (clippy.toml). A unit test that is one
// long table of cases says so where it is allowed more.
#![warn(clippy::too_many_lines)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use sluice::config::Config;
use sluice::registry::load::{self, History};
use sluice::registry::{git, source};

/// mimalloc: the gateway allocates and frees many small buffers per message on several threads,
/// where glibc's malloc spent about a sixth of the CPU under load and kept freed memory resident.
/// With the default `c-allocator` feature it also serves the C libraries' `malloc` (librdkafka).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`): how long freed pages stay
/// resident before they are given back, 1000 ms by default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The purge delay outside registry syncs, read once before the first sync changes it.
static USUAL_PURGE_DELAY: std::sync::OnceLock<std::ffi::c_long> = std::sync::OnceLock::new();

/// During a registry sync, freed pages are given back at once, and all of them once it is over:
/// a sync's scratch memory (a catalogue's worth of parsed schemas) does not stay resident. Outside
/// syncs the delay is mimalloc's, which keeps the message path from giving back and faulting in
/// pages it is about to reuse.
fn give_back_sync_scratch() {
    // SAFETY: plain calls into mimalloc's option table and collector, which any thread may make.
    sluice::registry::scratch::install(sluice::registry::scratch::ScratchHooks {
        before: || unsafe {
            USUAL_PURGE_DELAY.get_or_init(|| libmimalloc_sys::mi_option_get(PURGE_DELAY));
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        },
        after: || unsafe {
            libmimalloc_sys::mi_collect(true);
            let usual = USUAL_PURGE_DELAY.get().copied().unwrap_or(1000);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, usual);
        },
    });
}

/// Default config file, used when `--config` is not given (a missing default file means defaults).
const DEFAULT_CONFIG: &str = "config/sluice.toml";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A schema-enforcing streaming gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines on standard error are written: `text` for people, `json` (one object per
    /// line, with the request's span fields) for log collectors.
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: HTTP API on [server].http, schemas from [registry].source, messages in
    /// [storage].dir. Every key has a default; SLUICE_<SECTION>_<KEY> variables override keys.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Compile every schema and station binding of a schema repository and run every registry
    /// rule on it, listing each problem on one line (file: version: rule: why). Exits non-zero if
    /// there is any. For schema authors' CI.
    Check {
        /// The schema repository (a directory; with --base, inside a git working tree).
        #[arg(default_value = "schemas")]
        dir: PathBuf,
        /// A git revision (branch, tag or commit) the directory's files are a change to, e.g.
        /// `origin/main`: published versions must be unchanged and new versions compatible with
        /// it, as the gateway would require. Without it, every version is judged against the ones
        /// before it.
        #[arg(long, value_name = "REV")]
        base: Option<String>,
    },
    /// Print the configuration `serve` would run with — the file, SLUICE_<SECTION>_<KEY>
    /// variables applied, every default filled in — as TOML. Secrets show as `<hidden>`.
    Config {
        /// Configuration file (TOML).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Send messages to a station of a running gateway: one message per line of FILE (or of
    /// standard input), in batches; JSON lines are sent as JSON, other lines as text. Prints a
    /// summary and each rejected line with its reason; exits 1 if any line was rejected.
    Produce(cli::transfer::ProduceArgs),
    /// Read a station of a running gateway as a member of a consumer group, printing each
    /// message as one JSON line (offset, key, headers, value or value_base64, schema_version,
    /// delivery). With --ack, each message is acknowledged once printed.
    Consume(cli::transfer::ConsumeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(sluice::logs::JsonSpanFields)
            .init(),
    }
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::Check { dir, base } => check(&dir, base.as_deref()),
        Command::Config { config } => print_config(config),
        Command::Produce(args) => cli::transfer::produce(args),
        Command::Consume(args) => cli::transfer::consume(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: PathBuf) -> anyhow::Result<ExitCode> {
    give_back_sync_scratch();
    let required = config_path != std::path::Path::new(DEFAULT_CONFIG);
    let config = Config::load(&config_path, required, std::env::vars())?;
    config.check_bind_addresses()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listeners = sluice::server::Listeners::bind(&config).await?;
        sluice::server::serve(config, listeners, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn print_config(config_path: PathBuf) -> anyhow::Result<ExitCode> {
    let required = config_path != std::path::Path::new(DEFAULT_CONFIG);
    let config = Config::load(&config_path, required, std::env::vars())?;
    print!(
        "{}",
        config.dump().context("cannot print the configuration")?
    );
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

fn check(dir: &std::path::Path, base: Option<&str>) -> anyhow::Result<ExitCode> {
    let files = source::read_directory(dir)?;
    let base_snapshot = match base {
        None => None,
        Some(rev) => {
            let (commit, base_files) = git::files_at_revision(dir, rev)?;
            match load::build(
                Arc::new(base_files),
                commit.clone(),
                &[],
                History::AlreadyServed,
            ) {
                Ok(snapshot) => Some(snapshot),
                Err(problems) => {
                    eprintln!(
                        "note: the base {rev} ({commit}) does not load itself ({} problem(s)); judging every version instead",
                        problems.len()
                    );
                    None
                }
            }
        }
    };
    let history = base_snapshot
        .as_ref()
        .map_or(History::Unknown, History::Since);
    let revision = files.fingerprint();
    match load::build(Arc::new(files), revision, &[], history) {
        Ok(snapshot) => {
            let versions: usize = snapshot.schemas().map(|s| s.versions().len()).sum();
            println!(
                "ok: {} schemas, {versions} versions, {} stations in {}{}",
                snapshot.schemas().count(),
                snapshot.stations().count(),
                dir.display(),
                base.map(|rev| format!(", compatible with {rev}"))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for problem in &problems {
                println!("{problem}");
            }
            eprintln!("{} problem(s) in {}", problems.len(), dir.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
