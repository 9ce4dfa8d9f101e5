//! A version's say on a message in the pipeline: the registry's judgment
//! ([`contract::validate`]: schema, then data contract), its contract failures counted per
//! station and rule, its `warn` rules named in a header of the stored message. Produce, replay
//! and the dry run all judge here.

use bytes::Bytes;

use super::error::Breach;
use crate::formats::{MessageLimits, Normalize, PayloadEncoding, Valid};
use crate::model::Violation;
use crate::registry::{contract, SchemaVersion};

/// The header a stored message carries naming the `warn` rules it failed.
pub const WARNINGS_HEADER: &str = "sluice-rule-warnings";

/// `version`'s verdict on `body` (the payload without a Confluent frame's schema id), sent with
/// `encoding` ([`contract::validate`]): the valid message and the `warn` rules it fails, or the
/// violations that refuse it and whether its schema or its contract did. With `station`, each
/// contract failure is counted in its metrics.
pub(super) fn validate(
    version: &SchemaVersion,
    (body, encoding): (&Bytes, &PayloadEncoding),
    normalize: Normalize,
    limits: &MessageLimits,
    station: Option<&str>,
) -> Result<(Valid, Vec<String>), (Vec<Violation>, Breach)> {
    let (valid, judged) = contract::validate(version, body, encoding, normalize, limits)
        .map_err(|violations| (violations, Breach::Schema))?;
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
        true => Ok((valid, judged.warnings)),
        false => Err((judged.violations, Breach::Rules)),
    }
}
