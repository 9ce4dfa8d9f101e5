//! Reading a request: its body within a limit, and the `Sluice-*` headers a produce carries.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::inflate::{inflate_error, InflateError};
use crate::ingress::errors::ApiError;
use crate::model::time::now_ms;

/// The key of the limit on one message's body.
pub(super) const MESSAGE_LIMIT: &str = "limits.max_message_bytes";

/// Prefix of headers carried into the stored message's headers.
const HEADER_PREFIX: &str = "sluice-header-";

/// Why a body could not be read within its limit.
#[derive(Debug)]
pub enum BodyError {
    /// More bytes than the limit it is read within (decoded bytes, for a compressed body).
    TooLarge,
    /// A compressed body with more encoded bytes than any body may decode from.
    EncodedTooLarge { limit: usize },
    /// Compressed bodies being decoded hold the shared budget already.
    DecodingBusy { limit: usize },
    /// A body that does not decode in its coding, or could not be read: the sentence says which.
    Unreadable(String),
}

/// Reads a request body (decoded, if it was sent compressed) of at most `limit` bytes; each
/// front end words the refusals its own way.
pub async fn collect_within(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let error = match Limited::new(body, limit).collect().await {
        Ok(collected) => return Ok(collected.to_bytes()),
        Err(e) => e,
    };
    if error.downcast_ref::<LengthLimitError>().is_some() {
        return Err(BodyError::TooLarge);
    }
    Err(match inflate_error(&*error) {
        Some(&InflateError::Busy { limit }) => BodyError::DecodingBusy { limit },
        Some(&InflateError::EncodedTooLarge { limit }) => BodyError::EncodedTooLarge { limit },
        Some(invalid) => BodyError::Unreadable(invalid.to_string()),
        None => BodyError::Unreadable(format!("could not read the request body: {error}")),
    })
}

/// Reads a request body (decoded, if it was sent compressed), refusing it (413) past `limit`
/// bytes, the value of configuration key `key`.
pub(super) async fn read_body(
    body: Body,
    limit: usize,
    key: &'static str,
) -> Result<Bytes, ApiError> {
    collect_within(body, limit)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => ApiError::PayloadTooLarge { limit, key },
            BodyError::EncodedTooLarge { limit } => ApiError::PayloadTooLarge {
                limit,
                key: "limits.max_batch_bytes",
            },
            BodyError::DecodingBusy { limit } => ApiError::DecodingBusy { limit },
            BodyError::Unreadable(sentence) => ApiError::BadRequest(sentence),
        })
}

pub(super) fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::BadRequest(format!("header {name} is not visible ASCII")))
        })
        .transpose()
}

pub(super) fn schema_version_header(headers: &HeaderMap) -> Result<Option<u32>, ApiError> {
    header_text(headers, "sluice-schema-version")?
        .map(|v| {
            v.trim().parse::<u32>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "Sluice-Schema-Version must be a version number, not `{v}`"
                ))
            })
        })
        .transpose()
}

/// `Sluice-Deliver-After`: a delay (`"30s"`, `"5m"`) or an RFC 3339 time, as ms since the epoch.
pub(super) fn deliver_after_header(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(text) = header_text(headers, "sluice-deliver-after")? else {
        return Ok(None);
    };
    let text = text.trim();
    if let Ok(delay) = humantime::parse_duration(text) {
        return Ok(Some(now_ms().saturating_add(delay.as_millis() as u64)));
    }
    match text.parse::<jiff::Timestamp>() {
        Ok(at) => Ok(Some(at.as_millisecond().max(0) as u64)),
        Err(_) => Err(ApiError::BadRequest(format!(
            "Sluice-Deliver-After must be a delay such as `30s` or `5m`, or an RFC 3339 time such as `2026-01-31T09:00:00Z`, not `{text}`"
        ))),
    }
}

/// The `Sluice-Header-*` headers, without their prefix.
pub(super) fn carried_headers(headers: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    let mut carried = Vec::new();
    for (name, value) in headers {
        if let Some(short) = name.as_str().strip_prefix(HEADER_PREFIX) {
            let value = value
                .to_str()
                .map_err(|_| ApiError::BadRequest(format!("header {name} is not visible ASCII")))?;
            carried.push((short.to_owned(), value.to_owned()));
        }
    }
    Ok(carried)
}

pub(super) fn content_type(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    Ok(header_text(headers, header::CONTENT_TYPE.as_str())?.map(str::to_owned))
}
