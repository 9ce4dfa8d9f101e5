//! The gateway's configuration: one serde struct per TOML section, every key with a default, unknown
//! keys refused, and `SLUICE_<SECTION>_<KEY>` environment variables layered on top.
//!
//! This module only reads and checks configuration; it does not act on it. Relative paths are
//! resolved against the directory `sluice` is started from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::backends::embedded::MESSAGE_BYTES_CEILING;
use crate::formats::limits::{MessageLimits, JSON_DEPTH_CEILING, PROTOBUF_DEPTH_CEILING};
use crate::registry::stations::StationConfig;

/// Everything `sluice serve` needs, as read from the config file and the environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub registry: RegistryConfig,
    pub storage: StorageConfig,
    pub kafka: KafkaConfig,
    pub nats: NatsConfig,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub alerts: AlertsConfig,
    /// Stations declared in the config file, in addition to the registry's `stations.toml`.
    pub station: Vec<StationConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API.
    pub http: SocketAddr,
    /// Address of the gRPC API.
    pub grpc: SocketAddr,
    /// PEM certificate chain (leaf first): with `tls_key`, both APIs serve TLS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM/SIGINT, how long in-flight requests and open streams may take to finish before
    /// they are cut (unanswered, so nothing acknowledged is lost) and the process exits.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls_cert: None,
            tls_key: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl ServerConfig {
    /// The certificate and key files when TLS is on.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    fn check(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                Err("server.tls_cert is set but server.tls_key is not; TLS needs both".into())
            }
            (None, Some(_)) => {
                Err("server.tls_key is set but server.tls_cert is not; TLS needs both".into())
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The schema repository: a directory holding schema folders (directly or under `schemas/`)
    /// and optionally `stations.toml`; or a git repository — a URL, or the path of a local
    /// repository — whose `branch` is served commit by commit.
    pub source: PathBuf,
    /// Git sources: the branch to serve.
    pub branch: String,
    /// Git sources: how often the remote is fetched (besides `POST /v1/registry/sync`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The environment variable holding the webhook secret; when it is set and not empty,
    /// `POST /v1/registry/sync` requires a valid `X-Hub-Signature-256` or `X-Gitlab-Token`.
    pub webhook_secret_env: String,
    /// Directory sources: rebuild the snapshot when files under `source` change.
    pub watch: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            source: PathBuf::from("schemas"),
            branch: "main".to_owned(),
            poll_interval: Duration::from_secs(30),
            webhook_secret_env: "SLUICE_WEBHOOK_SECRET".to_owned(),
            watch: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the embedded store.
    pub dir: PathBuf,
    /// When an append is considered durable; see [`FsyncPolicy`].
    pub fsync: FsyncPolicy,
    /// How often retention (max_age / max_bytes) is enforced.
    #[serde(with = "humantime_serde")]
    pub retention_check_interval: Duration,
    /// The most one station log holds in memory before it is flushed to disk. Smaller saves
    /// memory under load but makes more tables per burst, on which the storage engine throttles
    /// writes until compaction catches up.
    pub memtable_size: ByteSize,
    /// The block cache that consumers' reads from disk go through.
    pub cache_size: ByteSize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data"),
            fsync: FsyncPolicy::Always,
            retention_check_interval: Duration::from_secs(30),
            memtable_size: ByteSize::mib(64),
            cache_size: ByteSize::mib(32),
        }
    }
}

impl StorageConfig {
    /// The memory bounds the embedded store is opened with.
    pub fn memory(&self) -> StoreMemory {
        StoreMemory {
            memtable_bytes: self.memtable_size.as_u64(),
            cache_bytes: self.cache_size.as_u64(),
        }
    }

    /// Refuses sizes the storage engine cannot work with.
    fn check(&self) -> Result<(), String> {
        if self.memtable_size < ByteSize::mib(1) {
            return Err(format!(
                "storage.memtable_size is {}, but a station log needs at least 1 MiB to buffer writes",
                self.memtable_size
            ));
        }
        Ok(())
    }
}

/// How much memory the embedded store may hold for writes not yet flushed and for reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMemory {
    /// Each station log's in-memory write buffer; a full one is flushed to disk.
    pub memtable_bytes: u64,
    /// The block cache for reads from disk.
    pub cache_bytes: u64,
}

impl Default for StoreMemory {
    fn default() -> Self {
        StorageConfig::default().memory()
    }
}

/// How the embedded store makes appends durable.
///
/// * `always`: every group commit is fsynced before any producer in it is answered; a 201 means
///   the message is on disk.
/// * `interval:10ms`: producers are answered once the write reached the OS; the journal is fsynced
///   every interval. A power loss can lose up to one interval; a process crash loses nothing.
/// * `never`: writes reach the OS, fsync is left to it. Survives a process crash, not a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    Interval(Duration),
    Never,
}

impl<'de> Deserialize<'de> for FsyncPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => match other.strip_prefix("interval:") {
                Some(every) => humantime::parse_duration(every)
                    .map(Self::Interval)
                    .map_err(|e| format!("bad fsync interval `{every}`: {e}")),
                None => Err(format!(
                    "unknown fsync policy `{other}`: expected \"always\", \"interval:<duration>\" or \"never\""
                )),
            },
        }
    }
}

/// Bearer tokens; none means auth is off.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<crate::ingress::auth::TokenConfig>,
}

/// The Kafka backend, used by stations with `backend = { kafka = "topic" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Create a station's topic and its dead-letter topic when they are missing.
    pub create_topics: bool,
    /// Partitions of topics Sluice creates.
    pub partitions: i32,
    /// Replication factor of topics Sluice creates.
    pub replication_factor: i32,
    /// Dead letters of topic `t` go to topic `t` + this suffix.
    pub dlq_suffix: String,
    /// How long a produce waits for the brokers' acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long the producer holds records to fill a request to the brokers (librdkafka
    /// `linger.ms`); a batch request's records are sent once its last one is handed over (with
    /// those of overlapping batch requests, once the last of them is).
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Further librdkafka producer properties, e.g. `"compression.type" = "zstd"`.
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            create_topics: true,
            partitions: 1,
            replication_factor: 1,
            dlq_suffix: ".dlq".to_owned(),
            request_timeout: Duration::from_secs(10),
            linger: Duration::from_millis(5),
            properties: Default::default(),
        }
    }
}

/// The NATS JetStream backend, used by stations with `backend = { nats = "subject" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// What to do when no JetStream stream holds a station's subject.
    pub streams: StreamPolicy,
    /// Dead letters of subject `s` go to subject `s` + this suffix.
    pub dlq_suffix: String,
    /// How long a publish waits for JetStream's acknowledgement before answering 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            streams: StreamPolicy::Create,
            dlq_suffix: ".dlq".to_owned(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether Sluice creates the JetStream streams its subjects need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamPolicy {
    /// Create a file-backed stream `SLUICE_<SUBJECT>` for a subject no stream holds.
    Create,
    /// Only publish to subjects an existing stream holds; otherwise answer 503 saying so.
    Require,
}

/// Where and how often notifications go (`[alerts]`); what triggers them is per station
/// (`alert` in a station binding) plus refused registry commits.
#[derive(Debug, Clone, Deserialize)]
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

/// Limits applied to every request. Each is a config key under `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest single message body, in bytes (413 above it).
    pub max_message_bytes: usize,
    /// Most messages in one batch request (413 above it).
    pub max_batch_messages: usize,
    /// Largest batch request body, in bytes (413 above it).
    pub max_batch_bytes: usize,
    /// Most messages one consume request may return.
    pub max_consume_messages: usize,
    /// Longest long-poll a consume request may ask for.
    #[serde(with = "humantime_serde")]
    pub max_consume_wait: Duration,
    /// How long a message's `Idempotency-Key` is remembered: a retry within it gets the first
    /// answer and stores nothing new.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// Most bytes one Avro value's length prefix may make the decoder allocate (422 above it).
    pub max_avro_allocation_bytes: usize,
    /// Most messages being stored on one backend at once; past it producers get 503 with
    /// `Retry-After` instead of queueing without bound.
    pub max_in_flight_messages: usize,
    /// Deepest nesting of arrays and objects in a JSON message (422 above it; at most 128).
    pub max_json_depth: usize,
    /// Deepest nesting of messages in a Protobuf message (422 above it; at most 100).
    pub max_protobuf_depth: usize,
    /// Deepest selection nesting in a GraphQL document (422 above it).
    pub max_graphql_depth: usize,
    /// Most lexical tokens in a GraphQL document (422 above it).
    pub max_graphql_tokens: usize,
    /// Longest an HTTP request may take from its headers to its answer, reading the body included
    /// (408 past it); a consume's long-poll wait comes on top. gRPC calls get the same deadline
    /// unless the client sets a shorter one.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Limits {
    /// The bounds formats apply to each message.
    pub fn message_limits(&self) -> MessageLimits {
        MessageLimits {
            json_depth: self.max_json_depth,
            protobuf_depth: self.max_protobuf_depth,
            graphql_depth: self.max_graphql_depth,
            graphql_tokens: self.max_graphql_tokens,
        }
    }

    /// Refuses values the parsers and the store underneath cannot honour.
    fn check(&self) -> Result<(), String> {
        if self.max_message_bytes > MESSAGE_BYTES_CEILING {
            return Err(format!(
                "limits.max_message_bytes is {}, but the store takes messages of at most {MESSAGE_BYTES_CEILING} bytes (1 GiB); use at most that",
                self.max_message_bytes
            ));
        }
        if self.max_json_depth > JSON_DEPTH_CEILING {
            return Err(format!(
                "limits.max_json_depth is {}, but JSON nesting is refused past {JSON_DEPTH_CEILING} anyway; use at most {JSON_DEPTH_CEILING}",
                self.max_json_depth
            ));
        }
        if self.max_protobuf_depth > PROTOBUF_DEPTH_CEILING {
            return Err(format!(
                "limits.max_protobuf_depth is {}, but Protobuf decoding stops at {PROTOBUF_DEPTH_CEILING} levels anyway; use at most {PROTOBUF_DEPTH_CEILING}",
                self.max_protobuf_depth
            ));
        }
        if self.request_timeout.is_zero() {
            return Err("limits.request_timeout must be longer than zero".into());
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        let message = MessageLimits::default();
        Self {
            max_message_bytes: 1024 * 1024,
            max_batch_messages: 10_000,
            max_batch_bytes: 64 * 1024 * 1024,
            max_consume_messages: 1_000,
            max_consume_wait: Duration::from_secs(30),
            idempotency_window: Duration::from_secs(120),
            max_in_flight_messages: 100_000,
            max_avro_allocation_bytes: 16 * 1024 * 1024,
            max_json_depth: message.json_depth,
            max_protobuf_depth: message.protobuf_depth,
            max_graphql_depth: message.graphql_depth,
            max_graphql_tokens: message.graphql_tokens,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A configuration that could not be read, naming where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Environment { var: String, message: String },
    #[error(
        "refusing to listen on {addr}: without auth tokens Sluice only binds loopback addresses (add [[auth.tokens]] to serve other machines)"
    )]
    NonLoopbackWithoutAuth { addr: SocketAddr },
}

/// Sections that `SLUICE_<SECTION>_<KEY>` variables may override.
const ENV_SECTIONS: &[&str] = &[
    "server", "registry", "storage", "kafka", "nats", "limits", "alerts",
];

impl Config {
    /// Reads `path` (a missing file is an error only when `required`), applies environment
    /// overrides from `vars`, and checks the result.
    pub fn load(
        path: &Path,
        required: bool,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(cause) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    cause,
                })
            }
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        // Parse the file on its own first, so errors point at its lines.
        let from_file: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut applied = Vec::new();
        for (var, raw) in vars {
            if let Some((section, key)) = env_override_target(&var) {
                let section_table = table
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let Some(section_table) = section_table.as_table_mut() else {
                    return Err(invalid(format!("`{section}` must be a table")));
                };
                section_table.insert(key, env_value(&raw));
                applied.push(var);
            }
        }
        let config = if applied.is_empty() {
            from_file
        } else {
            Config::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Environment {
                    var: applied.join(", "),
                    message: e.to_string(),
                }
            })?
        };
        config.limits.check().map_err(&invalid)?;
        config.storage.check().map_err(&invalid)?;
        config.server.check().map_err(&invalid)?;
        Ok(config)
    }

    /// Refuses settings that are unsafe together.
    pub fn check_bind_addresses(&self) -> Result<(), ConfigError> {
        for addr in [self.server.http, self.server.grpc] {
            if !addr.ip().is_loopback() && self.auth.tokens.is_empty() {
                return Err(ConfigError::NonLoopbackWithoutAuth { addr });
            }
        }
        Ok(())
    }
}

/// `SLUICE_LIMITS_MAX_MESSAGE_BYTES` → (`limits`, `max_message_bytes`); None for other variables.
fn env_override_target(var: &str) -> Option<(String, String)> {
    let rest = var.strip_prefix("SLUICE_")?.to_ascii_lowercase();
    let (section, key) = rest.split_once('_')?;
    (ENV_SECTIONS.contains(&section) && !key.is_empty())
        .then(|| (section.to_owned(), key.to_owned()))
}

/// Environment values are TOML literals when they parse as one (`1048576`, `true`), else strings.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            &path,
            true,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn empty_config_takes_every_default() {
        let config = load_str("", &[]).unwrap();
        assert_eq!(config.server.http.port(), 8080);
        assert_eq!(config.storage.fsync, FsyncPolicy::Always);
        assert_eq!(config.limits.max_message_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_key_names_the_key_and_the_file() {
        let err = load_str("[server]\nhttpp = \"127.0.0.1:1\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("httpp"), "{err}");
        assert!(err.contains("sluice.toml"), "{err}");
    }

    #[test]
    fn environment_overrides_single_keys_with_typed_values() {
        let config = load_str(
            "[limits]\nmax_message_bytes = 10\n",
            &[
                ("SLUICE_LIMITS_MAX_MESSAGE_BYTES", "2048"),
                ("SLUICE_STORAGE_FSYNC", "interval:10ms"),
                ("SLUICE_WEBHOOK_SECRET", "not-a-section"),
            ],
        )
        .unwrap();
        assert_eq!(config.limits.max_message_bytes, 2048);
        assert_eq!(
            config.storage.fsync,
            FsyncPolicy::Interval(Duration::from_millis(10))
        );
    }

    #[test]
    fn a_message_limit_the_store_cannot_hold_is_refused() {
        let err = load_str("[limits]\nmax_message_bytes = 5000000000\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.max_message_bytes"), "{err}");
        assert!(load_str("[limits]\nmax_message_bytes = 1073741824\n", &[]).is_ok());
    }

    #[test]
    fn bad_environment_value_names_the_variable() {
        let err = load_str("", &[("SLUICE_STORAGE_FSYNC", "sometimes")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLUICE_STORAGE_FSYNC"), "{err}");
        assert!(err.contains("sometimes"), "{err}");
    }

    #[test]
    fn storage_memory_sizes_read_as_human_sizes_and_a_tiny_memtable_is_refused() {
        let config = load_str(
            "[storage]\nmemtable_size = \"4MiB\"\ncache_size = \"8MiB\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            config.storage.memory(),
            StoreMemory {
                memtable_bytes: 4 * 1024 * 1024,
                cache_bytes: 8 * 1024 * 1024
            }
        );
        let err = load_str("[storage]\nmemtable_size = \"64KiB\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.memtable_size"), "{err}");
        assert!(err.contains("at least 1 MiB"), "{err}");
    }

    #[test]
    fn non_loopback_bind_is_refused_without_auth() {
        let config = load_str("[server]\nhttp = \"0.0.0.0:8080\"\n", &[]).unwrap();
        assert!(matches!(
            config.check_bind_addresses(),
            Err(ConfigError::NonLoopbackWithoutAuth { .. })
        ));
    }
}
