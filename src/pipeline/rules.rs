//! A version's data-contract rules on a message its schema accepted: which `dlq` rules refuse it
//! (each a violation naming the rule, the field it reads and why) and which `warn` rules it fails
//! (named in a header of the stored message). Produce, replay and the dry run all judge here.

use bytes::Bytes;

use crate::formats::rules::{OnFailure, RuleLimits};
use crate::formats::{MessageLimits, PayloadEncoding};
use crate::model::Violation;
use crate::registry::SchemaVersion;

/// The header a stored message carries naming the `warn` rules it failed.
pub const WARNINGS_HEADER: &str = "sluice-rule-warnings";

/// The rules of `version` on `body` (the payload without a Confluent frame's schema id), sent
/// with `encoding` — the constraints its schema declares (Protobuf's `buf.validate`), then its
/// rules file: the `warn` rules it fails, or a violation for each constraint and `dlq` rule it
/// fails. With `station`, each failure is counted in its metrics.
pub(super) fn judge(
    version: &SchemaVersion,
    (body, encoding): (&Bytes, &PayloadEncoding),
    limits: &MessageLimits,
    station: Option<&str>,
) -> Result<Vec<String>, Vec<Violation>> {
    let mut violations = version
        .compiled
        .constraint_violations(body, encoding, limits);
    if let Some(station) = station {
        for violation in &violations {
            let constraint = violation.rule_name().unwrap_or("buf.validate");
            crate::metrics::rule_failed(station, constraint, "dlq");
        }
    }
    let Some(rules) = &version.rules else {
        return match violations.is_empty() {
            true => Ok(Vec::new()),
            false => Err(violations),
        };
    };
    let message = version
        .compiled
        .rules_message(body, encoding, limits)
        .map_err(|why| {
            vec![Violation {
                path: String::new(),
                schema_path: rules.file.clone(),
                reason: format!("the rules could not read the message: {why}"),
            }]
        })?;
    let limits = RuleLimits {
        max_cost: limits.rule_cost,
        ..RuleLimits::default()
    };
    let mut warnings = Vec::new();
    for failure in rules.set.evaluate(message, &limits) {
        let rule = failure.rule;
        let on_failure = match rule.on_failure {
            OnFailure::Warn => "warn",
            OnFailure::Dlq => "dlq",
        };
        if let Some(station) = station {
            crate::metrics::rule_failed(station, &rule.name, on_failure);
        }
        match rule.on_failure {
            OnFailure::Warn => warnings.push(rule.name.clone()),
            OnFailure::Dlq => violations.push(Violation {
                path: rule.path.clone().unwrap_or_default(),
                schema_path: format!("{}#{}", rules.file, rule.name),
                reason: failure.reason,
            }),
        }
    }
    if violations.is_empty() {
        Ok(warnings)
    } else {
        Err(violations)
    }
}
