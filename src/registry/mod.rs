//! The registry: an immutable [`Snapshot`] of every schema, version and station, compiled once,
//! and the [`Registry`] handle that serves the current snapshot to the hot path.
//!
//! A new snapshot is built whole, off the hot path, from a source's files (`load`); it is either
//! installed with one atomic swap or refused whole, in which case the previous one keeps serving and
//! the refusal is kept for the status endpoint. Readers never see half a change.

pub mod bounds;
pub mod cadence;
pub mod compat;
mod compile;
pub mod config;
pub mod contract;
pub mod git;
pub mod ids;
mod known_hosts;
pub mod load;
pub mod references;
pub mod schedules;
pub mod scratch;
pub mod source;
pub mod stations;
pub mod sync;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::formats::rules::RuleSet;
use crate::formats::{CompiledSchema, FormatKind, Normalize, RepoFiles, SchemaSettings};
use crate::metrics::StationMetrics;
use crate::model::time::rfc3339;
use crate::model::{BackendRef, Retention};
use references::{Reference, SupportSubject};
use stations::{Accept, DLQ_SUFFIX};

/// Every schema and station at one revision of the repository.
#[derive(Debug)]
pub struct Snapshot {
    /// The commit this snapshot was built from (for a directory, a fingerprint of its files).
    pub revision: String,
    pub loaded_at: SystemTime,
    /// The repository files, for compiling candidate schemas against (Confluent's compatibility
    /// endpoint).
    pub files: Arc<RepoFiles>,
    schemas: BTreeMap<String, Arc<Schema>>,
    stations: BTreeMap<String, Arc<Station>>,
    /// Files versions refer to that are no version themselves, as subjects of their own.
    support: BTreeMap<String, Arc<SupportSubject>>,
    /// The recurring messages of `schedules.toml`.
    schedules: Vec<Arc<schedules::Schedule>>,
}

impl Snapshot {
    /// The snapshot of a registry that has loaded nothing yet: no schemas, no stations.
    pub fn empty() -> Self {
        Self {
            revision: String::new(),
            loaded_at: SystemTime::now(),
            files: Arc::default(),
            schemas: BTreeMap::new(),
            stations: BTreeMap::new(),
            support: BTreeMap::new(),
            schedules: Vec::new(),
        }
    }

    /// The recurring messages of `schedules.toml`, in the order it lists them.
    pub fn schedules(&self) -> &[Arc<schedules::Schedule>] {
        &self.schedules
    }

    /// The version with global id `id`, with its schema.
    pub fn version_by_id(&self, id: u32) -> Option<(&Arc<Schema>, &SchemaVersion)> {
        self.schemas
            .values()
            .find_map(|schema| schema.version_by_id(id).map(|version| (schema, version)))
    }

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

    /// The support subject (a file versions refer to) called `name`.
    pub fn support_subject(&self, name: &str) -> Option<&Arc<SupportSubject>> {
        self.support.get(name)
    }

    pub fn support_subjects(&self) -> impl Iterator<Item = &Arc<SupportSubject>> {
        self.support.values()
    }
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
#[derive(Debug, Clone)]
pub struct SchemaVersion {
    pub version: u32,
    /// Global id (see [`ids`]), as used by the Confluent wire format.
    pub id: u32,
    /// Path of the version's file inside the repository.
    pub file: String,
    pub text: SourceText,
    pub compiled: Arc<dyn CompiledSchema>,
    /// The repository files this version refers to, as Confluent references.
    pub references: Vec<Reference>,
    /// The repository files its compilation read (its own, its `schema.toml`, its rules file,
    /// what it refers to, transitively): a revision that changes none of them keeps this
    /// compilation.
    pub inputs: Arc<[String]>,
    /// Its data-contract rules (`vN.rules.toml` beside it), when it has any.
    pub rules: Option<VersionRules>,
}

/// A version's rules file: where it is, its text and its compiled rules.
#[derive(Debug, Clone)]
pub struct VersionRules {
    pub file: String,
    pub text: SourceText,
    pub set: Arc<RuleSet>,
}

impl SchemaVersion {
    /// The text of its rules file, when it has one: part of what a published version may not
    /// change.
    pub fn rules_text(&self) -> Option<&SourceText> {
        self.rules.as_ref().map(|rules| &rules.text)
    }
}

/// A version's source text: the repository file's bytes, shared with the snapshot's tree rather
/// than copied, and known to be UTF-8.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceText(bytes::Bytes);

impl SourceText {
    /// `bytes` as text; `None` when they are not UTF-8.
    pub fn new(bytes: bytes::Bytes) -> Option<Self> {
        std::str::from_utf8(&bytes).is_ok().then_some(Self(bytes))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("checked to be UTF-8 when made")
    }
}

impl std::ops::Deref for SourceText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for SourceText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceText({} bytes)", self.0.len())
    }
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
    pub normalize: Normalize,
    /// How messages are stored: as judged, or in Confluent's wire format.
    pub framing: stations::Framing,
    /// Name of the dead-letter log, `<name>.dlq`.
    pub dlq_name: String,
    /// Accepted versions `first..=last`, checked when the snapshot was built.
    accepted: (u32, u32),
    /// The station's message counters.
    pub metrics: StationMetrics,
    /// When to notify about the station's rejections.
    pub alert: Option<stations::RejectionAlert>,
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
    /// The schema version the problem is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(version) => write!(
                f,
                "{}: v{version}: {}: {}",
                self.file, self.rule, self.message
            ),
            None => write!(f, "{}: {}: {}", self.file, self.rule, self.message),
        }
    }
}

/// The last refused revision, for the status endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub at: String,
    pub revision: String,
    pub errors: Vec<LoadProblem>,
}

/// The last failure to reach the source (e.g. a remote that cannot be fetched).
#[derive(Debug, Clone, Serialize)]
pub struct SourceFailure {
    pub at: String,
    pub message: String,
}

/// The live registry: the serving snapshot plus what happened to the latest change.
pub struct Registry {
    source: String,
    current: ArcSwap<Snapshot>,
    /// Whether any snapshot was installed; until then the registry serves nothing.
    serving: AtomicBool,
    last_refusal: Mutex<Option<Refusal>>,
    source_failure: Mutex<Option<SourceFailure>>,
    refusals_total: AtomicU64,
    installs_total: AtomicU64,
    sync: OnceLock<sync::SyncHandle>,
}

impl Registry {
    /// A registry that serves nothing until a snapshot is installed.
    pub fn new(source: String) -> Self {
        Self {
            source,
            current: ArcSwap::from_pointee(Snapshot::empty()),
            serving: AtomicBool::new(false),
            last_refusal: Mutex::new(None),
            source_failure: Mutex::new(None),
            refusals_total: AtomicU64::new(0),
            installs_total: AtomicU64::new(0),
            sync: OnceLock::new(),
        }
    }

    /// A registry serving `first`.
    pub fn serving(source: String, first: Snapshot) -> Self {
        let registry = Self::new(source);
        registry.install(first);
        registry
    }

    /// The serving snapshot. One atomic load and reference-count increment.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether a snapshot has been installed (the registry is ready).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
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
        self.serving.store(true, Ordering::Release);
        self.installs_total.fetch_add(1, Ordering::Relaxed);
        self.clear_refusal();
    }

    /// Records that a revision was refused; the serving snapshot is untouched.
    pub fn refuse(&self, revision: String, errors: Vec<LoadProblem>) {
        for problem in &errors {
            tracing::error!(%revision, file = %problem.file, rule = problem.rule, "registry change refused: {}", problem.message);
        }
        self.refusals_total.fetch_add(1, Ordering::Relaxed);
        *self.last_refusal.lock().expect("refusal lock") = Some(Refusal {
            at: rfc3339(SystemTime::now()),
            revision,
            errors,
        });
    }

    /// Forgets the last refusal, once the source no longer holds the refused change.
    pub fn clear_refusal(&self) {
        *self.last_refusal.lock().expect("refusal lock") = None;
    }

    pub fn last_refusal(&self) -> Option<Refusal> {
        self.last_refusal.lock().expect("refusal lock").clone()
    }

    /// How many snapshots were installed since start.
    pub fn installs_total(&self) -> u64 {
        self.installs_total.load(Ordering::Relaxed)
    }

    /// How many revisions were refused since start.
    pub fn refusals_total(&self) -> u64 {
        self.refusals_total.load(Ordering::Relaxed)
    }

    /// Records whether the source could be reached on the latest attempt.
    pub fn set_source_failure(&self, failure: Option<String>) {
        if let Some(message) = &failure {
            tracing::warn!(source = %self.source, "registry source unavailable: {message}");
        }
        *self.source_failure.lock().expect("source lock") = failure.map(|message| SourceFailure {
            at: rfc3339(SystemTime::now()),
            message,
        });
    }

    pub fn source_failure(&self) -> Option<SourceFailure> {
        self.source_failure.lock().expect("source lock").clone()
    }

    /// Why the registry is not ready, or `None` when it serves a snapshot.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.is_serving() {
            return None;
        }
        Some(match (self.source_failure(), self.last_refusal()) {
            (Some(failure), _) => format!(
                "no schema snapshot loaded yet: the source cannot be read ({}) and none was served before",
                failure.message
            ),
            (None, Some(refusal)) => format!(
                "no schema snapshot loaded yet: revision {} was refused ({} problem(s), see /v1/registry/status)",
                refusal.revision,
                refusal.errors.len()
            ),
            (None, None) => "no schema snapshot loaded yet".to_owned(),
        })
    }

    /// Connects the handle that `POST /v1/registry/sync` uses; set once, when serving starts.
    pub fn attach_sync(&self, handle: sync::SyncHandle) {
        let _ = self.sync.set(handle);
    }

    pub fn sync_handle(&self) -> Option<&sync::SyncHandle> {
        self.sync.get()
    }
}

/// Name of the dead-letter log of station `name`.
pub fn dlq_name(name: &str) -> String {
    format!("{name}{DLQ_SUFFIX}")
}
