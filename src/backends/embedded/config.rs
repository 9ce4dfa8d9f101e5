//! `[storage]`: where the embedded store lives, when an append is durable, and how much memory it
//! may hold.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    pub fn check(&self) -> Result<(), String> {
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

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Interval(every) => write!(f, "interval:{}", humantime::format_duration(*every)),
            Self::Never => f.write_str("never"),
        }
    }
}

impl Serialize for FsyncPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
