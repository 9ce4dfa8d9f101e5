//! A batch's valid records on their way to the station's log, handed to the backend a chunk at a
//! time while the rest of the batch is still being judged ([`Backend::send_chunk`]), so a remote
//! backend's brokers work during validation instead of after it. Chunks are handed over in order
//! and each is in the backend's hands before the next is sent; once one cannot be sent, no later
//! record is sent either, so nothing lands ahead of a message the producer must retry. While a
//! request of several records hands them over, the backend knows it ([`Backend::request_started`]
//! until [`Backend::request_complete`]), so it can send what it holds once no such request is
//! still under way.

use std::time::Instant;

use futures_util::future::join_all;

use crate::backends::{Acknowledgement, Backend, BackendError};
use crate::metrics::PipelineMetrics;
use crate::model::{Position, Record};

pub(super) struct Sending<'a> {
    backend: &'a dyn Backend,
    log: &'a str,
    metrics: &'a PipelineMetrics,
    chunk: usize,
    /// Judged, not yet handed over.
    pending: Vec<Record>,
    /// Each chunk handed over (or refused), with its record count, in order.
    sent: Vec<(usize, Result<Acknowledgement<'a>, BackendError>)>,
    /// Why a chunk could not be sent: every later record gets this answer unsent.
    refused: Option<BackendError>,
    records: usize,
    started: Option<Instant>,
    /// Held while a request of several records is handing them over.
    handing_over: Option<HandingOver<'a>>,
}

/// Tells the backend a request of several records is handing them over, from its making until it
/// is dropped: when the request has handed over its last record, or is given up half way.
struct HandingOver<'a>(&'a dyn Backend);

impl<'a> HandingOver<'a> {
    fn start(backend: &'a dyn Backend) -> Self {
        backend.request_started();
        Self(backend)
    }
}

impl Drop for HandingOver<'_> {
    fn drop(&mut self) {
        self.0.request_complete();
    }
}

impl<'a> Sending<'a> {
    /// Ready to send up to `messages` records of one request to `log`.
    pub(super) fn new(
        backend: &'a dyn Backend,
        log: &'a str,
        metrics: &'a PipelineMetrics,
        messages: usize,
    ) -> Self {
        Self {
            backend,
            log,
            metrics,
            chunk: backend.send_chunk().max(1),
            pending: Vec::new(),
            sent: Vec::new(),
            refused: None,
            records: 0,
            started: None,
            handing_over: (messages > 1).then(|| HandingOver::start(backend)),
        }
    }

    /// Adds a valid record; returns its index among the batch's valid records.
    pub(super) async fn push(&mut self, record: Record) -> usize {
        self.pending.push(record);
        self.records += 1;
        if self.pending.len() >= self.chunk {
            self.send_pending().await;
        }
        self.records - 1
    }

    async fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pending);
        let count = records.len();
        self.started.get_or_insert_with(Instant::now);
        let handed = match &self.refused {
            Some(refusal) => Err(refusal.clone()),
            None => self.backend.send(self.log, records).await,
        };
        if let Err(refusal) = &handed {
            self.refused.get_or_insert_with(|| refusal.clone());
        }
        self.sent.push((count, handed));
    }

    /// Sends what is left and waits for every acknowledgement: one answer per valid record, in
    /// the order they were pushed.
    pub(super) async fn finish(mut self) -> Vec<Result<Position, BackendError>> {
        self.send_pending().await;
        drop(self.handing_over.take());
        let kind = self.backend.kind();
        let chunks = join_all(self.sent.into_iter().map(|(count, handed)| async move {
            let positions = match handed {
                Ok(acknowledgement) => acknowledgement.await,
                Err(refusal) => Err(refusal),
            };
            match positions {
                Ok(positions) if positions.len() == count => {
                    positions.into_iter().map(Ok).collect()
                }
                Ok(positions) => vec![
                    Err(BackendError::Unavailable {
                        backend: kind.name(),
                        reason: format!(
                            "{} positions acknowledged for {count} records",
                            positions.len()
                        ),
                    });
                    count
                ],
                Err(error) => vec![Err(error); count],
            }
        }))
        .await;
        if let Some(started) = self.started {
            self.metrics
                .appended(self.backend.kind(), started.elapsed());
        }
        chunks.into_iter().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::model::{BackendKind, ContentKind, Provenance};

    /// Takes chunks of three, keeps what it is sent, and refuses the send numbered `refuse`.
    struct Chunked {
        refuse: usize,
        sends: Mutex<Vec<Vec<Bytes>>>,
        /// The number of sends made when each `request_started` came.
        starts: Mutex<Vec<usize>>,
        /// The number of sends made when each `request_complete` came.
        completions: Mutex<Vec<usize>>,
    }

    impl Chunked {
        fn refusing(refuse: usize) -> Self {
            Self {
                refuse,
                sends: Mutex::default(),
                starts: Mutex::default(),
                completions: Mutex::default(),
            }
        }
    }

    #[async_trait]
    impl Backend for Chunked {
        fn kind(&self) -> BackendKind {
            BackendKind::Nats
        }

        async fn send<'a>(
            &'a self,
            _log: &'a str,
            records: Vec<Record>,
        ) -> Result<Acknowledgement<'a>, BackendError> {
            let mut sends = self.sends.lock().unwrap();
            if sends.len() == self.refuse {
                sends.push(Vec::new());
                return Err(BackendError::Unavailable {
                    backend: "nats",
                    reason: "refused".into(),
                });
            }
            let first = sends.iter().map(Vec::len).sum::<usize>() as u64;
            sends.push(records.iter().map(|r| r.value.clone()).collect());
            let positions = (first..first + records.len() as u64).map(Position::offset);
            Ok(Box::pin(std::future::ready(Ok(positions.collect()))))
        }

        async fn runs_schedules(&self) -> Result<bool, BackendError> {
            Ok(true)
        }

        async fn check_ready(&self) -> Result<(), BackendError> {
            Ok(())
        }

        fn send_chunk(&self) -> usize {
            3
        }

        fn request_started(&self) {
            let sends = self.sends.lock().unwrap().len();
            self.starts.lock().unwrap().push(sends);
        }

        fn request_complete(&self) {
            let sends = self.sends.lock().unwrap().len();
            self.completions.lock().unwrap().push(sends);
        }
    }

    fn record(i: usize) -> Record {
        Record {
            received_at_ms: 0,
            deliver_after_ms: None,
            key: None,
            headers: crate::model::Headers::default(),
            value: Bytes::from(i.to_string()),
            content: ContentKind::Json,
            schema_version: None,
            dead_letter: None,
            provenance: Provenance::default(),
        }
    }

    async fn send_eight(backend: &Chunked) -> Vec<Result<Position, BackendError>> {
        let metrics = PipelineMetrics::default();
        let mut sending = Sending::new(backend, "log", &metrics, 8);
        for i in 0..8 {
            assert_eq!(sending.push(record(i)).await, i);
        }
        sending.finish().await
    }

    #[tokio::test]
    async fn records_go_in_chunks_in_order_and_each_gets_its_own_position() {
        let backend = Chunked::refusing(usize::MAX);
        let answers = send_eight(&backend).await;
        let offsets: Vec<u64> = answers.iter().map(|a| a.as_ref().unwrap().offset).collect();
        assert_eq!(offsets, (0..8).collect::<Vec<_>>());
        let sizes: Vec<usize> = backend.sends.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 2]);
    }

    #[tokio::test]
    async fn after_a_refused_chunk_nothing_later_is_sent_and_it_all_gets_the_refusal() {
        let backend = Chunked::refusing(1);
        let answers = send_eight(&backend).await;
        assert!(answers[..3].iter().all(Result::is_ok), "{answers:?}");
        assert!(answers[3..].iter().all(Result::is_err), "{answers:?}");
        // The first chunk and the refused one; the last two records were never sent.
        assert_eq!(backend.sends.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_backend_hears_once_a_request_of_several_records_is_all_handed_over() {
        let backend = Chunked::refusing(usize::MAX);
        send_eight(&backend).await;
        // Started before the first send; complete after the last of the three, not before.
        assert_eq!(*backend.starts.lock().unwrap(), vec![0]);
        assert_eq!(*backend.completions.lock().unwrap(), vec![3]);

        let single = Chunked::refusing(usize::MAX);
        let metrics = PipelineMetrics::default();
        let mut sending = Sending::new(&single, "log", &metrics, 1);
        sending.push(record(0)).await;
        sending.finish().await;
        // One record: nothing to hurry, it may share a request with others.
        assert!(single.starts.lock().unwrap().is_empty());
        assert!(single.completions.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_request_given_up_half_way_still_tells_the_backend_it_is_done() {
        let backend = Chunked::refusing(usize::MAX);
        let metrics = PipelineMetrics::default();
        let mut sending = Sending::new(&backend, "log", &metrics, 8);
        for i in 0..4 {
            sending.push(record(i)).await;
        }
        // The producer went away before the rest of its batch was judged.
        drop(sending);
        assert_eq!(*backend.starts.lock().unwrap(), vec![0]);
        assert_eq!(*backend.completions.lock().unwrap(), vec![1]);
    }
}
