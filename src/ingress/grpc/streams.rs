//! The two streaming calls' tasks. `ProduceStream` reads the client's messages in chunks, checks
//! each one's right, produces each run of consecutive messages to one station in one pipeline call
//! and answers every message with its index, in order. `Consume` long-polls the station for the
//! group and sends what it gets until the client has its fill or goes away.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument as _;

use super::messages::incoming;
use super::proto::produce_result::Outcome;
use super::proto::{ConsumedMessage, ProduceRequest, ProduceResult};
use super::status::rejection;
use crate::backends::queues::Delivery;
use crate::ingress::auth::{Authenticator, Need};
use crate::ingress::errors::ApiError;
use crate::pipeline::{Incoming, Pipeline};

/// Messages fetched per consume poll, and held for a slow consumer.
pub(super) const CONSUME_BATCH: usize = 64;
/// How long one consume poll waits for messages before polling again.
const CONSUME_POLL: Duration = Duration::from_secs(10);

/// One message of a stream: to produce, or already refused (its caller may not send it).
enum StreamItem {
    Produce { station: String, message: Incoming },
    Refused(ApiError),
}

/// What one `ProduceStream` call produces with.
pub(super) struct StreamProducer {
    pub pipeline: Arc<Pipeline>,
    pub auth: Arc<Authenticator>,
    /// The call's `authorization` metadata, checked for each message's station.
    pub authorization: Option<String>,
    pub request_id: Arc<str>,
    pub results: mpsc::Sender<Result<ProduceResult, Status>>,
}

impl StreamProducer {
    /// Produces every chunk of `inbound` in order and answers each message. What came before a
    /// broken request is answered; the stream then ends with that request's error.
    pub async fn run(self, inbound: impl Stream<Item = Vec<Result<ProduceRequest, Status>>>) {
        let mut inbound = std::pin::pin!(inbound);
        let mut index = 0u64;
        while let Some(chunk) = inbound.next().await {
            let (items, broken) = self.read(chunk);
            for outcome in produce_in_runs(&self.pipeline, items).await {
                let result = ProduceResult {
                    index,
                    outcome: Some(outcome),
                };
                index += 1;
                if self.results.send(Ok(result)).await.is_err() {
                    return; // the client went away
                }
            }
            if let Some(status) = broken {
                let _ = self.results.send(Err(status)).await;
                return;
            }
        }
    }

    /// The chunk's messages up to the first broken one, each checked against its station's right,
    /// and the broken one's error.
    fn read(
        &self,
        chunk: Vec<Result<ProduceRequest, Status>>,
    ) -> (Vec<StreamItem>, Option<Status>) {
        let mut items = Vec::with_capacity(chunk.len());
        for request in chunk {
            match request {
                Ok(request) => items.push(self.item(request)),
                Err(status) => return (items, Some(status)),
            }
        }
        (items, None)
    }

    fn item(&self, request: ProduceRequest) -> StreamItem {
        let need = Need::Produce(&request.station);
        match self.auth.check(self.authorization.as_deref(), need) {
            Ok(()) => {
                let (station, mut message) = incoming(request);
                message.request_id = Some(self.request_id.clone());
                StreamItem::Produce { station, message }
            }
            Err(refusal) => StreamItem::Refused(refusal),
        }
    }
}

/// Produces stream messages in order, one pipeline call per run of consecutive messages to one
/// station; a refused message is answered with its refusal.
async fn produce_in_runs(pipeline: &Arc<Pipeline>, items: Vec<StreamItem>) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        let (station, first) = match item {
            StreamItem::Refused(refusal) => {
                outcomes.push(Outcome::Rejected(rejection(&refusal)));
                continue;
            }
            StreamItem::Produce { station, message } => (station, message),
        };
        let mut run = vec![first];
        while let Some(StreamItem::Produce { message, .. }) = items
            .next_if(|next| matches!(next, StreamItem::Produce { station: s, .. } if *s == station))
        {
            run.push(message);
        }
        let count = run.len();
        let span = tracing::info_span!(
            "run",
            station = %station,
            schema = tracing::field::Empty,
            version = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        match pipeline.produce_batch(&station, run).instrument(span).await {
            Ok(results) => outcomes.extend(results.into_iter().map(|result| match result {
                Ok(accepted) => Outcome::Accepted(accepted.into()),
                Err(error) => Outcome::Rejected(rejection(&error.into())),
            })),
            Err(error) => {
                let rejected = rejection(&error.into());
                outcomes.extend((0..count).map(|_| Outcome::Rejected(rejected.clone())));
            }
        }
    }
    outcomes
}

/// One `Consume` call: a group member that wants `limit` messages (all there will be, for
/// `u64::MAX`) of a station.
pub(super) struct Consumer {
    pub pipeline: Arc<Pipeline>,
    pub station: String,
    pub group: String,
    pub limit: u64,
}

impl Consumer {
    /// How many to ask for in one poll, after `sent`.
    pub fn wanted(&self, sent: u64) -> usize {
        (self.limit - sent).min(CONSUME_BATCH as u64) as usize
    }

    /// Sends `first` (the first poll's deliveries), then polls and sends until the limit is
    /// reached, the client goes away (unacked leases then expire and come back) or a poll fails.
    pub async fn run(
        self,
        first: Vec<Delivery>,
        messages: mpsc::Sender<Result<ConsumedMessage, Status>>,
    ) {
        let mut deliveries = first;
        let mut sent = 0u64;
        loop {
            for delivery in deliveries {
                if messages.send(Ok(delivery.into())).await.is_err() {
                    return;
                }
                sent += 1;
            }
            if sent >= self.limit {
                return;
            }
            let poll =
                self.pipeline
                    .consume(&self.station, &self.group, self.wanted(sent), CONSUME_POLL);
            deliveries = tokio::select! {
                _ = messages.closed() => return,
                polled = poll => match polled {
                    Ok(deliveries) => deliveries,
                    Err(error) => {
                        let _ = messages.send(Err(error.into())).await;
                        return;
                    }
                },
            };
        }
    }
}
