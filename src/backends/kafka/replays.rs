//! Replay marks on Kafka: beside each dead-letter topic, a compacted topic of one partition
//! (`<dead-letter topic>.replays`) keyed by dead letter id, which every gateway reads in the same
//! order and so folds to the same marks. A replay claims its dead letter by appending a claim and
//! reading the topic up to it: the first claim after the last release wins, the others lose, in
//! every gateway's reading alike. The winner appends where the dead letter went (or a release,
//! when it could not forward it). A claim older than three request timeouts, whose gateway died
//! before settling it, is overtaken by the next. A claim that loses to a replay already done
//! appends that replay's mark again, so compaction, which keeps a key's last record, keeps it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::FutureRecord;

use super::{KafkaBackend, KIND};
use crate::backends::queues::{replay_claim_outlived, ReplayClaim};
use crate::backends::{unavailable, BackendError};
use crate::model::time::now_ms;
use crate::model::Position;

/// What the marks say of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mark {
    Claimed { by: String, at_ms: u64 },
    Replayed(Position),
}

/// One record of a marks topic.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Claim { by: String, at_ms: u64 },
    Release { by: String },
    Replayed(Position),
}

impl Entry {
    fn parse(text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        let entry = match (words.next()?, words.next()?, words.next()) {
            ("claim", by, Some(at)) => Self::Claim {
                by: by.to_owned(),
                at_ms: at.parse().ok()?,
            },
            ("release", by, None) => Self::Release { by: by.to_owned() },
            ("replayed", at, None) => Self::Replayed(Position::parse(at)?),
            _ => return None,
        };
        words.next().is_none().then_some(entry)
    }

    fn text(&self) -> String {
        match self {
            Self::Claim { by, at_ms } => format!("claim {by} {at_ms}"),
            Self::Release { by } => format!("release {by}"),
            Self::Replayed(at) => format!("replayed {at}"),
        }
    }
}

/// The marks of one dead-letter topic, folded from its marks topic up to `next`.
#[derive(Debug, Default)]
pub(super) struct Marks {
    next: i64,
    marks: HashMap<String, Mark>,
    /// The request timeout of the gateways that claim: a claim outlives its gateway after
    /// three ([`replay_claim_outlived`]).
    request_timeout: Duration,
}

impl Marks {
    fn apply(&mut self, key: &str, entry: Entry) {
        let current = self.marks.get(key);
        match entry {
            Entry::Claim { by, at_ms } => {
                let free = match current {
                    None => true,
                    Some(Mark::Claimed { at_ms: then, .. }) => {
                        replay_claim_outlived(*then, at_ms, self.request_timeout)
                    }
                    Some(Mark::Replayed(_)) => false,
                };
                if free {
                    self.marks
                        .insert(key.to_owned(), Mark::Claimed { by, at_ms });
                }
            }
            Entry::Release { by } => {
                if matches!(current, Some(Mark::Claimed { by: holder, .. }) if *holder == by) {
                    self.marks.remove(key);
                }
            }
            Entry::Replayed(at) => {
                self.marks.insert(key.to_owned(), Mark::Replayed(at));
            }
        }
    }

    /// Where dead letter `id` was replayed to, if it was.
    pub(super) fn replayed_to(&self, id: Position) -> Option<Position> {
        match self.marks.get(&id.to_string()) {
            Some(Mark::Replayed(at)) => Some(*at),
            _ => None,
        }
    }
}

/// Every marks topic this gateway has read, and the claims it holds.
#[derive(Default)]
pub(super) struct ReplayMarks {
    topics: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Marks>>>>,
    /// Claims won and not settled: (dead-letter topic, id) → claimant.
    won: Mutex<HashMap<(String, Position), String>>,
    claims: AtomicU64,
}

/// The marks topic of dead-letter topic `dead_letters`.
pub(super) fn marks_topic(dead_letters: &str) -> String {
    format!("{dead_letters}.replays")
}

impl KafkaBackend {
    /// The marks of `dead_letters`, read up to what its marks topic holds now.
    pub(super) async fn replay_marks(
        &self,
        dead_letters: &str,
    ) -> Result<tokio::sync::OwnedMutexGuard<Marks>, BackendError> {
        let topic = marks_topic(dead_letters);
        self.ensure_compacted_topic(&topic).await?;
        let marks = self
            .replays
            .topics
            .lock()
            .expect("marks lock")
            .entry(topic.clone())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Marks {
                    request_timeout: self.request_timeout,
                    ..Marks::default()
                }))
            })
            .clone();
        let mut marks = marks.lock_owned().await;
        loop {
            let read = self.reader.read(&topic, 0, marks.next, 10_000).await?;
            let Some(last) = read.last() else {
                return Ok(marks);
            };
            marks.next = last.offset + 1;
            for stored in read {
                let key = stored.record.key.as_deref().unwrap_or_default();
                let key = String::from_utf8_lossy(key);
                let value = String::from_utf8_lossy(&stored.record.value);
                if let Some(entry) = Entry::parse(&value) {
                    marks.apply(&key, entry);
                }
            }
        }
    }

    /// Appends `entry` for dead letter `id` to the marks topic of `dead_letters`; its offset.
    async fn append_mark(
        &self,
        dead_letters: &str,
        id: Position,
        entry: &Entry,
    ) -> Result<i64, BackendError> {
        let topic = marks_topic(dead_letters);
        let key = id.to_string();
        let value = entry.text();
        let record = FutureRecord::to(&topic).key(&key).payload(&value);
        let producer = self.producer.load_full();
        let delivery = producer
            .send(record, self.request_timeout)
            .await
            .map_err(|(e, _)| unavailable(KIND, format!("cannot write to `{topic}`: {e}")))?;
        Ok(delivery.offset)
    }

    pub(super) async fn claim(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<ReplayClaim, BackendError> {
        let key = id.to_string();
        let now = now_ms();
        match self.replay_marks(dead_letters).await?.marks.get(&key) {
            Some(Mark::Replayed(at)) => return Ok(ReplayClaim::Replayed(*at)),
            Some(Mark::Claimed { at_ms, .. })
                if !replay_claim_outlived(*at_ms, now, self.request_timeout) =>
            {
                return Ok(ReplayClaim::InProgress)
            }
            _ => {}
        }
        let by = format!(
            "{}.{}",
            self.instance,
            self.replays.claims.fetch_add(1, Ordering::Relaxed)
        );
        let claim = Entry::Claim {
            by: by.clone(),
            at_ms: now,
        };
        let written = self.append_mark(dead_letters, id, &claim).await?;
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let mark = loop {
            let marks = self.replay_marks(dead_letters).await?;
            if marks.next > written {
                break marks.marks.get(&key).cloned();
            }
            drop(marks);
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(
                    KIND,
                    "the replay claim did not come back in time",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(match mark {
            Some(Mark::Claimed { by: winner, .. }) if winner == by => {
                self.replays
                    .won
                    .lock()
                    .expect("claims lock")
                    .insert((dead_letters.to_owned(), id), by);
                ReplayClaim::Claimed
            }
            Some(Mark::Replayed(at)) => {
                // Keep the replay's mark the key's last record, whatever compaction keeps.
                self.append_mark(dead_letters, id, &Entry::Replayed(at))
                    .await?;
                ReplayClaim::Replayed(at)
            }
            _ => ReplayClaim::InProgress,
        })
    }

    pub(super) async fn settle(
        &self,
        dead_letters: &str,
        id: Position,
        forwarded_to: Option<Position>,
    ) -> Result<(), BackendError> {
        let by = self
            .replays
            .won
            .lock()
            .expect("claims lock")
            .remove(&(dead_letters.to_owned(), id));
        let entry = match (forwarded_to, by) {
            (Some(at), _) => Entry::Replayed(at),
            (None, Some(by)) => Entry::Release { by },
            (None, None) => return Ok(()),
        };
        self.append_mark(dead_letters, id, &entry).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks() -> Marks {
        Marks {
            request_timeout: Duration::from_secs(10),
            ..Marks::default()
        }
    }

    fn claim(by: &str, at_ms: u64) -> Entry {
        Entry::Claim {
            by: by.into(),
            at_ms,
        }
    }

    #[test]
    fn entries_read_back() {
        for entry in [
            claim("g1.4", 1_800_000_000_000),
            Entry::Release { by: "g1.4".into() },
            Entry::Replayed(Position::in_partition(1, 9)),
        ] {
            assert_eq!(Entry::parse(&entry.text()), Some(entry));
        }
        assert_eq!(Entry::parse("claim g1"), None);
        assert_eq!(Entry::parse("replayed 0-1 extra"), None);
    }

    #[test]
    fn the_first_claim_wins_until_released_or_stale() {
        let mut marks = marks();
        marks.apply("0-3", claim("a", 1_000));
        marks.apply("0-3", claim("b", 1_001));
        assert_eq!(
            marks.marks.get("0-3"),
            Some(&Mark::Claimed {
                by: "a".into(),
                at_ms: 1_000
            })
        );
        marks.apply("0-3", Entry::Release { by: "b".into() });
        assert!(marks.marks.contains_key("0-3"), "only the holder releases");
        marks.apply("0-3", Entry::Release { by: "a".into() });
        marks.apply("0-3", claim("b", 2_000));
        assert!(matches!(marks.marks.get("0-3"), Some(Mark::Claimed { by, .. }) if by == "b"));
        marks.apply("0-3", claim("c", 40_000));
        assert!(matches!(marks.marks.get("0-3"), Some(Mark::Claimed { by, .. }) if by == "c"));
    }

    #[test]
    fn a_replayed_letter_stays_replayed() {
        let mut marks = marks();
        marks.apply("0-3", claim("a", 1_000));
        marks.apply("0-3", Entry::Replayed(Position::in_partition(0, 7)));
        marks.apply("0-3", claim("b", 90_000));
        let id = Position::in_partition(0, 3);
        assert_eq!(marks.replayed_to(id), Some(Position::in_partition(0, 7)));
    }
}
