//! A version's data contract on a message its schema accepted: the constraints its schema
//! declares (Protobuf's `buf.validate`), then the rules of its `vN.rules.toml`. Which refuse the
//! message (each a violation naming the constraint or rule, the field and why) and which `warn`
//! rules it fails. The pipeline judges every message with it; schedules judge their message.

use bytes::Bytes;

use super::SchemaVersion;
use crate::formats::rules::{OnFailure, RuleLimits};
use crate::formats::{MessageLimits, PayloadEncoding};
use crate::model::Violation;

/// What a version's contract says of one message.
#[derive(Debug, Default)]
pub struct Judged {
    /// A violation per constraint and `dlq` rule the message fails: it is refused when any.
    pub violations: Vec<Violation>,
    /// The `warn` rules it fails.
    pub warnings: Vec<String>,
}

/// The contract of `version` on `body` (without a Confluent frame's schema id) sent with
/// `encoding`.
pub fn judge(
    version: &SchemaVersion,
    body: &Bytes,
    encoding: &PayloadEncoding,
    limits: &MessageLimits,
) -> Judged {
    let mut judged = Judged {
        violations: version
            .compiled
            .constraint_violations(body, encoding, limits),
        warnings: Vec::new(),
    };
    let Some(rules) = &version.rules else {
        return judged;
    };
    let message = match version.compiled.rules_message(body, encoding, limits) {
        Ok(message) => message,
        Err(why) => {
            judged.violations = vec![Violation {
                path: String::new(),
                schema_path: rules.file.clone(),
                reason: format!("the rules could not read the message: {why}"),
            }];
            return judged;
        }
    };
    let limits = RuleLimits {
        max_cost: limits.rule_cost,
        ..RuleLimits::default()
    };
    for failure in rules.set.evaluate(message, &limits) {
        let rule = failure.rule;
        match rule.on_failure {
            OnFailure::Warn => judged.warnings.push(rule.name.clone()),
            OnFailure::Dlq => judged.violations.push(Violation {
                path: rule.path.clone().unwrap_or_default(),
                schema_path: format!("{}#{}", rules.file, rule.name),
                reason: failure.reason,
            }),
        }
    }
    judged
}
