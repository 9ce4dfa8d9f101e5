//! Consumer groups on a station: long-poll consume with leases, ack, and nack with a delay. Each
//! group reads the station's log on its own; a message leased to one member is not handed to
//! another until its lease ends.

use std::sync::Arc;
use std::time::Duration;

use super::{Pipeline, PipelineError};
use crate::backends::embedded::{AckOutcome, ConsumeOptions, Delivery, EmbeddedStore};
use crate::registry::Station;

impl Pipeline {
    /// The station and store a consumer-group operation works on, with the group name checked.
    fn group_target(
        &self,
        station: &str,
        group: &str,
    ) -> Result<(Arc<Station>, &EmbeddedStore), PipelineError> {
        let station = self.station(&self.registry.snapshot(), station)?;
        check_group_name(group)?;
        let store = self.embedded_for(&station)?;
        Ok((station, store))
    }

    /// Long-polls up to `max` messages of `station` for `group`.
    pub async fn consume(
        &self,
        station: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, PipelineError> {
        let (station, store) = self.group_target(station, group)?;
        let max = max.clamp(1, self.limits.max_consume_messages);
        let wait = wait.min(self.limits.max_consume_wait);
        let options = ConsumeOptions {
            max,
            wait,
            ack_timeout: station.ack_timeout,
            max_deliveries: station.max_deliveries,
            dead_letters: station.dlq.then(|| station.dlq_name.clone()),
        };
        Ok(store.consume(&station.name, group, &options).await?)
    }

    /// Acknowledges `offsets` of `station` for `group`.
    pub async fn ack(
        &self,
        station: &str,
        group: &str,
        offsets: &[u64],
    ) -> Result<AckOutcome, PipelineError> {
        let (station, store) = self.group_target(station, group)?;
        Ok(store.ack(&station.name, group, offsets).await?)
    }

    /// Gives `offsets` back for redelivery after `delay`.
    pub async fn nack(
        &self,
        station: &str,
        group: &str,
        offsets: &[u64],
        delay: Duration,
    ) -> Result<AckOutcome, PipelineError> {
        let (station, store) = self.group_target(station, group)?;
        Ok(store.nack(&station.name, group, offsets, delay).await?)
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
