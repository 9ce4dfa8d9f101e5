//! Why a message failed its schema: where in the message, which rule, and a sentence. Formats
//! produce violations, dead letters keep them, and every front end reports them.

use serde::{Deserialize, Serialize};

/// One reason a message failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON pointer (or field path) into the message; empty for the whole message.
    pub path: String,
    /// Where in the schema the failing rule is; empty when the message as a whole is unreadable.
    /// (Always serialized: dead letters store violations in a non-self-describing encoding.)
    pub schema_path: String,
    pub reason: String,
}

/// What follows the file in the `schema_path` of a violated Protobuf `buf.validate` constraint:
/// `schemas/payments/v1.proto#buf.validate:string.min_len`.
pub const CONSTRAINT_MARK: &str = "#buf.validate:";

impl Violation {
    /// The data-contract rule that failed, for a violation of one: its `schema_path` is the
    /// rules file and the rule's name, `schemas/orders/v2.rules.toml#positive_total`, or the
    /// `.proto` and the id of the `buf.validate` constraint (`string.min_len`).
    pub fn rule_name(&self) -> Option<&str> {
        if let Some((_, id)) = self.schema_path.split_once(CONSTRAINT_MARK) {
            return Some(id);
        }
        self.schema_path
            .rsplit_once('#')
            .filter(|(file, _)| file.ends_with(".rules.toml"))
            .map(|(_, name)| name)
    }

    /// A violation of the whole message, such as bytes that are not JSON at all.
    pub fn whole_message(reason: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            schema_path: String::new(),
            reason: reason.into(),
        }
    }
}
