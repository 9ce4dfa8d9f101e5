//! The gateway's configuration file, assembled: each TOML section is the config type of the module
//! that uses it (`[kafka]` is the Kafka backend's, `[limits]` the pipeline's, ...), every key has a
//! default, unknown keys are refused, and `SLUICE_<SECTION>_<KEY>` environment variables are
//! layered on top. Only `[server]`, the listeners', is defined here.
//!
//! This module only reads and checks configuration; it does not act on it. Relative paths are
//! resolved against the directory `sluice` is started from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alerts::AlertsConfig;
use crate::backends::embedded::config::StorageConfig;
use crate::backends::kafka::KafkaConfig;
use crate::backends::nats::NatsConfig;
use crate::ingress::auth::{AuthConfig, TokenConfig, TokensFile};
use crate::ingress::connections::ConnectionLimits;
use crate::model::shown_url;
use crate::model::HIDDEN;
use crate::pipeline::Limits;
use crate::registry::config::RegistryConfig;
use crate::registry::stations::StationConfig;

/// Everything `sluice serve` needs, as read from the config file and the environment.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Most connections open at once, HTTP and gRPC together; more are closed as they arrive.
    pub max_connections: usize,
    /// Longest a new connection may take to send its first request's headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest a connection may stay open with no request in progress, and a write may wait for
    /// a client that does not read its answer.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most bytes of request headers (431 above it on HTTP; the HTTP/2 header list size on gRPC).
    pub max_header_bytes: usize,
    /// Whether HTTP answers of 2 KiB and more are compressed (zstd or gzip) for clients whose
    /// `Accept-Encoding` takes it.
    pub compress_responses: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 50051)),
            tls_cert: None,
            tls_key: None,
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            compress_responses: true,
        }
    }
}

impl ServerConfig {
    /// How the front door lets connections in and how long they may stay.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// The address of every front end. Every field is named, so a new one is a decision: whether
    /// it is a listener, which without tokens must be a loopback address.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        let ServerConfig {
            http,
            grpc,
            tls_cert: _,
            tls_key: _,
            shutdown_timeout: _,
            max_connections: _,
            header_read_timeout: _,
            idle_timeout: _,
            max_header_bytes: _,
            compress_responses: _,
        } = self;
        vec![*http, *grpc]
    }

    /// The certificate and key files when TLS is on.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("server.max_connections must be at least 1".into());
        }
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(
                "server.header_read_timeout and server.idle_timeout must be longer than zero"
                    .into(),
            );
        }
        if self.max_header_bytes < 8192 {
            return Err(format!(
                "server.max_header_bytes is {}; HTTP clients need at least 8192",
                self.max_header_bytes
            ));
        }
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

/// The sections `SLUICE_<SECTION>_<KEY>` variables may override: every table of [`Config`].
fn env_sections() -> Vec<String> {
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    defaults
        .into_iter()
        .filter(|(_, value)| value.is_table())
        .map(|(section, _)| section)
        .collect()
}

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
        let sections = env_sections();
        for (var, raw) in vars {
            if let Some((section, key)) = env_override_target(&var, &sections) {
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
        let mut config = config;
        if let Some(file) = config.auth.tokens_file.clone() {
            config.auth.tokens.extend(read_tokens_file(&file)?);
        }
        config.check().map_err(&invalid)?;
        Ok(config)
    }

    /// Refuses values each section cannot work with. Every section is named here, so a new one is
    /// a decision: whether it has values to refuse.
    fn check(&self) -> Result<(), String> {
        let Config {
            server,
            registry: _,
            storage,
            kafka: _,
            nats,
            limits,
            auth: _,
            alerts: _,
            station: _,
        } = self;
        limits.check()?;
        storage.check()?;
        server.check()?;
        nats.check()
    }

    /// The configuration as TOML with every default filled in (`sluice config`). Secrets written
    /// into it show as `<hidden>` (inline passwords and tokens, the alert webhook's URL,
    /// `kafka.properties` whose key names a secret) and the user-info of the registry's and the
    /// NATS servers' URLs as `***`; `_env` and `_file` keys say where a secret is read from,
    /// never its value.
    pub fn dump(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        // Every section is named, so a new one is a decision: whether it holds a secret.
        let Config {
            server: _,
            registry,
            storage: _,
            kafka,
            nats,
            limits: _,
            auth: _,
            alerts,
            station: _,
        } = &mut shown;
        let source = registry.source.to_string_lossy().into_owned();
        registry.source = shown_url(&source).into();
        nats.url = shown_url(&nats.url);
        kafka.hide_secret_properties();
        if alerts.webhook_url.is_some() {
            alerts.webhook_url = Some(HIDDEN.to_owned());
        }
        toml::to_string(&shown)
    }

    /// Refuses settings that are unsafe together.
    pub fn check_bind_addresses(&self) -> Result<(), ConfigError> {
        for addr in self.server.listen_addresses() {
            if !addr.ip().is_loopback() && self.auth.tokens.is_empty() {
                return Err(ConfigError::NonLoopbackWithoutAuth { addr });
            }
        }
        Ok(())
    }
}

/// The `[[tokens]]` of `auth.tokens_file`.
fn read_tokens_file(path: &Path) -> Result<Vec<TokenConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    let file: TokensFile = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(file.tokens)
}

/// `SLUICE_LIMITS_MAX_MESSAGE_BYTES` → (`limits`, `max_message_bytes`); None for other variables.
fn env_override_target(var: &str, sections: &[String]) -> Option<(String, String)> {
    let rest = var.strip_prefix("SLUICE_")?.to_ascii_lowercase();
    let (section, key) = rest.split_once('_')?;
    (!key.is_empty() && sections.iter().any(|known| known == section))
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
    use crate::backends::embedded::config::{FsyncPolicy, StoreMemory};

    #[test]
    fn every_section_takes_environment_overrides() {
        let sections = env_sections();
        for section in [
            "server", "registry", "storage", "kafka", "nats", "limits", "auth",
        ] {
            assert!(
                sections.iter().any(|s| s == section),
                "{section}: {sections:?}"
            );
        }
        assert!(
            !sections.iter().any(|s| s == "station"),
            "stations are a list"
        );
        assert_eq!(
            env_override_target("SLUICE_ALERTS_WEBHOOK_URL", &sections),
            Some(("alerts".into(), "webhook_url".into()))
        );
    }

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
    fn a_tokens_file_adds_its_tokens_and_lets_the_gateway_bind_beyond_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(
            &tokens,
            "[[tokens]]\nid = \"ci\"\nsha256 = \"00ff\"\nproduce = [\"orders\"]\n",
        )
        .unwrap();
        let open = "[server]\nhttp = \"0.0.0.0:8080\"\n";
        let refused = load_str(open, &[]).unwrap().check_bind_addresses();
        assert!(matches!(
            refused,
            Err(ConfigError::NonLoopbackWithoutAuth { .. })
        ));
        let by_env = [("SLUICE_AUTH_TOKENS_FILE", tokens.to_str().unwrap())];
        let config = load_str(open, &by_env).unwrap();
        assert_eq!(config.auth.tokens.len(), 1);
        assert_eq!(config.auth.tokens[0].produce, ["orders"]);
        config.check_bind_addresses().unwrap();

        let missing = format!(
            "[auth]\ntokens_file = \"{}/nope.toml\"\n",
            dir.path().display()
        );
        let err = load_str(&missing, &[]).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
        std::fs::write(&tokens, "[[tokens]]\nid = \"x\"\n").unwrap();
        let err = load_str(open, &by_env).unwrap_err().to_string();
        assert!(
            err.contains("tokens.toml") && err.contains("sha256"),
            "{err}"
        );
    }

    #[test]
    fn the_dump_shows_every_key_and_no_secret() {
        let config = load_str(
            "[registry]\nsource = \"https://ci:git-pw-1@git.example/schemas.git\"\n\
             [nats]\nurl = \"nats://tok-5@n1:4222,nats://u:pw-6@n2:4222\"\n\
             user = \"sluice\"\npassword = \"nats-pw-2\"\n\
             [kafka]\nsasl = { mechanism = \"PLAIN\", username = \"u\", password = \"kafka-pw-3\" }\n\
             properties = { \"ssl.key.password\" = \"key-pw-7\", \"sasl.oauthbearer.client.secret\" = \"oauth-8\", \"linger.ms\" = \"5\" }\n\
             [alerts]\nwebhook_url = \"https://hooks.example/T0/hook-pw-4\"\n",
            &[],
        )
        .unwrap();
        let dump = config.dump().unwrap();
        for secret in [
            "git-pw-1",
            "nats-pw-2",
            "kafka-pw-3",
            "hook-pw-4",
            "tok-5",
            "pw-6",
            "key-pw-7",
            "oauth-8",
        ] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
        assert!(
            dump.contains("https://***@git.example/schemas.git"),
            "{dump}"
        );
        assert!(
            dump.contains("nats://***@n1:4222,nats://***@n2:4222"),
            "{dump}"
        );
        assert!(dump.contains("\"linger.ms\" = \"5\""), "{dump}");
        let again: Config = toml::from_str(&dump).unwrap();
        assert_eq!(again.kafka.brokers, config.kafka.brokers);
        assert_eq!(again.storage.fsync, config.storage.fsync);
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
