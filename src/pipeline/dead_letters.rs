//! A station's dead letters: browsed by id, and replayed — re-judged against today's schema and
//! forwarded to the station once they pass, at most once each, whichever gateway is asked.

use std::sync::Arc;

use super::judge::{Judge, Judged};
use super::to_the_end::ToTheEnd;
use super::{placement, Accepted, Incoming, Pipeline, PipelineError, REQUEST_ID_HEADER};
use crate::backends::queues::{replay_idempotency_key, DeadLetterPage, ReplayClaim};
use crate::backends::routing::Route;
use crate::metrics::ValidationTally;
use crate::model::{Position, Record};
use crate::registry::Station;

impl Pipeline {
    /// Up to `max` dead letters of `station` from id `from` on (the first of the log without one).
    pub async fn dead_letters(
        &self,
        station: &str,
        from: Option<&str>,
        max: usize,
    ) -> Result<DeadLetterPage, PipelineError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station)?;
        let from = match from {
            None => Position::offset(0),
            Some(text) => Position::parse(text).ok_or_else(|| {
                PipelineError::InvalidRequest(format!(
                    "`from` must be a dead letter id such as `15` (or `2-15` on a partitioned Kafka topic), not `{text}`"
                ))
            })?,
        };
        let route = self.backends.route(placement(&station)).await?;
        let max = max.clamp(1, self.limits.max_consume_messages);
        Ok(route
            .queue
            .dead_letters(&route.dead_letters, from, max)
            .await?)
    }

    /// Re-judges dead letter `id` against today's schema and forwards it to the station if it now
    /// passes. A dead letter is forwarded at most once: its replay is claimed on the backend
    /// first, so of concurrent replays through any number of gateways one forwards it. The replay
    /// runs to its end even when its caller stops waiting, so the claim is never left held.
    pub async fn replay(
        self: &Arc<Self>,
        station_name: &str,
        id: &str,
    ) -> Result<Accepted, PipelineError> {
        let pipeline = self.clone();
        let (station, id) = (station_name.to_owned(), id.to_owned());
        ToTheEnd::new(async move { pipeline.replay_claimed(&station, &id).await }).await
    }

    async fn replay_claimed(
        &self,
        station_name: &str,
        id: &str,
    ) -> Result<Accepted, PipelineError> {
        let snapshot = self.registry.snapshot();
        let station = self.station(&snapshot, station_name)?;
        let not_found = || PipelineError::DeadLetterNotFound {
            station: station.name.clone(),
            id: id.to_owned(),
        };
        let letter = Position::parse(id).ok_or_else(not_found)?;
        let route = self.backends.route(placement(&station)).await?;
        let dead_letters = route.dead_letters.as_ref();
        let record = route
            .queue
            .dead_letter(dead_letters, letter)
            .await?
            .ok_or_else(not_found)?;
        match route.queue.claim_replay(dead_letters, letter).await? {
            ReplayClaim::Claimed => {}
            ReplayClaim::Replayed(to) => {
                return Err(PipelineError::AlreadyReplayed {
                    station: station.name.clone(),
                    id: id.to_owned(),
                    to,
                })
            }
            ReplayClaim::InProgress => {
                return Err(PipelineError::ReplayInProgress {
                    station: station.name.clone(),
                    id: id.to_owned(),
                })
            }
        }
        let forwarded = self.forward(&station, &route, letter, record).await;
        let to = forwarded.as_ref().ok().map(|accepted| accepted.position);
        route.queue.settle_replay(dead_letters, letter, to).await?;
        forwarded
    }

    /// Judges dead letter `letter`'s `record` as a new message and appends it to the station if
    /// it passes.
    async fn forward(
        &self,
        station: &Station,
        route: &Route<'_>,
        letter: Position,
        record: Record,
    ) -> Result<Accepted, PipelineError> {
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
            idempotency_key: Some(replay_idempotency_key(&route.dead_letters, letter)),
            from_gateway: true,
            ..Incoming::default()
        };
        let mut tally = ValidationTally::default();
        let judge = Judge::new(station, self.limits.max_message_bytes, &self.message_limits);
        let judged = judge.judge(message, &mut tally);
        self.metrics.validated(&tally);
        match judged {
            Judged::Valid(record) => {
                let version = record.schema_version;
                let position = route.backend.append(&route.log, vec![record]).await?[0];
                Ok(Accepted {
                    station: station.name.clone(),
                    position,
                    schema_version: version,
                })
            }
            Judged::Invalid(_, mut report) => {
                report.dlq_id = Some(letter.to_string());
                Err(report.into_error())
            }
            Judged::Refused(error) => Err(error),
        }
    }
}
