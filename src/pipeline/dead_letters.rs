//! A station's dead letters: browsed by id, and replayed — re-judged against today's schema and
//! forwarded to the station once they pass, at most once each.

use super::judge::{Judge, Judged};
use super::{placement, Accepted, Incoming, Pipeline, PipelineError, REQUEST_ID_HEADER};
use crate::metrics::ValidationTally;
use crate::model::Record;

/// A dead letter as stored: its id in the station's dead-letter queue, the record (with why it
/// was refused), and where it was replayed to, once it was.
#[derive(Debug)]
pub struct StoredDeadLetter {
    pub id: u64,
    pub record: Record,
    pub replayed_to: Option<u64>,
}

impl Pipeline {
    /// Up to `max` dead letters of `station` from id `from` on.
    pub fn dead_letters(
        &self,
        station: &str,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredDeadLetter>, PipelineError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station)?;
        let store = self.embedded_for(&station)?;
        let max = max.clamp(1, self.limits.max_consume_messages);
        store
            .read(&station.dlq_name, from, max)?
            .into_iter()
            .map(|(id, record)| {
                let replayed_to = store.replayed_to(&station.dlq_name, id)?;
                Ok(StoredDeadLetter {
                    id,
                    record,
                    replayed_to,
                })
            })
            .collect()
    }

    /// Re-judges dead letter `id` against today's schema and forwards it to the station if it now
    /// passes. A dead letter is forwarded at most once.
    pub async fn replay(&self, station_name: &str, id: &str) -> Result<Accepted, PipelineError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station_name)?;
        let store = self.embedded_for(&station)?;
        let not_found = || PipelineError::DeadLetterNotFound {
            station: station.name.clone(),
            id: id.to_owned(),
        };
        let id: u64 = id.parse().map_err(|_| not_found())?;
        let _one_at_a_time = self.replay_lock.lock().await;
        if let Some(offset) = store.replayed_to(&station.dlq_name, id)? {
            return Err(PipelineError::AlreadyReplayed {
                station: station.name.clone(),
                id,
                offset,
            });
        }
        let record = store
            .read_one(&station.dlq_name, id)?
            .ok_or_else(not_found)?;
        let content_type = record
            .dead_letter
            .as_ref()
            .and_then(|d| d.content_type.clone());
        let message = Incoming {
            payload: record.value,
            content_type,
            key: record.key,
            headers: record
                .headers
                .into_iter()
                .filter(|(name, _)| name != REQUEST_ID_HEADER)
                .collect(),
            ..Incoming::default()
        };
        let mut tally = ValidationTally::default();
        let judge = Judge::new(
            &station,
            self.limits.max_message_bytes,
            &self.message_limits,
        );
        let judged = judge.judge(message, &mut tally);
        self.metrics.validated(&tally);
        match judged {
            Judged::Valid(record) => {
                let version = record.schema_version;
                let route = self.backends.route(placement(&station)).await?;
                let position = route.backend.append(&route.log, vec![record]).await?[0];
                store
                    .mark_replayed(&station.dlq_name, id, position.offset)
                    .await?;
                Ok(Accepted {
                    station: station.name.clone(),
                    position,
                    schema_version: version,
                })
            }
            Judged::Invalid(_, mut report) => {
                report.dlq_id = Some(id.to_string());
                Err(PipelineError::SchemaViolation(Box::new(report)))
            }
            Judged::Refused(error) => Err(error),
        }
    }
}
