//! How deep and how large one message may be while a format judges it: the [`MessageLimits`]
//! every format receives with each message, and the JSON nesting check shared by every format
//! that reads JSON. A message past a limit fails like any invalid message (422, to the
//! DLQ) with a reason naming the `[limits]` key, and costs bounded work and stack to refuse.
//!
//! Limits on requests as a whole (body size, batch count, timeouts, rates) are the ingress's.

use super::Violation;

/// Deepest JSON nesting serde_json itself parses; `max_json_depth` may not exceed it.
pub const JSON_DEPTH_CEILING: usize = 128;
/// Deepest message nesting prost decodes; `max_protobuf_depth` may not exceed it.
pub const PROTOBUF_DEPTH_CEILING: usize = 100;

/// Per-message bounds, from `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Deepest nesting of arrays and objects in a JSON payload (`max_json_depth`).
    pub json_depth: usize,
    /// Deepest nesting of messages in a Protobuf payload (`max_protobuf_depth`).
    pub protobuf_depth: usize,
    /// Deepest selection nesting in a GraphQL document (`max_graphql_depth`); a schema's own
    /// `max_depth` may lower it.
    pub graphql_depth: usize,
    /// Most lexical tokens in a GraphQL document (`max_graphql_tokens`); a schema's own
    /// `max_tokens` may lower it.
    pub graphql_tokens: usize,
    /// Most steps one data-contract rule may take on one message, estimated before it runs
    /// (`max_rule_cost`).
    pub rule_cost: u64,
}

impl MessageLimits {
    /// Refuses bounds the formats' parsers cannot honour, naming the `[limits]` key.
    pub fn check(&self) -> Result<(), String> {
        if self.json_depth > JSON_DEPTH_CEILING {
            return Err(format!(
                "limits.max_json_depth is {}, but JSON nesting is refused past {JSON_DEPTH_CEILING} anyway; use at most {JSON_DEPTH_CEILING}",
                self.json_depth
            ));
        }
        if self.protobuf_depth > PROTOBUF_DEPTH_CEILING {
            return Err(format!(
                "limits.max_protobuf_depth is {}, but Protobuf decoding stops at {PROTOBUF_DEPTH_CEILING} levels anyway; use at most {PROTOBUF_DEPTH_CEILING}",
                self.protobuf_depth
            ));
        }
        Ok(())
    }
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self {
            json_depth: 64,
            protobuf_depth: 64,
            graphql_depth: 64,
            graphql_tokens: 15_000,
            rule_cost: 1_000_000,
        }
    }
}

/// Refuses JSON text nested deeper than `max` arrays and objects, before anything parses it.
///
/// Most messages have fewer brackets in all than the limit allows, which one vectorised count
/// shows; only the rest are scanned for their real depth (brackets inside strings do not count).
pub fn check_json_depth(payload: &[u8], max: usize) -> Result<(), Violation> {
    let brackets = payload.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if brackets <= max || json_depth(payload, max) <= max {
        return Ok(());
    }
    Err(json_too_deep(max))
}

/// The violation of JSON nested deeper than `max` arrays and objects.
pub fn json_too_deep(max: usize) -> Violation {
    Violation::whole_message(format!(
        "the message nests arrays and objects deeper than {max} levels (limits.max_json_depth)"
    ))
}

/// The violation of a payload that is not JSON.
pub fn not_json(error: &serde_json::Error) -> Violation {
    Violation::whole_message(format!("not valid JSON: {error}"))
}

/// The nesting depth of JSON text, counting no further than `max + 1`. Tolerant of malformed text:
/// the parser that runs next explains that.
fn json_depth(payload: &[u8], max: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &byte in payload {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > max {
                    break;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses a JSON payload within `limits`, explaining a refusal as a whole-message violation.
pub fn parse_json(
    payload: &[u8],
    limits: &MessageLimits,
) -> Result<serde_json::Value, Vec<Violation>> {
    check_json_depth(payload, limits.json_depth).map_err(|v| vec![v])?;
    serde_json::from_slice(payload).map_err(|e| vec![not_json(&e)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        assert!(check_json_depth(nested(5).as_bytes(), 5).is_ok());
        let refused = check_json_depth(nested(6).as_bytes(), 5).unwrap_err();
        assert!(
            refused.reason.contains("limits.max_json_depth"),
            "{refused:?}"
        );
        let in_strings = r#"{"a":"[[[[[[[[[[","b":"\"{{{{{{{{{{"}"#;
        assert!(check_json_depth(in_strings.as_bytes(), 2).is_ok());
        let siblings = r#"[[1],[2],[3],[4],[5],[6],[7]]"#;
        assert!(check_json_depth(siblings.as_bytes(), 2).is_ok());
    }

    #[test]
    fn parse_refuses_before_serde_does() {
        let limits = MessageLimits {
            json_depth: 3,
            ..MessageLimits::default()
        };
        let refused = parse_json(nested(4).as_bytes(), &limits).unwrap_err();
        assert!(refused[0].reason.contains("deeper than 3"));
        assert!(parse_json(nested(3).as_bytes(), &limits).is_ok());
        let deep = nested(10_000);
        let refused = parse_json(deep.as_bytes(), &MessageLimits::default()).unwrap_err();
        assert!(refused[0].reason.contains("deeper than 64"));
    }
}
