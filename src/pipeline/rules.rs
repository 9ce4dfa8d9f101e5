//! A version's data contract in the pipeline: the registry's judgment ([`contract::judge`]),
//! counted per station and rule, its `warn` rules named in a header of the stored message.
//! Produce, replay and the dry run all judge here.

use bytes::Bytes;

use crate::formats::{MessageLimits, PayloadEncoding};
use crate::model::Violation;
use crate::registry::{contract, SchemaVersion};

/// The header a stored message carries naming the `warn` rules it failed.
pub const WARNINGS_HEADER: &str = "sluice-rule-warnings";

/// The contract of `version` on `body` (the payload without a Confluent frame's schema id), sent
/// with `encoding` ([`contract::judge`]): the `warn` rules it fails, or a violation for each
/// constraint and `dlq` rule it fails. With `station`, each failure is counted in its metrics.
pub(super) fn judge(
    version: &SchemaVersion,
    (body, encoding): (&Bytes, &PayloadEncoding),
    limits: &MessageLimits,
    station: Option<&str>,
) -> Result<Vec<String>, Vec<Violation>> {
    let judged = contract::judge(version, body, encoding, limits);
    if let Some(station) = station {
        let refused = judged.violations.iter().filter_map(Violation::rule_name);
        for rule in refused {
            crate::metrics::rule_failed(station, rule, "dlq");
        }
        for rule in &judged.warnings {
            crate::metrics::rule_failed(station, rule, "warn");
        }
    }
    match judged.violations.is_empty() {
        true => Ok(judged.warnings),
        false => Err(judged.violations),
    }
}
