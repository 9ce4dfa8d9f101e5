//! Dead letters on JetStream, and what a station holds. A dead letter's id is its sequence in the
//! stream of the dead-letter subject; a page is read by asking for the next message of that
//! subject from a sequence on. "Replayed" marks live in the key-value bucket `SLUICE_REPLAYS`
//! (key `<dead-letter stream>.<id>`, replicated like the streams): a replay claims its key with a
//! create, which only one of any number of concurrent gateways wins, and the winner writes where
//! the dead letter went. A claim whose gateway died before settling it is taken over (by
//! compare-and-set) once it is older than three request timeouts; the forward carries a
//! `Nats-Msg-Id`, so JetStream drops it should the dead gateway have forwarded it after all
//! (within the stream's duplicate window, two minutes unless configured otherwise).

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use bytes::Bytes;

use super::{NatsBackend, KIND};
use crate::backends::queues::{replay_claim_outlived, DeadLetterPage, LogStats, ReplayClaim};
use crate::backends::remote::record_from_remote;
use crate::backends::{unavailable, BackendError};
use crate::model::time::now_ms;
use crate::model::{Position, Record};

/// The bucket of replay marks.
const REPLAYS_BUCKET: &str = "SLUICE_REPLAYS";

/// A replay mark's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// A gateway claimed the replay at this time (ms since the epoch).
    Claimed(u64),
    /// Forwarded to this offset of the station.
    Replayed(u64),
}

impl Mark {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (kind, number) = text.split_once(' ')?;
        let number = number.parse().ok()?;
        match kind {
            "claimed" => Some(Self::Claimed(number)),
            "replayed" => Some(Self::Replayed(number)),
            _ => None,
        }
    }

    fn bytes(self) -> Bytes {
        match self {
            Self::Claimed(at) => format!("claimed {at}").into(),
            Self::Replayed(offset) => format!("replayed {offset}").into(),
        }
    }
}

impl NatsBackend {
    /// The bucket of replay marks, made on first use. Its stream is made here, as JetStream's
    /// key-value convention has it (`KV_<bucket>` on `$KV.<bucket>.>`, one value per key, no
    /// deletes but by marker), rather than by the client's bucket creation, which asks for account
    /// details nats-server 2.9 does not answer in the shape it expects.
    async fn replay_marks(&self) -> Result<&kv::Store, BackendError> {
        self.replays
            .get_or_try_init(|| async {
                if let Ok(store) = self
                    .bounded(self.jetstream.get_key_value(REPLAYS_BUCKET))
                    .await
                {
                    return Ok(store);
                }
                let config = stream::Config {
                    name: format!("KV_{REPLAYS_BUCKET}"),
                    description: Some("Dead letters Sluice replayed, and replays under way".into()),
                    subjects: vec![format!("$KV.{REPLAYS_BUCKET}.>")],
                    max_messages_per_subject: 1,
                    storage: stream::StorageType::File,
                    num_replicas: self.replicas,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                };
                self.bounded(self.jetstream.get_or_create_stream(config))
                    .await?;
                self.bounded(self.jetstream.get_key_value(REPLAYS_BUCKET))
                    .await
            })
            .await
    }

    /// The key of dead letter `id` of `dead_letters` in the replay bucket.
    async fn mark_key(&self, dead_letters: &str, id: Position) -> Result<String, BackendError> {
        Ok(format!(
            "{}.{}",
            self.stream_of(dead_letters).await?,
            id.offset
        ))
    }

    /// What the replay bucket says of dead letter `id`.
    async fn mark(&self, dead_letters: &str, id: Position) -> Result<Option<Mark>, BackendError> {
        let key = self.mark_key(dead_letters, id).await?;
        let value = self.bounded(self.replay_marks().await?.get(key)).await?;
        Ok(value.as_deref().and_then(Mark::parse))
    }

    pub(super) async fn claim(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<ReplayClaim, BackendError> {
        let marks = self.replay_marks().await?;
        let key = self.mark_key(dead_letters, id).await?;
        let now = now_ms();
        match marks.create(&key, Mark::Claimed(now).bytes()).await {
            Ok(_) => return Ok(ReplayClaim::Claimed),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable(KIND, format!("cannot claim a replay: {e}"))),
        }
        let Some(entry) = self.bounded(marks.entry(key.clone())).await? else {
            return Ok(ReplayClaim::InProgress);
        };
        match Mark::parse(&entry.value) {
            Some(Mark::Replayed(offset)) => Ok(ReplayClaim::Replayed(Position::offset(offset))),
            Some(Mark::Claimed(at)) if !replay_claim_outlived(at, now, self.request_timeout) => {
                Ok(ReplayClaim::InProgress)
            }
            // A claim its gateway never settled, or a value that is not a mark: take it over,
            // unless another gateway does so first.
            _ => match marks
                .update(&key, Mark::Claimed(now).bytes(), entry.revision)
                .await
            {
                Ok(_) => Ok(ReplayClaim::Claimed),
                Err(_) => Ok(ReplayClaim::InProgress),
            },
        }
    }

    pub(super) async fn settle(
        &self,
        dead_letters: &str,
        id: Position,
        forwarded_to: Option<Position>,
    ) -> Result<(), BackendError> {
        let marks = self.replay_marks().await?;
        let key = self.mark_key(dead_letters, id).await?;
        match forwarded_to {
            Some(position) => self
                .bounded(marks.put(key, Mark::Replayed(position.offset).bytes()))
                .await
                .map(drop),
            None => self.bounded(marks.delete(key)).await,
        }
    }

    /// The stored message of `subject` at `from` or the first after it.
    async fn next_message<I>(
        &self,
        stream: &async_nats::jetstream::stream::Stream<I>,
        subject: &str,
        from: u64,
    ) -> Result<Option<(u64, Record)>, BackendError> {
        let asked = stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject)
            .send();
        let message = match tokio::time::timeout(self.request_timeout, asked).await {
            Err(_) => return Err(self.timed_out()),
            Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Ok(Err(e)) => return Err(unavailable(KIND, format!("cannot read `{subject}`: {e}"))),
            Ok(Ok(message)) => message,
        };
        let stored_at_ms = (message.time.unix_timestamp_nanos() / 1_000_000) as u64;
        let headers = message.headers.iter().flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.as_ref(), value.as_str()))
        });
        let record = record_from_remote(headers, message.payload.clone(), None, stored_at_ms);
        Ok(Some((message.sequence, record)))
    }

    pub(super) async fn dead_letter_page(
        &self,
        dead_letters: &str,
        from: Position,
        max: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        let mut page = DeadLetterPage::starting_at(from);
        let Some(stream_name) = self.existing_stream_of(dead_letters).await? else {
            return Ok(page);
        };
        if from.partition.is_some() {
            return Ok(page);
        }
        let stream = self
            .bounded(self.jetstream.get_stream_no_info(&stream_name))
            .await?;
        let mut seq = from.offset.max(1);
        while page.letters.len() < max {
            let Some((at, record)) = self.next_message(&stream, dead_letters, seq).await? else {
                break;
            };
            page.push(Position::offset(at), record);
            seq = at + 1;
        }
        page.mark_replayed(|id| async move {
            Ok(match self.mark(dead_letters, id).await? {
                Some(Mark::Replayed(offset)) => Some(Position::offset(offset)),
                Some(Mark::Claimed(_)) | None => None,
            })
        })
        .await?;
        Ok(page)
    }

    pub(super) async fn one_dead_letter(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<Option<Record>, BackendError> {
        if id.partition.is_some() || id.offset == 0 {
            return Ok(None);
        }
        let Some(stream_name) = self.existing_stream_of(dead_letters).await? else {
            return Ok(None);
        };
        let stream = self
            .bounded(self.jetstream.get_stream_no_info(&stream_name))
            .await?;
        Ok(self
            .next_message(&stream, dead_letters, id.offset)
            .await?
            .filter(|(at, _)| *at == id.offset)
            .map(|(_, record)| record))
    }

    /// What the stream holding `subject` holds (the whole stream's counts, where it holds other
    /// subjects too); nothing for a subject no stream holds yet.
    pub(super) async fn subject_stats(&self, subject: &str) -> Result<LogStats, BackendError> {
        let Some(stream_name) = self.existing_stream_of(subject).await? else {
            return Ok(LogStats::default());
        };
        let stream = self
            .bounded(self.jetstream.get_stream(&stream_name))
            .await?;
        let state = &stream.cached_info().state;
        Ok(LogStats {
            messages: state.messages,
            first_offset: state.first_sequence,
            next_offset: state.last_sequence + 1,
            bytes: Some(state.bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_read_back() {
        for mark in [Mark::Claimed(1_800_000_000_000), Mark::Replayed(42)] {
            assert_eq!(Mark::parse(&mark.bytes()), Some(mark));
        }
        assert_eq!(Mark::parse(b"replayed"), None);
        assert_eq!(Mark::parse(b"forwarded 3"), None);
    }
}
