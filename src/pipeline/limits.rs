//! `[limits]`: the bounds every request is held to, and the check that the parsers and the store
//! underneath can honour them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backends::embedded::MESSAGE_BYTES_CEILING;
use crate::backends::routing::DEFAULT_MAX_IN_FLIGHT;
use crate::formats::limits::MessageLimits;

/// Limits applied to every request. Each is a config key under `[limits]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest single message body, in bytes (413 above it).
    pub max_message_bytes: usize,
    /// Most messages in one batch request (413 above it).
    pub max_batch_messages: usize,
    /// Largest batch request body, in bytes (413 above it).
    pub max_batch_bytes: usize,
    /// Most bytes of compressed request bodies being decoded at once, across every request (at
    /// least `max_batch_bytes`, so one body of any allowed size can be); past it a compressed
    /// body is refused 503 with `Retry-After`.
    pub max_decoding_bytes: usize,
    /// Most messages one consume request may return.
    pub max_consume_messages: usize,
    /// Most consumer groups one station may have (429 for a new one past it): on the embedded
    /// store and JetStream, every group the engine holds; on Kafka, those this gateway serves.
    pub max_groups_per_station: usize,
    /// Longest delay a nack may ask for before redelivery (400 past it).
    #[serde(with = "humantime_serde")]
    pub max_nack_delay: Duration,
    /// Longest long-poll a consume request may ask for.
    #[serde(with = "humantime_serde")]
    pub max_consume_wait: Duration,
    /// Most headers one message may carry (431 above it).
    pub max_headers: usize,
    /// Most bytes of header names and values one message may carry (431 above it).
    pub max_header_bytes: usize,
    /// Longest key a message may have, in bytes (431 above it).
    pub max_key_bytes: usize,
    /// Longest `Idempotency-Key`, in bytes (431 above it).
    pub max_idempotency_key_bytes: usize,
    /// How long a message's `Idempotency-Key` is remembered: a retry within it gets the first
    /// answer and stores nothing new.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// Most bytes the remembered `Idempotency-Key`s and their answers may take; past it the
    /// oldest are forgotten before their window ends.
    pub max_idempotency_bytes: usize,
    /// Most bytes one Avro value's length prefix may make the decoder allocate (422 above it).
    pub max_avro_allocation_bytes: usize,
    /// Most messages being stored on one backend at once; past it producers get 503 with
    /// `Retry-After` instead of queueing without bound.
    pub max_in_flight_messages: usize,
    /// Deepest nesting of arrays and objects in a JSON message (422 above it; at most 128).
    pub max_json_depth: usize,
    /// Deepest nesting of messages in a Protobuf message (422 above it; at most 100).
    pub max_protobuf_depth: usize,
    /// Deepest selection nesting in a GraphQL document (422 above it).
    pub max_graphql_depth: usize,
    /// Most lexical tokens in a GraphQL document (422 above it).
    pub max_graphql_tokens: usize,
    /// Most steps one data-contract rule may take on one message, estimated from the rule's size
    /// and the message's largest list or map before it runs (the rule fails past it).
    pub max_rule_cost: u64,
    /// Longest an HTTP request may take from its headers to its answer, reading the body included
    /// (408 past it); a consume's long-poll wait comes on top. gRPC calls get the same deadline
    /// unless the client sets a shorter one.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Limits {
    /// The bounds formats apply to each message.
    pub fn message_limits(&self) -> MessageLimits {
        MessageLimits {
            json_depth: self.max_json_depth,
            protobuf_depth: self.max_protobuf_depth,
            graphql_depth: self.max_graphql_depth,
            graphql_tokens: self.max_graphql_tokens,
            rule_cost: self.max_rule_cost,
        }
    }

    /// Refuses values the parsers and the store underneath cannot honour.
    pub fn check(&self) -> Result<(), String> {
        if self.max_message_bytes > MESSAGE_BYTES_CEILING {
            return Err(format!(
                "limits.max_message_bytes is {}, but the store takes messages of at most {MESSAGE_BYTES_CEILING} bytes (1 GiB); use at most that",
                self.max_message_bytes
            ));
        }
        self.message_limits().check()?;
        if self.request_timeout.is_zero() {
            return Err("limits.request_timeout must be longer than zero".into());
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        let message = MessageLimits::default();
        Self {
            max_message_bytes: 1024 * 1024,
            max_batch_messages: 10_000,
            max_batch_bytes: 64 * 1024 * 1024,
            max_decoding_bytes: 512 * 1024 * 1024,
            max_consume_messages: 1_000,
            max_consume_wait: Duration::from_secs(30),
            max_groups_per_station: 100,
            max_nack_delay: Duration::from_secs(7 * 24 * 3600),
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            max_key_bytes: 16 * 1024,
            max_idempotency_key_bytes: 256,
            idempotency_window: Duration::from_secs(120),
            max_idempotency_bytes: 64 * 1024 * 1024,
            max_in_flight_messages: DEFAULT_MAX_IN_FLIGHT,
            max_avro_allocation_bytes: 16 * 1024 * 1024,
            max_json_depth: message.json_depth,
            max_protobuf_depth: message.protobuf_depth,
            max_graphql_depth: message.graphql_depth,
            max_graphql_tokens: message.graphql_tokens,
            max_rule_cost: message.rule_cost,
            request_timeout: Duration::from_secs(30),
        }
    }
}
