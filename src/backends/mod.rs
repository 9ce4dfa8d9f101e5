//! Station backends: where accepted messages (and dead letters) are durably stored. Each backend is
//! one module behind [`Backend`]; the pipeline hands it records (`append`, or `send` a chunk at a
//! time) and waits for their durable acknowledgement. Each also stands behind [`StationQueue`]:
//! consumer groups, dead letters and their replay, kept with the backend's own primitives so that
//! several gateways in front of one engine agree.

pub mod embedded;
pub mod kafka;
pub mod nats;
pub mod queues;
pub mod remote;
pub mod routing;

pub use queues::StationQueue;
pub use remote::{for_each_remote_header, is_reserved_header};

use async_trait::async_trait;
use futures_util::future::BoxFuture;

use crate::model::{BackendKind, Position, Record};

/// A log a backend can append to: a station or a station's dead-letter queue.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Which backend this is (its name is shown in listings, metrics and errors).
    fn kind(&self) -> BackendKind;

    /// Hands `records` over for appending to `log` and returns what resolves to their positions
    /// once they are durable under the backend's policy. When this returns, every record is in the
    /// backend's hands: records of a later call land after them.
    async fn send<'a>(
        &'a self,
        log: &'a str,
        records: Vec<Record>,
    ) -> Result<Acknowledgement<'a>, BackendError>;

    /// Appends `records` to `log` and returns their positions once they are durable.
    async fn append(&self, log: &str, records: Vec<Record>) -> Result<Vec<Position>, BackendError> {
        self.send(log, records).await?.await
    }

    /// How many valid records of a batch the pipeline hands over per [`Backend::send`] while it
    /// is still judging the rest. A remote backend takes a batch in chunks, so its brokers store
    /// the first records while later ones are validated; the embedded store takes it whole, as
    /// one write (`usize::MAX`).
    fn send_chunk(&self) -> usize;

    /// Whether this gateway may produce the ticks of a schedule on this backend now. A backend that
    /// drops a duplicate tick (by its idempotency key) lets every gateway produce them; one that
    /// cannot (Kafka) only the gateway holding the scheduling role, or ticks would fire twice.
    async fn runs_schedules(&self) -> Result<bool, BackendError>;

    /// Whether the backend can take writes now (for `/readyz`).
    async fn check_ready(&self) -> Result<(), BackendError>;

    /// Makes sure `log` can be appended to (creates a missing topic or stream, where the backend
    /// does that).
    async fn prepare(&self, _log: &str) -> Result<(), BackendError> {
        Ok(())
    }

    /// A request that carries several records starts handing them over with [`Backend::send`].
    /// Each call is matched by one [`Backend::request_complete`], also when the request is given
    /// up half way.
    fn request_started(&self) {}

    /// A request that carried several records has handed over all it will: a backend that holds
    /// records back to fill larger requests to its brokers (Kafka's `linger`) can send them now
    /// rather than keep the producer waiting, unless other such requests are still handing theirs
    /// over and will ask again when they are done.
    fn request_complete(&self) {}
}

/// A backend on an engine outside the gateway: connected the first time a station needs it, by
/// [`routing::Backends`].
#[async_trait]
pub trait RemoteBackend: Backend + StationQueue + Sized {
    /// Its section of the configuration file.
    type Config: Send + Sync;

    /// Connects with `config` (or gets ready to: a client may connect in the background).
    async fn connect(config: &Self::Config) -> Result<Self, BackendError>;

    /// The name of `log`'s dead-letter log on this engine.
    fn dead_letters_of(config: &Self::Config, log: &str) -> String;
}

/// What [`Backend::send`] hands back: the positions of the records it sent, once they are durable.
pub type Acknowledgement<'a> = BoxFuture<'a, Result<Vec<Position>, BackendError>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot take the write now; the producer should retry later.
    #[error("the {backend} backend is unavailable: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    /// The backend cannot hold what it was given, however often it is retried.
    #[error("the {backend} backend cannot hold this message: {reason}")]
    Unrepresentable {
        backend: &'static str,
        reason: String,
    },
    /// A stored record could not be read back.
    #[error("stored record at {log}/{offset} is unreadable: {reason}")]
    Corrupt {
        log: String,
        offset: u64,
        reason: String,
    },
}

/// A backend that cannot take a write now, and why.
pub(crate) fn unavailable(backend: &'static str, reason: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable {
        backend,
        reason: reason.to_string(),
    }
}

/// The logs (topics, subjects) a remote backend has made sure exist, so that is done once per log
/// and done again after a failure (a broker that lost it).
#[derive(Default)]
pub(crate) struct PreparedLogs(std::sync::Mutex<std::collections::HashSet<String>>);

impl PreparedLogs {
    pub(crate) fn contains(&self, log: &str) -> bool {
        self.0.lock().expect("prepared logs lock").contains(log)
    }

    pub(crate) fn insert(&self, log: &str) {
        self.0
            .lock()
            .expect("prepared logs lock")
            .insert(log.to_owned());
    }

    pub(crate) fn forget(&self, log: &str) {
        self.0.lock().expect("prepared logs lock").remove(log);
    }
}
