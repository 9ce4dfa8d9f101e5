//! The registry: an immutable [`Snapshot`] of every schema, version and station, compiled once,
//! and the [`Registry`] handle that serves the current snapshot to the hot path.
//!
//! A new snapshot is built whole, off the hot path, from a source's files (`load`); it is either
//! installed with one atomic swap or refused whole, in which case the previous one keeps serving and
//! the refusal is kept for the status endpoint. Readers never see half a change.

pub mod files;
pub mod ids;
pub mod load;
pub mod source;
pub mod stations;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::formats::{CompiledSchema, FormatKind};
use stations::{Accept, BackendRef, Retention, DLQ_SUFFIX};

/// Every schema and station at one revision of the repository.
#[derive(Debug)]
pub struct Snapshot {
    /// Fingerprint of the repository files this snapshot was built from.
    pub revision: String,
    pub loaded_at: SystemTime,
    schemas: BTreeMap<String, Arc<Schema>>,
    stations: BTreeMap<String, Arc<Station>>,
}

impl Snapshot {
    pub fn schema(&self, name: &str) -> Option<&Arc<Schema>> {
        self.schemas.get(name)
    }

    pub fn station(&self, name: &str) -> Option<&Arc<Station>> {
        self.stations.get(name)
    }

    pub fn schemas(&self) -> impl Iterator<Item = &Arc<Schema>> {
        self.schemas.values()
    }

    pub fn stations(&self) -> impl Iterator<Item = &Arc<Station>> {
        self.stations.values()
    }
}

/// Settings of a schema from its folder's optional `schema.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaSettings {
    pub compatibility: Compatibility,
    /// Protobuf: the message type that judges payloads (fully qualified, e.g. `acme.Order`);
    /// defaults to the file's only top-level message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Protobuf: accept fields the schema does not know (a violation by default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_unknown_fields: bool,
    /// Avro: how JSON payloads are written, `"plain"` (unions unwrapped) or `"avro-json"`.
    #[serde(skip_serializing_if = "is_default")]
    pub encoding: crate::formats::avro::JsonEncoding,
    /// GraphQL: the type JSON data must match; without it payloads are executable documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_type: Option<String>,
    /// GraphQL: deepest nesting a document may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
    /// GraphQL: most lexical tokens a document may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Compatibility modes, in Confluent Schema Registry's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// A named schema with its versions `1..=N`.
#[derive(Debug)]
pub struct Schema {
    pub name: String,
    pub format: FormatKind,
    pub settings: SchemaSettings,
    /// Index `i` holds version `i + 1`.
    versions: Vec<SchemaVersion>,
}

impl Schema {
    pub fn versions(&self) -> &[SchemaVersion] {
        &self.versions
    }

    pub fn version(&self, version: u32) -> Option<&SchemaVersion> {
        let index = usize::try_from(version).ok()?.checked_sub(1)?;
        self.versions.get(index)
    }

    pub fn newest(&self) -> u32 {
        self.versions.len() as u32
    }

    /// The version with global id `id`, if it is one of this schema's.
    pub fn version_by_id(&self, id: u32) -> Option<&SchemaVersion> {
        self.versions.iter().find(|v| v.id == id)
    }
}

/// One published version of a schema, compiled.
#[derive(Debug)]
pub struct SchemaVersion {
    pub version: u32,
    /// Global id (see [`ids`]), as used by the Confluent wire format.
    pub id: u32,
    /// Path of the version's file inside the repository.
    pub file: String,
    pub text: Arc<str>,
    pub compiled: Arc<dyn CompiledSchema>,
}

/// A station as bound in this snapshot.
#[derive(Debug)]
pub struct Station {
    pub name: String,
    /// The enforced schema; `None` for a pass-through station.
    pub schema: Option<Arc<Schema>>,
    pub accept: Accept,
    pub backend: BackendRef,
    pub dlq: bool,
    pub retention: Retention,
    pub ack_timeout: std::time::Duration,
    pub max_deliveries: u32,
    /// Store messages as sent, or re-encoded in the format's binary encoding.
    pub normalize: crate::formats::Normalize,
    /// Name of the dead-letter log, `<name>.dlq`.
    pub dlq_name: String,
    /// Accepted versions `first..=last`, checked when the snapshot was built.
    accepted: (u32, u32),
}

/// Why a producer's requested schema version cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRefusal {
    Unknown { newest: u32 },
    NotAccepted { accept: Accept },
}

impl Station {
    /// The version that judges a message: the requested one if the station accepts it, else the
    /// newest accepted. `None` for a pass-through station.
    pub fn pick_version(
        &self,
        requested: Option<u32>,
    ) -> Result<Option<&SchemaVersion>, VersionRefusal> {
        let Some(schema) = &self.schema else {
            return Ok(None);
        };
        let (first, last) = self.accepted;
        let version = match requested {
            None => last,
            Some(v) if schema.version(v).is_none() => {
                return Err(VersionRefusal::Unknown {
                    newest: schema.newest(),
                })
            }
            Some(v) if v < first || v > last => {
                return Err(VersionRefusal::NotAccepted {
                    accept: self.accept,
                })
            }
            Some(v) => v,
        };
        Ok(schema.version(version))
    }

    pub fn accepted_versions(&self) -> (u32, u32) {
        self.accepted
    }
}

/// A problem that keeps a repository revision from being served, naming file and rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadProblem {
    pub file: String,
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.rule, self.message)
    }
}

/// The last refused revision, for the status endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub at: String,
    pub revision: String,
    pub errors: Vec<LoadProblem>,
}

/// The live registry: the serving snapshot plus what happened to the latest change.
pub struct Registry {
    source: String,
    current: ArcSwap<Snapshot>,
    last_refusal: Mutex<Option<Refusal>>,
}

impl Registry {
    pub fn new(source: String, first: Snapshot) -> Self {
        Self {
            source,
            current: ArcSwap::from_pointee(first),
            last_refusal: Mutex::new(None),
        }
    }

    /// The serving snapshot. One atomic load and reference-count increment.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Serves `snapshot` from now on and clears the last refusal.
    pub fn install(&self, snapshot: Snapshot) {
        tracing::info!(
            revision = %snapshot.revision,
            schemas = snapshot.schemas.len(),
            stations = snapshot.stations.len(),
            "registry snapshot installed"
        );
        self.current.store(Arc::new(snapshot));
        self.clear_refusal();
    }

    /// Records that a revision was refused; the serving snapshot is untouched.
    pub fn refuse(&self, revision: String, errors: Vec<LoadProblem>) {
        for problem in &errors {
            tracing::error!(%revision, file = %problem.file, rule = problem.rule, "registry change refused: {}", problem.message);
        }
        *self.last_refusal.lock().expect("refusal lock") = Some(Refusal {
            at: crate::views::rfc3339(SystemTime::now()),
            revision,
            errors,
        });
    }

    /// Forgets the last refusal, once the files no longer hold the refused change.
    pub fn clear_refusal(&self) {
        *self.last_refusal.lock().expect("refusal lock") = None;
    }

    pub fn last_refusal(&self) -> Option<Refusal> {
        self.last_refusal.lock().expect("refusal lock").clone()
    }
}

/// Name of the dead-letter log of station `name`.
pub fn dlq_name(name: &str) -> String {
    format!("{name}{DLQ_SUFFIX}")
}
