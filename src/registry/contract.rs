//! A version's say on a message: its schema, then its data contract — the constraints the schema
//! declares (Protobuf's `buf.validate`) and the rules of its `vN.rules.toml`. Which refuse the
//! message (each a violation naming the constraint or rule, the field and why) and which `warn`
//! rules it fails. The rules read the message as the schema's validation decoded it, so it is
//! decoded once. The pipeline judges every message with it; schedules judge their message.

use bytes::Bytes;

use super::{SchemaVersion, VersionRules};
use crate::formats::rules::{Message, OnFailure, RuleLimits};
use crate::formats::{MessageLimits, Normalize, PayloadEncoding, Valid};
use crate::model::Violation;

/// What a version's contract says of one message its schema accepted.
#[derive(Debug, Default)]
pub struct Judged {
    /// A violation per constraint and `dlq` rule the message fails: it is refused when any.
    pub violations: Vec<Violation>,
    /// The `warn` rules it fails.
    pub warnings: Vec<String>,
}

/// `body` (without a Confluent frame's schema id) sent with `encoding`, judged by `version`: the
/// schema's violations when it refuses the message; else the valid message and what the
/// contract says of it.
pub fn validate(
    version: &SchemaVersion,
    body: &Bytes,
    encoding: &PayloadEncoding,
    normalize: Normalize,
    limits: &MessageLimits,
) -> Result<(Valid, Judged), Vec<Violation>> {
    let compiled = &version.compiled;
    let mut judged = Judged::default();
    let valid = match &version.rules {
        None => compiled.validate(body, encoding, normalize, limits)?,
        Some(rules) => {
            let mut read = |message: Result<Message<'_>, String>| {
                judged = judge_rules(rules, message, limits);
            };
            compiled.validate_and_read(body, encoding, normalize, limits, &mut read)?
        }
    };
    let mut constraints = compiled.constraint_violations(body, encoding, limits);
    if !constraints.is_empty() {
        constraints.append(&mut judged.violations);
        judged.violations = constraints;
    }
    Ok((valid, judged))
}

/// What `rules` say of a message, or of why it could not be read for them.
fn judge_rules(
    rules: &VersionRules,
    message: Result<Message<'_>, String>,
    limits: &MessageLimits,
) -> Judged {
    let message = match message {
        Ok(message) => message,
        Err(why) => {
            return Judged {
                violations: vec![Violation {
                    path: String::new(),
                    schema_path: rules.file.clone(),
                    reason: format!("the rules could not read the message: {why}"),
                }],
                warnings: Vec::new(),
            }
        }
    };
    let limits = RuleLimits {
        max_cost: limits.rule_cost,
        ..RuleLimits::default()
    };
    let mut judged = Judged::default();
    for failure in rules.set.evaluate(&message, &limits) {
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
