//! Station bindings as written in `stations.toml` (or `[[station]]` in the config file): which
//! schema a station enforces, which versions producers may use, where messages go, and how long
//! they are kept. Parsing and the version-acceptance rule live here; resolving names against the
//! schemas of a snapshot happens in `load`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::formats::Normalize;
use crate::model::{BackendRef, Retention};

/// Suffix of a station's dead-letter log.
pub const DLQ_SUFFIX: &str = ".dlq";

/// One `[[station]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    pub name: String,
    /// Schema name; none makes the station a plain pass-through.
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub accept: Accept,
    #[serde(default)]
    pub backend: BackendRef,
    #[serde(default = "default_dlq")]
    pub dlq: bool,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u32,
    /// `"binary"` stores Protobuf messages sent as JSON in the binary encoding.
    #[serde(default)]
    pub normalize: Normalize,
    /// `"confluent"` stores every message in Confluent's wire format (magic byte, schema id, the
    /// format's binary encoding), so consumers using Confluent deserializers read it unchanged.
    #[serde(default)]
    pub framing: Framing,
    /// Notify `[alerts]`'s webhook when the station refuses too many of its messages.
    #[serde(default)]
    pub alert: Option<RejectionAlert>,
}

/// When a station's rejections are worth a notification: over `window`, at least `min_messages`
/// produced and at least `rejection_rate` of them refused by the schema.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectionAlert {
    /// A fraction, `0.0 < rate <= 1.0`.
    pub rejection_rate: f64,
    #[serde(default = "default_alert_min_messages")]
    pub min_messages: u64,
    #[serde(default = "default_alert_window", with = "humantime_serde")]
    pub window: Duration,
}

fn default_alert_min_messages() -> u64 {
    20
}

fn default_alert_window() -> Duration {
    Duration::from_secs(60)
}

/// How a station's messages are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// As judged: the producer's bytes (or their normalized encoding).
    #[default]
    None,
    /// Confluent's wire format, whatever the producer sent.
    Confluent,
}

fn default_dlq() -> bool {
    true
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_deliveries() -> u32 {
    5
}

/// The file `stations.toml`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StationsFile {
    #[serde(default)]
    pub station: Vec<StationConfig>,
}

/// Which schema versions producers of a station may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accept {
    /// Only the newest version.
    #[default]
    Latest,
    /// Exactly this version.
    Exactly(u32),
    /// This version or any newer one.
    AtLeast(u32),
}

impl Accept {
    /// The accepted range `first..=last` out of versions `1..=newest`, if any version is accepted.
    pub fn range(self, newest: u32) -> Option<(u32, u32)> {
        let (first, last) = match self {
            Self::Latest => (newest, newest),
            Self::Exactly(v) => (v, v),
            Self::AtLeast(v) => (v, newest),
        };
        (first >= 1 && first <= last && last <= newest).then_some((first, last))
    }
}

impl fmt::Display for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Exactly(v) => write!(f, "{v}"),
            Self::AtLeast(v) => write!(f, ">={v}"),
        }
    }
}

impl Serialize for Accept {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Accept {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize, Serialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u32),
            Text(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "accept = {what}: expected \"latest\", a version number like 2, or \">=2\""
            ))
        };
        match Raw::deserialize(deserializer)? {
            Raw::Number(0) => Err(bad("0")),
            Raw::Number(v) => Ok(Self::Exactly(v)),
            Raw::Text(text) if text == "latest" => Ok(Self::Latest),
            Raw::Text(text) => match text.strip_prefix(">=").map(|v| v.trim().parse::<u32>()) {
                Some(Ok(v)) if v >= 1 => Ok(Self::AtLeast(v)),
                _ => match text.parse::<u32>() {
                    Ok(v) if v >= 1 => Ok(Self::Exactly(v)),
                    _ => Err(bad(&format!("\"{text}\""))),
                },
            },
        }
    }
}

/// Whether `name` may name a station: 1–200 of `[A-Za-z0-9._-]`, not ending in `.dlq`.
pub fn check_station_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("a station name must have 1 to 200 characters".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "a station name may only use letters, digits, '.', '_' and '-', not {bad:?}"
        ));
    }
    if name.ends_with(DLQ_SUFFIX) {
        return Err(format!(
            "names ending in `{DLQ_SUFFIX}` are reserved for dead-letter queues"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytesize::ByteSize;

    use super::*;

    fn parse(text: &str) -> Result<StationsFile, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn accept_forms_parse() {
        let file = parse(
            r#"
            [[station]]
            name = "a"
            [[station]]
            name = "b"
            accept = 2
            [[station]]
            name = "c"
            accept = ">=2"
            "#,
        )
        .unwrap();
        let accepts: Vec<_> = file.station.iter().map(|s| s.accept).collect();
        assert_eq!(
            accepts,
            [Accept::Latest, Accept::Exactly(2), Accept::AtLeast(2)]
        );
    }

    #[test]
    fn bad_accept_is_explained() {
        let err = parse("[[station]]\nname = \"a\"\naccept = \"newest\"\n").unwrap_err();
        assert!(err.to_string().contains("expected \"latest\""), "{err}");
    }

    #[test]
    fn backend_forms_parse() {
        let file = parse(
            r#"
            [[station]]
            name = "a"
            backend = "embedded"
            [[station]]
            name = "b"
            backend = { kafka = "orders-topic" }
            [[station]]
            name = "c"
            backend = { nats = "ORDERS.new" }
            retention = { max_age = "7d", max_bytes = "10GiB" }
            "#,
        )
        .unwrap();
        assert_eq!(file.station[0].backend, BackendRef::Embedded);
        assert_eq!(
            file.station[1].backend,
            BackendRef::Kafka("orders-topic".into())
        );
        assert_eq!(
            file.station[2].backend,
            BackendRef::Nats("ORDERS.new".into())
        );
        assert_eq!(
            file.station[2].retention.max_age,
            Some(Duration::from_secs(7 * 86400))
        );
        assert_eq!(file.station[2].retention.max_bytes, Some(ByteSize::gib(10)));
    }

    #[test]
    fn accept_range_within_versions() {
        assert_eq!(Accept::Latest.range(3), Some((3, 3)));
        assert_eq!(Accept::AtLeast(2).range(3), Some((2, 3)));
        assert_eq!(Accept::Exactly(4).range(3), None);
    }

    #[test]
    fn station_names_are_checked() {
        assert!(check_station_name("orders.v2_eu-1").is_ok());
        assert!(check_station_name("orders.dlq").is_err());
        assert!(check_station_name("a/b").is_err());
        assert!(check_station_name("").is_err());
    }
}
