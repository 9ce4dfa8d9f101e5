//! The Kafka backend (rdkafka, with its bundled librdkafka): an idempotent producer with
//! `acks=all`, so a record's position is returned only once every in-sync replica has it. Owns the
//! producer, topic creation, and the mapping of a [`Record`] to a Kafka message: key, value and
//! headers (`sluice-schema`, `sluice-schema-version`, `sluice-schema-id`, `content-type`, the
//! producer's own; dead letters add `sluice-error`, `sluice-reason`, `sluice-violations`).
//! Consumer groups are in `groups`, dead letters in `dead_letters` and their replay marks in
//! `replays`, all read through `reader`.
//!
//! A broker that is down or slow never hangs a request: every append is bounded by
//! `request_timeout` and answers [`BackendError::Unavailable`] (HTTP 503) past it; librdkafka
//! reconnects on its own, so producing works again as soon as the brokers are back. An idempotent
//! producer can end in a fatal state (fenced after its epoch could not be bumped, say); the backend
//! then replaces it with a new producer rather than failing every later message.
//!
//! `linger` lets records of concurrent requests share a request to the brokers. A batch request's
//! own records need not wait it out: once the pipeline has handed over the last of them, and no
//! other batch request is still handing its records over, the backend's flusher thread asks
//! librdkafka to send what it holds now (its flush, for a millisecond), and the batch is answered
//! a round trip later instead of a linger later. Batches that overlap are sent together by the
//! last of them to finish (or by the linger, whichever comes first), so concurrent batches fill
//! requests to the brokers as they would without the flush.

mod clients;
mod config;
mod dead_letters;
mod groups;
mod reader;
mod replays;
mod role;
mod watch;

pub use config::KafkaConfig;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord, Producer as _};

use super::queues::{
    AckOutcome, ConsumeOptions, DeadLetterPage, Delivery, LogStats, RecentStats, ReplayClaim,
    StationQueue,
};
use super::{
    for_each_remote_header, unavailable, Acknowledgement, Backend, BackendError, PreparedLogs,
    RemoteBackend,
};
use crate::model::{BackendKind, Position, Record};

const KIND: &str = BackendKind::Kafka.name();

/// Records per [`Backend::send`]: while `linger` holds the first chunk for a fuller request, the
/// rest of the batch is judged and joins it.
const SEND_CHUNK: usize = 128;

pub struct KafkaBackend {
    producer: ArcSwap<watch::Producer>,
    /// The brokers' last connection problem, until they answer again.
    watched: watch::Watched,
    /// What new clients are made from (a replaced producer, a group's consumer), with the SASL
    /// password kept current in them.
    clients: Arc<clients::Clients>,
    /// Held while a fatal producer is replaced, so it is replaced once.
    replacing: Mutex<()>,
    admin: Arc<AdminClient<DefaultClientContext>>,
    create_topics: bool,
    partitions: i32,
    replication_factor: i32,
    request_timeout: Duration,
    /// Topics known to exist (created or found), so creation is tried once per topic.
    known_topics: PreparedLogs,
    /// Asks for held records to be sent now; none when `linger` is zero.
    flusher: Option<Flusher>,
    /// Batch requests handing their records over now: the last of them to finish flushes.
    handing_over: HandingOver,
    /// Reads topics by partition and offset (dead letters, replay marks, counts).
    reader: reader::LogReader,
    /// The consumer groups this gateway serves.
    sessions: groups::Sessions,
    session_timeout: Duration,
    /// Replay marks read so far, and the claims this gateway holds.
    replays: replays::ReplayMarks,
    /// Names this gateway's replay claims apart from other gateways'.
    instance: String,
    recent_stats: RecentStats,
    /// This gateway's member of the scheduling role's group, joined on first use.
    role: tokio::sync::OnceCell<role::Role>,
}

impl KafkaBackend {
    /// Builds the producer. Nothing is contacted yet: librdkafka connects in the background.
    fn build(config: &KafkaConfig) -> Result<Self, BackendError> {
        let timeout_ms = config.request_timeout.as_millis().max(1).to_string();
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", "sluice")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger.as_millis().to_string())
            .set("batch.num.messages", "10000")
            .set("message.timeout.ms", &timeout_ms)
            .set("socket.connection.setup.timeout.ms", &timeout_ms);
        let security = config
            .security_properties()
            .map_err(|e| unavailable(KIND, e))?;
        for (key, value) in security {
            client.set(key, value);
        }
        let clients = Arc::new(clients::Clients::new(client, config));
        let client = clients.config();
        let watched = watch::Watched::default();
        let producer: Arc<watch::Producer> =
            Arc::new(client.create_with_context(watched.clone()).map_err(|e| {
                unavailable(KIND, format!("cannot create the Kafka producer: {e}"))
            })?);
        let admin: Arc<AdminClient<DefaultClientContext>> =
            Arc::new(client.create().map_err(|e| {
                unavailable(KIND, format!("cannot create the Kafka admin client: {e}"))
            })?);
        let reader = reader::LogReader::new(&clients, config.request_timeout)?;
        clients.track(&producer);
        clients.track(&admin);
        clients::Clients::follow_password_file(&clients);
        Ok(Self {
            producer: ArcSwap::new(producer),
            watched,
            clients,
            replacing: Mutex::new(()),
            admin,
            create_topics: config.create_topics,
            partitions: config.partitions,
            replication_factor: config.replication_factor,
            request_timeout: config.request_timeout,
            known_topics: PreparedLogs::default(),
            flusher: if config.linger.is_zero() {
                None
            } else {
                Some(Flusher::spawn().map_err(|e| {
                    unavailable(KIND, format!("cannot start the Kafka flusher thread: {e}"))
                })?)
            },
            handing_over: HandingOver::default(),
            reader,
            sessions: groups::Sessions::default(),
            session_timeout: config.session_timeout,
            replays: replays::ReplayMarks::default(),
            instance: instance_name(),
            recent_stats: RecentStats::default(),
            role: tokio::sync::OnceCell::new(),
        })
    }

    /// 503 for `message`, with the brokers' last connection problem while there is one.
    fn unavailable(&self, message: String) -> BackendError {
        match self.watched.problem() {
            Some(problem) => unavailable(KIND, format!("{message}; {problem}")),
            None => unavailable(KIND, message),
        }
    }

    /// Replaces the spent `producer` with a new one, unless another request already did.
    fn replace(&self, producer: &Arc<watch::Producer>, why: &BackendError) {
        let _one_at_a_time = self.replacing.lock().expect("replacement lock");
        if !Arc::ptr_eq(&self.producer.load(), producer) {
            return;
        }
        match self
            .clients
            .config()
            .create_with_context::<_, watch::Producer>(self.watched.clone())
        {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.clients.track(&fresh);
                tracing::warn!(
                    "the Kafka producer cannot go on ({why}); replaced it with a new one"
                );
                let spent = self.producer.swap(fresh);
                // Destroying a librdkafka handle blocks until its requests end: not on a runtime thread.
                tokio::task::spawn_blocking(move || drop(spent));
            }
            Err(e) => tracing::error!(
                "the Kafka producer cannot go on ({why}) and cannot be replaced: {e}"
            ),
        }
    }

    /// Recovers from a failed produce to `log`: the topic is checked again next time (a broker that
    /// lost its data may have lost it), and a producer that cannot go on is replaced.
    fn after_failure(
        &self,
        producer: &Arc<watch::Producer>,
        log: &str,
        failure: ProduceFailure,
    ) -> BackendError {
        self.known_topics.forget(log);
        if failure.producer_spent || producer.client().fatal_error().is_some() {
            self.replace(producer, &failure.error);
        }
        match (failure.error, self.watched.problem()) {
            (BackendError::Unavailable { backend, reason }, Some(problem)) => {
                BackendError::Unavailable {
                    backend,
                    reason: format!("{reason}; {problem}"),
                }
            }
            (error, _) => error,
        }
    }

    /// Creates `topic` if it is missing (when configured to); remembers it once it exists.
    async fn ensure_topic(&self, topic: &str) -> Result<(), BackendError> {
        let new_topic = NewTopic::new(
            topic,
            self.partitions,
            TopicReplication::Fixed(self.replication_factor),
        );
        self.create_topic(new_topic).await
    }

    /// Creates `topic` as a compacted topic of one partition if it is missing (when configured
    /// to), for records where each key's last one is all that matters.
    async fn ensure_compacted_topic(&self, topic: &str) -> Result<(), BackendError> {
        let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(self.replication_factor))
            .set("cleanup.policy", "compact");
        self.create_topic(new_topic).await
    }

    async fn create_topic(&self, new_topic: NewTopic<'_>) -> Result<(), BackendError> {
        let topic = new_topic.name;
        if !self.create_topics || self.known_topics.contains(topic) {
            return Ok(());
        }
        let options = AdminOptions::new()
            .request_timeout(Some(self.request_timeout))
            .operation_timeout(Some(self.request_timeout));
        let results = tokio::time::timeout(
            self.request_timeout,
            self.admin.create_topics([&new_topic], &options),
        )
        .await
        .map_err(|_| {
            self.unavailable(format!(
                "creating topic `{topic}` took longer than {:?}",
                self.request_timeout
            ))
        })?
        .map_err(|e| self.unavailable(format!("cannot create topic `{topic}`: {e}")))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(unavailable(
                        KIND,
                        format!("cannot create topic `{name}`: {code}"),
                    ))
                }
            }
        }
        self.known_topics.insert(topic);
        Ok(())
    }
}

#[async_trait]
impl Backend for KafkaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Kafka
    }

    fn send_chunk(&self) -> usize {
        SEND_CHUNK
    }

    async fn send<'a>(
        &'a self,
        log: &'a str,
        records: Vec<Record>,
    ) -> Result<Acknowledgement<'a>, BackendError> {
        self.ensure_topic(log).await?;
        let producer = self.producer.load_full();
        let deliveries = enqueue(&producer, log, &records)
            .map_err(|failure| self.after_failure(&producer, log, failure))?;
        Ok(Box::pin(async move {
            acknowledged(deliveries, self.request_timeout)
                .await
                .map_err(|failure| self.after_failure(&producer, log, failure))
        }))
    }

    /// Kafka cannot drop a duplicate tick: only the gateway holding the scheduling role runs them.
    async fn runs_schedules(&self) -> Result<bool, BackendError> {
        self.holds_scheduling_role().await
    }

    async fn check_ready(&self) -> Result<(), BackendError> {
        let producer = self.producer.load_full();
        let timeout = self.request_timeout.min(Duration::from_secs(2));
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout))
            .await
            .map_err(|e| unavailable(KIND, e))?
            .map_err(|e| self.unavailable(format!("the brokers do not answer: {e}")))?;
        self.watched.clear();
        Ok(())
    }

    async fn prepare(&self, log: &str) -> Result<(), BackendError> {
        self.ensure_topic(log).await
    }

    fn request_started(&self) {
        self.handing_over.start();
    }

    fn request_complete(&self) {
        if !self.handing_over.finish_last() {
            return;
        }
        if let Some(flusher) = &self.flusher {
            flusher.request(self.producer.load_full());
        }
    }
}

#[async_trait]
impl RemoteBackend for KafkaBackend {
    type Config = KafkaConfig;

    async fn connect(config: &KafkaConfig) -> Result<Self, BackendError> {
        Self::build(config)
    }

    fn dead_letters_of(config: &KafkaConfig, topic: &str) -> String {
        format!("{topic}{}", config.dlq_suffix)
    }
}

#[async_trait]
impl StationQueue for KafkaBackend {
    async fn admits_group(&self, log: &str, group: &str, max: usize) -> Result<bool, BackendError> {
        Ok(self.admits_session(log, group, max))
    }

    async fn consume(
        &self,
        log: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        self.consume_group(log, group, options).await
    }

    async fn ack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
    ) -> Result<AckOutcome, BackendError> {
        self.settle_messages(log, group, messages, None).await
    }

    async fn nack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
        delay: Duration,
    ) -> Result<AckOutcome, BackendError> {
        self.settle_messages(log, group, messages, Some(delay))
            .await
    }

    async fn stats(&self, log: &str) -> Result<LogStats, BackendError> {
        self.recent_stats.get(log, self.topic_stats(log)).await
    }

    async fn dead_letters(
        &self,
        dead_letters: &str,
        from: Position,
        max: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        self.dead_letter_page(dead_letters, from, max).await
    }

    async fn dead_letter(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<Option<Record>, BackendError> {
        self.one_dead_letter(dead_letters, id).await
    }

    async fn claim_replay(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<ReplayClaim, BackendError> {
        self.claim(dead_letters, id).await
    }

    async fn settle_replay(
        &self,
        dead_letters: &str,
        id: Position,
        forwarded_to: Option<Position>,
    ) -> Result<(), BackendError> {
        self.settle(dead_letters, id, forwarded_to).await
    }
}

/// A name for this gateway's claims that no other gateway's share: its host, process id and
/// start time.
fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        crate::model::time::now_ms()
    )
}

/// How many batch requests are handing their records over. A flush while another is still at it
/// would send that one's records in a fragment of its own: it flushes for both when it is done.
#[derive(Default)]
struct HandingOver(AtomicUsize);

impl HandingOver {
    fn start(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Ends one; true when it was the last under way.
    fn finish_last(&self) -> bool {
        self.0.fetch_sub(1, Ordering::AcqRel) == 1
    }
}

/// A thread that makes librdkafka send the records it holds for `linger` right away. Requests
/// coalesce: one asked for while another is waiting is served by the waiting one.
struct Flusher {
    wanted: SyncSender<Arc<watch::Producer>>,
}

/// How long a flush keeps librdkafka's "send now" flag raised: long enough for every broker
/// thread to wake and see it, short enough not to hold back the next flush.
const FLUSH_WINDOW_MS: i32 = 1;

impl Flusher {
    fn spawn() -> std::io::Result<Self> {
        let (wanted, requests) = sync_channel::<Arc<watch::Producer>>(1);
        std::thread::Builder::new()
            .name("sluice-kafka-flush".into())
            .spawn(move || {
                // Ends when the backend, and with it the sender, is dropped.
                for producer in requests {
                    send_held_records(&producer);
                }
            })?;
        Ok(Self { wanted })
    }

    fn request(&self, producer: Arc<watch::Producer>) {
        // Full: a flush is already waiting to run, and sends these records too.
        let _ = self.wanted.try_send(producer);
    }
}

/// librdkafka's flush for [`FLUSH_WINDOW_MS`]: its broker threads are woken and send what they
/// hold without waiting out `linger.ms`; the call returns once every record in flight is
/// acknowledged or the window has passed (rdkafka's own `flush` raises the flag only for an
/// instant per loop, which a broker thread waking up misses). Blocks for up to the window.
pub fn send_held_records<C: rdkafka::client::ClientContext + 'static>(
    producer: &rdkafka::producer::FutureProducer<C>,
) {
    let client = producer.client().native_ptr();
    // SAFETY: `client` is the live handle of `producer`, which the caller holds for the call, and
    // librdkafka's flush may be called from any thread.
    unsafe {
        rdkafka::bindings::rd_kafka_flush(client, FLUSH_WINDOW_MS);
    }
}

/// Why a produce failed, and whether the producer that failed can be used again.
struct ProduceFailure {
    error: BackendError,
    /// The producer is fenced or lost its idempotence state: only a new producer can go on.
    producer_spent: bool,
}

fn failed(error: BackendError, producer_spent: bool) -> ProduceFailure {
    ProduceFailure {
        error,
        producer_spent,
    }
}

/// Errors after which an idempotent producer cannot be trusted to produce again: it is fenced,
/// lost its sequence state, or timed a message out (which leaves librdkafka's idempotence state
/// waiting on a broker that may never answer for it, as after a broker restart).
fn spends_the_producer(error: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        error,
        KafkaError::MessageProduction(
            ProducerFenced
                | InvalidProducerEpoch
                | OutOfOrderSequenceNumber
                | UnknownProducerId
                | MessageTimedOut
        )
    )
}

/// Hands `records` to the producer's queue for `log`, in order.
fn enqueue(
    producer: &watch::Producer,
    log: &str,
    records: &[Record],
) -> Result<Vec<DeliveryFuture>, ProduceFailure> {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
        let mut headers = Some(OwnedHeaders::new_with_capacity(4 + record.headers.len()));
        for_each_remote_header(record, |key, value| {
            let built = headers
                .take()
                .expect("headers are put back after each insert");
            headers = Some(built.insert(Header {
                key,
                value: Some(value.as_bytes()),
            }));
        });
        let headers = headers.expect("headers are put back after each insert");
        let mut message = FutureRecord::<[u8], [u8]>::to(log)
            .payload(&record.value[..])
            .headers(headers);
        if let Some(key) = &record.key {
            message = message.key(&key[..]);
        }
        match producer.send_result(message) {
            Ok(delivery) => deliveries.push(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                return Err(failed(
                    unavailable(KIND, "the producer's queue is full"),
                    false,
                ))
            }
            Err((e, _)) => {
                let spent = spends_the_producer(&e);
                return Err(failed(unavailable(KIND, e), spent));
            }
        }
    }
    Ok(deliveries)
}

/// Waits for every delivery's acknowledgement, at most `request_timeout`.
async fn acknowledged(
    deliveries: Vec<DeliveryFuture>,
    request_timeout: Duration,
) -> Result<Vec<Position>, ProduceFailure> {
    // One after another: reports arrive in about the order sent, so awaiting them in turn wakes
    // this task about once per broker response, with no per-delivery task to allocate (as
    // `join_all` of this many futures does).
    let in_turn = async {
        let mut acknowledged = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            acknowledged.push(delivery.await);
        }
        acknowledged
    };
    // librdkafka fails each message after `message.timeout.ms`; the outer bound is a backstop.
    let acknowledged = tokio::time::timeout(request_timeout + Duration::from_secs(1), in_turn)
        .await
        .map_err(|_| {
            let reason = format!("no acknowledgement from the brokers within {request_timeout:?}");
            failed(unavailable(KIND, reason), false)
        })?;
    acknowledged
        .into_iter()
        .map(|delivery| match delivery {
            Ok(Ok(delivery)) => Ok(Position {
                partition: Some(delivery.partition as u32),
                offset: delivery.offset as u64,
            }),
            Ok(Err((e, _))) => {
                let reason = format!("not acknowledged by the brokers: {e}");
                Err(failed(unavailable(KIND, reason), spends_the_producer(&e)))
            }
            Err(_) => Err(failed(
                unavailable(KIND, "the producer was shut down"),
                true,
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_of_overlapping_batches_flushes() {
        let handing_over = HandingOver::default();
        handing_over.start();
        assert!(handing_over.finish_last(), "alone, a batch flushes");

        handing_over.start();
        handing_over.start();
        assert!(!handing_over.finish_last(), "another is still handing over");
        handing_over.start();
        assert!(!handing_over.finish_last());
        assert!(handing_over.finish_last(), "the last one flushes for all");
    }
}
