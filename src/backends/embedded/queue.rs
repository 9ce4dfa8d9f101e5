//! The embedded store behind [`StationQueue`]: its logs are read by offset (a partition is never
//! named), its groups and replay marks live in its metadata, and a replay under way is held in
//! memory — one process owns the store, so that is enough for at most once.

use std::time::Duration;

use async_trait::async_trait;

use super::EmbeddedStore;
use crate::backends::queues::{
    AckOutcome, ConsumeOptions, DeadLetterPage, Delivery, LogStats, ReplayClaim, StationQueue,
};
use crate::backends::BackendError;
use crate::model::{Position, Record};

/// The offsets of `messages` an embedded log can hold, and the rest (named with a partition).
fn split_offsets(messages: &[Position]) -> (Vec<u64>, Vec<Position>) {
    let mut offsets = Vec::with_capacity(messages.len());
    let mut foreign = Vec::new();
    for message in messages {
        match message.partition {
            None => offsets.push(message.offset),
            Some(_) => foreign.push(*message),
        }
    }
    (offsets, foreign)
}

#[async_trait]
impl StationQueue for EmbeddedStore {
    async fn consume(
        &self,
        log: &str,
        group: &str,
        options: &ConsumeOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        EmbeddedStore::consume(self, log, group, options).await
    }

    async fn admits_group(&self, log: &str, group: &str, max: usize) -> Result<bool, BackendError> {
        Ok(self.inner.groups.admits(log, group, max)?)
    }

    async fn ack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
    ) -> Result<AckOutcome, BackendError> {
        let (offsets, foreign) = split_offsets(messages);
        let mut outcome = EmbeddedStore::ack(self, log, group, &offsets).await?;
        outcome.unknown.extend(foreign);
        Ok(outcome)
    }

    async fn nack(
        &self,
        log: &str,
        group: &str,
        messages: &[Position],
        delay: Duration,
    ) -> Result<AckOutcome, BackendError> {
        let (offsets, foreign) = split_offsets(messages);
        let mut outcome = EmbeddedStore::nack(self, log, group, &offsets, delay).await?;
        outcome.unknown.extend(foreign);
        Ok(outcome)
    }

    async fn stats(&self, log: &str) -> Result<LogStats, BackendError> {
        Ok(EmbeddedStore::stats(self, log))
    }

    async fn dead_letters(
        &self,
        dead_letters: &str,
        from: Position,
        max: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        let mut page = DeadLetterPage::starting_at(from);
        if from.partition.is_none() {
            for (offset, record) in self.read(dead_letters, from.offset, max)? {
                page.push(Position::offset(offset), record);
            }
        }
        page.mark_replayed(|id| {
            let replayed_to = self.replayed_to(dead_letters, id.offset);
            std::future::ready(replayed_to.map(|at| at.map(Position::offset)))
        })
        .await?;
        Ok(page)
    }

    async fn dead_letter(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<Option<Record>, BackendError> {
        match id.partition {
            None => self.read_one(dead_letters, id.offset),
            Some(_) => Ok(None),
        }
    }

    async fn claim_replay(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<ReplayClaim, BackendError> {
        if let Some(offset) = self.replayed_to(dead_letters, id.offset)? {
            return Ok(ReplayClaim::Replayed(Position::offset(offset)));
        }
        let mut under_way = self.inner.replays_under_way.lock().expect("replays lock");
        if !under_way.insert((dead_letters.to_owned(), id.offset)) {
            return Ok(ReplayClaim::InProgress);
        }
        drop(under_way);
        // A replay that settled between the check above and the claim has marked it by now.
        if let Some(offset) = self.replayed_to(dead_letters, id.offset)? {
            self.release(dead_letters, id.offset);
            return Ok(ReplayClaim::Replayed(Position::offset(offset)));
        }
        Ok(ReplayClaim::Claimed)
    }

    async fn settle_replay(
        &self,
        dead_letters: &str,
        id: Position,
        forwarded_to: Option<Position>,
    ) -> Result<(), BackendError> {
        let marked = match forwarded_to {
            Some(position) => {
                self.mark_replayed(dead_letters, id.offset, position.offset)
                    .await
            }
            None => Ok(()),
        };
        self.release(dead_letters, id.offset);
        marked
    }
}

impl EmbeddedStore {
    fn release(&self, dead_letters: &str, id: u64) {
        self.inner
            .replays_under_way
            .lock()
            .expect("replays lock")
            .remove(&(dead_letters.to_owned(), id));
    }
}
