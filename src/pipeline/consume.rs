//! Consumer groups on a station: long-poll consume with leases, ack, and nack with a delay, on
//! whichever backend stores the station. Each group reads the station's log on its own; a message
//! leased to one member is not handed to another until its lease ends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};

use super::{placement, Pipeline, PipelineError};
use crate::backends::queues::{AckOutcome, ConsumeOptions, Delivery, LogStats};
use crate::backends::routing::Route;
use crate::model::Position;
use crate::registry::Station;

/// What a station holds now: its log and its dead-letter log.
#[derive(Debug, Clone, Copy, Default)]
pub struct StationStats {
    pub messages: Option<LogStats>,
    pub dead_letters: Option<LogStats>,
}

impl Pipeline {
    /// The station a consumer-group operation works on, with the group name checked.
    fn group_station(&self, station: &str, group: &str) -> Result<Arc<Station>, PipelineError> {
        let station = self.station(&self.registry.snapshot(), station)?;
        check_group_name(group)?;
        Ok(station)
    }

    /// Refuses a group new to `station` once it has `limits.max_groups_per_station`.
    async fn admit_group(
        &self,
        route: &Route<'_>,
        station: &Station,
        group: &str,
    ) -> Result<(), PipelineError> {
        let max = self.limits.max_groups_per_station;
        if route.queue.admits_group(&route.log, group, max).await? {
            return Ok(());
        }
        crate::metrics::limit_hit("limits.max_groups_per_station");
        Err(PipelineError::TooManyGroups {
            station: station.name.clone(),
            limit: max,
        })
    }

    /// Long-polls up to `max` messages of `station` for `group`.
    pub async fn consume(
        &self,
        station: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, PipelineError> {
        let station = self.group_station(station, group)?;
        let route = self.backends.route(placement(&station)).await?;
        self.admit_group(&route, &station, group).await?;
        let options = ConsumeOptions {
            max: max.clamp(1, self.limits.max_consume_messages),
            wait: wait.min(self.limits.max_consume_wait),
            ack_timeout: station.ack_timeout,
            max_deliveries: station.max_deliveries,
            dead_letters: station.dlq.then(|| route.dead_letters.to_string()),
        };
        Ok(route.queue.consume(&route.log, group, &options).await?)
    }

    /// Acknowledges `messages` of `station` for `group`.
    pub async fn ack(
        &self,
        station: &str,
        group: &str,
        messages: &[Position],
    ) -> Result<AckOutcome, PipelineError> {
        let station = self.group_station(station, group)?;
        let route = self.backends.route(placement(&station)).await?;
        self.admit_group(&route, &station, group).await?;
        Ok(route.queue.ack(&route.log, group, messages).await?)
    }

    /// Gives `messages` back for redelivery after `delay`.
    pub async fn nack(
        &self,
        station: &str,
        group: &str,
        messages: &[Position],
        delay: Duration,
    ) -> Result<AckOutcome, PipelineError> {
        if delay > self.limits.max_nack_delay {
            crate::metrics::limit_hit("limits.max_nack_delay");
            return Err(PipelineError::InvalidRequest(format!(
                "a nack may delay redelivery by at most {} (limits.max_nack_delay)",
                humantime::format_duration(self.limits.max_nack_delay)
            )));
        }
        let station = self.group_station(station, group)?;
        let route = self.backends.route(placement(&station)).await?;
        self.admit_group(&route, &station, group).await?;
        Ok(route.queue.nack(&route.log, group, messages, delay).await?)
    }

    /// What `station` holds now; a count its backend cannot give at the moment is left out (and
    /// logged), so one unreachable engine does not fail a listing of every station.
    pub async fn station_stats(&self, station: &Station) -> StationStats {
        let route = match self.backends.route(placement(station)).await {
            Ok(route) => route,
            Err(e) => {
                tracing::debug!(station = %station.name, "no counts: {e}");
                return StationStats::default();
            }
        };
        let counted = |log: &str, result: Result<LogStats, _>| match result {
            Ok(stats) => Some(stats),
            Err(e) => {
                tracing::debug!(station = %station.name, log, "no counts: {e}");
                None
            }
        };
        let dead_letters = async {
            if station.dlq {
                route.queue.stats(&route.dead_letters).await
            } else {
                Ok(LogStats::default())
            }
        };
        let (messages, dead_letters) = tokio::join!(route.queue.stats(&route.log), dead_letters);
        StationStats {
            messages: counted(&route.log, messages),
            dead_letters: counted(&route.dead_letters, dead_letters),
        }
    }
}

/// Stations counted at once for a listing: counting on a remote backend is a request to its
/// brokers.
const COUNTS_AT_ONCE: usize = 32;

impl Pipeline {
    /// What each of `stations` holds now, in order, a few counted at once.
    pub async fn stations_stats<'a>(
        &'a self,
        stations: impl Iterator<Item = &'a Station>,
    ) -> Vec<StationStats> {
        let counts: Vec<BoxFuture<'a, StationStats>> = stations
            .map(|station| self.station_stats(station).boxed())
            .collect();
        futures_util::stream::iter(counts)
            .buffered(COUNTS_AT_ONCE)
            .collect()
            .await
    }
}

fn check_group_name(group: &str) -> Result<(), PipelineError> {
    let ok = !group.is_empty()
        && group.len() <= 200
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PipelineError::InvalidRequest(
            "`group` must be 1 to 200 letters, digits, '.', '_' or '-'".into(),
        ))
    }
}
