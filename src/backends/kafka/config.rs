//! `[kafka]`: the brokers Kafka stations are stored on, and how the producer talks to them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{InlineSecret, SecretSource, TlsFiles};

/// The Kafka backend, used by stations with `backend = { kafka = "topic" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// How long a gateway serving a consumer group may go unheard before the group's coordinator
    /// gives its partitions to the other gateways (librdkafka `session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// TLS towards the brokers: the CA that signed their certificates, and a client certificate
    /// and key for mutual TLS.
    pub tls: Option<TlsFiles>,
    /// SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    pub sasl: Option<KafkaSasl>,
    /// Further librdkafka properties for every client Sluice makes (producer, group consumers,
    /// reader), e.g. `"compression.type" = "zstd"`; they win over what the keys above set.
    pub properties: BTreeMap<String, String>,
}

/// `[kafka.sasl]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Option<InlineSecret>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// The SASL mechanisms librdkafka speaks without Kerberos or OAuth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl KafkaConfig {
    /// Hides the value of every `properties` key that names a secret (a password, secret, token,
    /// PEM key or JAAS configuration), for showing the configuration.
    pub fn hide_secret_properties(&mut self) {
        const SECRET_WORDS: [&str; 6] =
            ["password", "secret", "token", "pem", "jaas", "credential"];
        for (key, value) in self.properties.iter_mut() {
            let key = key.to_ascii_lowercase();
            if SECRET_WORDS.iter().any(|word| key.contains(word)) {
                *value = crate::model::HIDDEN.to_owned();
            }
        }
    }

    /// The librdkafka properties for TLS and SASL, the password read now; then `properties`.
    /// Errors name the key to fix and never hold a secret.
    pub fn security_properties(&self) -> Result<Vec<(String, String)>, String> {
        let mut set = Vec::new();
        let mut put = |key: &str, value: String| set.push((key.to_owned(), value));
        let protocol = match (&self.tls, &self.sasl) {
            (Some(_), Some(_)) => Some("SASL_SSL"),
            (Some(_), None) => Some("SSL"),
            (None, Some(_)) => Some("SASL_PLAINTEXT"),
            (None, None) => None,
        };
        if let Some(protocol) = protocol {
            put("security.protocol", protocol.to_owned());
        }
        if let Some(tls) = &self.tls {
            tls.check("kafka.tls")?;
            put("ssl.endpoint.identification.algorithm", "https".to_owned());
            let files = [
                ("ssl.ca.location", "ca_file", &tls.ca_file),
                ("ssl.certificate.location", "cert_file", &tls.cert_file),
                ("ssl.key.location", "key_file", &tls.key_file),
            ];
            for (property, key, file) in files {
                if let Some(file) = file {
                    if !file.is_file() {
                        return Err(format!("kafka.tls.{key}: {} is not a file", file.display()));
                    }
                    put(property, file.display().to_string());
                }
            }
        }
        if let Some(sasl) = &self.sasl {
            let password = SecretSource::from_keys(
                "kafka.sasl.password",
                sasl.password.as_ref(),
                sasl.password_env.as_deref(),
                sasl.password_file.as_deref(),
            )?
            .ok_or("kafka.sasl needs password, password_env or password_file")?
            .read("kafka.sasl.password")?;
            put("sasl.mechanism", sasl.mechanism.name().to_owned());
            put("sasl.username", sasl.username.clone());
            put("sasl.password", password.expose().to_owned());
        }
        for (key, value) in &self.properties {
            put(key, value.clone());
        }
        Ok(set)
    }
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
            session_timeout: Duration::from_secs(10),
            tls: None,
            sasl: None,
            properties: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_sasl_become_librdkafka_properties_and_raw_properties_win() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let config = KafkaConfig {
            tls: Some(TlsFiles {
                ca_file: Some(ca.clone()),
                ..TlsFiles::default()
            }),
            sasl: Some(KafkaSasl {
                mechanism: SaslMechanism::ScramSha512,
                username: "sluice".into(),
                password: Some(InlineSecret("pw".into())),
                password_env: None,
                password_file: None,
            }),
            properties: [("sasl.username".to_owned(), "other".to_owned())].into(),
            ..KafkaConfig::default()
        };
        let set: BTreeMap<String, String> =
            config.security_properties().unwrap().into_iter().collect();
        assert_eq!(set["security.protocol"], "SASL_SSL");
        assert_eq!(set["ssl.ca.location"], ca.display().to_string());
        assert_eq!(set["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(set["sasl.password"], "pw");
        assert_eq!(set["sasl.username"], "other");
        let missing = KafkaConfig {
            tls: Some(TlsFiles {
                ca_file: Some(dir.path().join("nope.pem")),
                ..TlsFiles::default()
            }),
            ..KafkaConfig::default()
        };
        let error = missing.security_properties().unwrap_err();
        assert!(error.starts_with("kafka.tls.ca_file"), "{error}");
    }
}
