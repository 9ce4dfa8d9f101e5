//! What a producer sends beside the payload, checked before the message is judged: header names
//! and values that every backend can carry (so a message is refused alike whichever engine holds
//! the station, and nothing a client sends can break an engine's framing), no header in the
//! names the gateway and its engines reserve, and the key, headers, content type and
//! `Idempotency-Key` within their limits. Messages the gateway makes itself (a schedule's tick, a
//! replayed dead letter) carry its own headers and are not checked.

use super::{Incoming, Limits, PipelineError};
use crate::backends::is_reserved_header;

/// Longest `Content-Type` a message may name.
pub const MAX_CONTENT_TYPE_BYTES: usize = 256;

/// Refuses a message whose metadata a backend could not carry or that exceeds a limit.
pub fn check(message: &Incoming, limits: &Limits) -> Result<(), PipelineError> {
    if let Some(key) = &message.key {
        within(
            "the key",
            key.len(),
            "limits.max_key_bytes",
            limits.max_key_bytes,
        )?;
    }
    if let Some(key) = &message.idempotency_key {
        within(
            "Idempotency-Key",
            key.len(),
            "limits.max_idempotency_key_bytes",
            limits.max_idempotency_key_bytes,
        )?;
        if key.is_empty() || !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(invalid("Idempotency-Key", "must be printable ASCII"));
        }
    }
    if let Some(content_type) = &message.content_type {
        if content_type.len() > MAX_CONTENT_TYPE_BYTES {
            return Err(invalid("Content-Type", "is longer than 256 bytes"));
        }
        check_value("Content-Type", content_type)?;
    }
    check_headers(message, limits)
}

fn check_headers(message: &Incoming, limits: &Limits) -> Result<(), PipelineError> {
    let count = message.headers.len();
    if count > limits.max_headers {
        return Err(PipelineError::MetadataTooLarge {
            what: format!("{count} headers"),
            limit_key: "limits.max_headers",
            limit: limits.max_headers,
        });
    }
    let mut bytes = 0usize;
    for (name, value) in &message.headers {
        check_name(name)?;
        check_value(name, value)?;
        bytes += name.len() + value.len();
    }
    within(
        "the headers",
        bytes,
        "limits.max_header_bytes",
        limits.max_header_bytes,
    )
}

fn within(
    what: &str,
    size: usize,
    limit_key: &'static str,
    limit: usize,
) -> Result<(), PipelineError> {
    if size > limit {
        return Err(PipelineError::MetadataTooLarge {
            what: format!("{what} ({size} bytes)"),
            limit_key,
            limit,
        });
    }
    Ok(())
}

/// A header name is an HTTP token (RFC 9110: letters, digits and ``!#$%&'*+-.^_`|~``), which
/// every backend carries as it is, and is not one the gateway or an engine reserves.
fn check_name(name: &str) -> Result<(), PipelineError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(invalid(
            name,
            "a header name is letters, digits and !#$%&'*+-.^_`|~ only",
        ));
    }
    if is_reserved_header(name) {
        return Err(invalid(
            name,
            "this name is reserved: Sluice and its engines write headers of it (sluice-*, nats-*, content-type)",
        ));
    }
    Ok(())
}

/// A header value is text without control characters (a tab aside): no line break can end it
/// early on an engine that frames headers by lines.
fn check_value(name: &str, value: &str) -> Result<(), PipelineError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(
            name,
            "a header value may not hold control characters (line breaks included)",
        ));
    }
    Ok(())
}

fn invalid(name: &str, reason: &'static str) -> PipelineError {
    PipelineError::InvalidHeader {
        name: name.chars().take(64).collect(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn with_headers(headers: &[(&str, &str)]) -> Incoming {
        Incoming {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Incoming::default()
        }
    }

    fn refused(message: &Incoming) -> String {
        check(message, &Limits::default())
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn plain_headers_pass() {
        let message = with_headers(&[("trace-id", "t-42"), ("X_Tenant.v2", "acme corp\tü")]);
        assert!(check(&message, &Limits::default()).is_ok());
    }

    #[test]
    fn names_no_engine_can_carry_or_that_are_reserved_are_refused() {
        for name in ["has space", "colon:", "", "new\nline", "ümlaut"] {
            let reason = refused(&with_headers(&[(name, "v")]));
            assert!(reason.contains("letters, digits"), "{name:?}: {reason}");
        }
        for name in [
            "sluice-schema",
            "Sluice-Request-Id",
            "Nats-Msg-Id",
            "nats-expected-stream",
            "Content-Type",
        ] {
            let reason = refused(&with_headers(&[(name, "v")]));
            assert!(reason.contains("reserved"), "{name}: {reason}");
        }
    }

    #[test]
    fn values_with_line_breaks_are_refused() {
        for value in ["a\r\nNats-Msg-Id: x", "a\nb", "nul\0"] {
            let reason = refused(&with_headers(&[("h", value)]));
            assert!(reason.contains("control characters"), "{value:?}: {reason}");
        }
        let message = Incoming {
            content_type: Some("application/json\r\nx: y".into()),
            ..Incoming::default()
        };
        assert!(refused(&message).contains("Content-Type"));
    }

    #[test]
    fn sizes_past_their_limits_name_the_limit() {
        let limits = Limits::default();
        let many: Vec<(String, String)> = (0..=limits.max_headers)
            .map(|i| (format!("h{i}"), String::new()))
            .collect();
        let message = Incoming {
            headers: many.into(),
            ..Incoming::default()
        };
        assert!(refused(&message).contains("limits.max_headers"));
        let big = "v".repeat(limits.max_header_bytes);
        assert!(refused(&with_headers(&[("h", &big)])).contains("limits.max_header_bytes"));
        let message = Incoming {
            key: Some(Bytes::from(vec![b'k'; limits.max_key_bytes + 1])),
            ..Incoming::default()
        };
        assert!(refused(&message).contains("limits.max_key_bytes"));
        let message = Incoming {
            idempotency_key: Some("k".repeat(limits.max_idempotency_key_bytes + 1)),
            ..Incoming::default()
        };
        assert!(refused(&message).contains("limits.max_idempotency_key_bytes"));
        let message = Incoming {
            idempotency_key: Some("k\n".into()),
            ..Incoming::default()
        };
        assert!(refused(&message).contains("printable ASCII"));
    }
}
