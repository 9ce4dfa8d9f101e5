//! Dead letters on Kafka, and what a topic holds. A dead letter's id names its partition and
//! offset in the dead-letter topic (`2-15`); a page lists a partition from an offset on, then the
//! partitions after it from their start, so `next` is again such an id.

use super::reader::Stored;
use super::KafkaBackend;
use crate::backends::queues::{DeadLetterPage, LogStats};
use crate::backends::BackendError;
use crate::model::{Position, Record};

impl KafkaBackend {
    pub(super) async fn dead_letter_page(
        &self,
        dead_letters: &str,
        from: Position,
        max: usize,
    ) -> Result<DeadLetterPage, BackendError> {
        let partitions = self.reader.partitions(dead_letters).await?;
        let first = from.partition.unwrap_or(0);
        let mut page = DeadLetterPage::starting_at(Position::in_partition(first, from.offset));
        let mut partition = first as i32;
        let mut offset = from.offset as i64;
        while partition < partitions && page.letters.len() < max {
            let wanted = max - page.letters.len();
            let read = self
                .reader
                .read(dead_letters, partition, offset, wanted)
                .await?;
            let full = read.len() == wanted;
            for Stored {
                partition,
                offset,
                record,
            } in read
            {
                page.push(
                    Position::in_partition(partition as u32, offset as u64),
                    record,
                );
            }
            if full {
                break;
            }
            partition += 1;
            offset = 0;
            if partition < partitions {
                page.resume_at(Position::in_partition(partition as u32, 0));
            }
        }
        let marks = self.replay_marks(dead_letters).await?;
        page.mark_replayed(|id| std::future::ready(Ok(marks.replayed_to(id))))
            .await?;
        Ok(page)
    }

    pub(super) async fn one_dead_letter(
        &self,
        dead_letters: &str,
        id: Position,
    ) -> Result<Option<Record>, BackendError> {
        let partition = id.partition.unwrap_or(0) as i32;
        let read = self
            .reader
            .read(dead_letters, partition, id.offset as i64, 1)
            .await?;
        Ok(read
            .into_iter()
            .find(|stored| stored.offset == id.offset as i64)
            .map(|stored| stored.record))
    }

    /// What `topic` holds: messages between the watermarks of all its partitions (on a compacted
    /// topic, an upper bound).
    pub(super) async fn topic_stats(&self, topic: &str) -> Result<LogStats, BackendError> {
        let watermarks = self.reader.watermarks(topic).await?;
        let messages = watermarks
            .iter()
            .map(|(low, high)| (high - low).max(0) as u64)
            .sum();
        Ok(LogStats {
            messages,
            first_offset: watermarks
                .iter()
                .map(|w| w.0.max(0) as u64)
                .min()
                .unwrap_or(0),
            next_offset: watermarks
                .iter()
                .map(|w| w.1.max(0) as u64)
                .max()
                .unwrap_or(0),
            bytes: None,
        })
    }
}
