//! The gRPC messages as the pipeline's types and back: a `ProduceRequest` as an [`Incoming`]
//! message, and what was stored, delivered or acknowledged as the responses.

use super::proto::{AckResponse, ConsumedMessage, Header, ProduceRequest, ProduceResponse};
use crate::backends::queues::{AckOutcome, Delivery};
use crate::model::Position;
use crate::pipeline::{Accepted, Incoming};

/// A request as the pipeline takes it: the station, and the message.
pub(super) fn incoming(request: ProduceRequest) -> (String, Incoming) {
    let ProduceRequest {
        station,
        payload,
        content_type,
        key,
        headers,
        schema_version,
        idempotency_key,
        deliver_after_ms,
    } = request;
    let message = Incoming {
        payload,
        content_type: (!content_type.is_empty()).then_some(content_type),
        key,
        headers: headers.into_iter().map(|h| (h.name, h.value)).collect(),
        schema_version,
        deliver_after_ms,
        idempotency_key: (!idempotency_key.is_empty()).then_some(idempotency_key),
        request_id: None,
        from_gateway: false,
    };
    (station, message)
}

impl From<Accepted> for ProduceResponse {
    fn from(accepted: Accepted) -> Self {
        Self {
            station: accepted.station,
            offset: accepted.position.offset,
            partition: accepted.position.partition,
            schema_version: accepted.schema_version,
        }
    }
}

impl From<Delivery> for ConsumedMessage {
    fn from(delivery: Delivery) -> Self {
        let record = delivery.record;
        let content_type = record.content.media_type().to_owned();
        Self {
            offset: delivery.position.offset,
            partition: delivery.position.partition,
            key: record.key,
            headers: record
                .headers
                .into_iter()
                .map(|(name, value)| Header { name, value })
                .collect(),
            value: record.value,
            content_type,
            schema_version: record.schema_version,
            delivery: delivery.delivery,
            received_at_ms: record.received_at_ms,
        }
    }
}

impl From<AckOutcome> for AckResponse {
    fn from(outcome: AckOutcome) -> Self {
        Self {
            acked: outcome.acked as u64,
            unknown: outcome.unknown.iter().map(|p| p.offset).collect(),
        }
    }
}

/// The messages an ack or nack names: `offsets`, in `partition` where one is given.
pub(super) fn positions(partition: Option<u32>, offsets: &[u64]) -> Vec<Position> {
    offsets
        .iter()
        .map(|&offset| Position { partition, offset })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn an_empty_content_type_means_the_default() {
        let (station, message) = incoming(ProduceRequest {
            station: "orders".into(),
            payload: Bytes::from_static(b"{}"),
            ..ProduceRequest::default()
        });
        assert_eq!(station, "orders");
        assert_eq!(message.content_type, None);
        assert_eq!(message.idempotency_key, None);
    }
}
