//! The batch envelope: a JSON array, or NDJSON (`application/x-ndjson`), of
//! `{key?, headers?, value | value_base64, content_type?, schema_version?}` items, turned into
//! pipeline messages. A JSON `value` is sliced out of the request body without copying, and the
//! request's own headers are held once for every item; the envelope being malformed refuses the
//! whole request (400), and so do more items than the limit (413, counted while parsing) and
//! request headers that would outweigh the body once applied to each item (431). Each item is
//! judged on its own later.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{Error as _, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer as _};
use serde_json::value::RawValue;

use super::errors::ApiError;
use crate::model::{Header, Headers};
use crate::pipeline::{Incoming, PipelineError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item<'a> {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, borrow)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    value_base64: Option<String>,
    /// Content type of a `value_base64` payload (default `application/octet-stream`).
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    schema_version: Option<u32>,
}

/// What a batch request says of all its items: how its body is framed, and the defaults
/// (`Sluice-Schema-Version`, `Sluice-Header-*`) that apply to every item not setting its own.
pub struct BatchRequest<'a> {
    pub content_type: Option<&'a str>,
    pub schema_version: Option<u32>,
    /// The request's headers, held once and shared by every item.
    pub headers: Arc<[Header]>,
    /// Most items the batch may hold (`limits.max_batch_messages`), counted while parsing.
    pub max_messages: usize,
}

impl BatchRequest<'_> {
    fn is_ndjson(&self) -> bool {
        self.content_type.is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/x-ndjson")
                || essence.eq_ignore_ascii_case("application/jsonl")
        })
    }

    /// Refuses request headers that would add more bytes to the stored batch, once per item,
    /// than its body holds: a batch is stored in at most about twice the bytes it was sent in.
    fn check_header_expansion(&self, body: &Bytes, items: usize) -> Result<(), ApiError> {
        let each: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        let added = each.saturating_mul(items);
        if items > 1 && added > body.len() {
            return Err(ApiError::HeaderExpansion {
                each,
                items,
                body: body.len(),
            });
        }
        Ok(())
    }
}

/// Parses a batch body into its messages, refusing it (413) as soon as it holds more than
/// `max_messages` items, before they are built.
pub fn parse_batch(body: &Bytes, request: &BatchRequest<'_>) -> Result<Vec<Incoming>, ApiError> {
    let items = if request.is_ndjson() {
        ndjson_items(body, request.max_messages)?
    } else {
        array_items(body, request.max_messages)?
    };
    request.check_header_expansion(body, items.len())?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| into_message(body, index, item, request))
        .collect()
}

fn too_many(limit: usize) -> ApiError {
    ApiError::Pipeline(PipelineError::TooManyMessages { limit })
}

/// The items of an NDJSON body, one per line that is not blank.
fn ndjson_items(body: &Bytes, max: usize) -> Result<Vec<Item<'_>>, ApiError> {
    let mut items = Vec::new();
    let lines = body.split(|b| *b == b'\n').enumerate();
    for (n, line) in lines.filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace)) {
        if items.len() == max {
            return Err(too_many(max));
        }
        let item = serde_json::from_slice(line)
            .map_err(|e| ApiError::BadRequest(format!("NDJSON line {}: {e}", n + 1)))?;
        items.push(item);
    }
    Ok(items)
}

/// The items of a JSON array body, stopping at the first past `max`.
fn array_items(body: &Bytes, max: usize) -> Result<Vec<Item<'_>>, ApiError> {
    let over = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = deserializer
        .deserialize_seq(AtMost { max, over: &over })
        .and_then(|items| deserializer.end().map(|()| items));
    match parsed {
        Ok(items) => Ok(items),
        Err(_) if over.get() => Err(too_many(max)),
        Err(e) => Err(ApiError::BadRequest(format!(
            "a batch is a JSON array of {{\"value\": ...}} items (or NDJSON with Content-Type: application/x-ndjson): {e}"
        ))),
    }
}

/// A JSON array of at most `max` items; `over` is set when it holds more.
struct AtMost<'c> {
    max: usize,
    over: &'c Cell<bool>,
}

impl<'de> Visitor<'de> for AtMost<'_> {
    type Value = Vec<Item<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while items.len() < self.max {
            match seq.next_element()? {
                Some(item) => items.push(item),
                None => return Ok(items),
            }
        }
        // One more item, of whatever shape, is one too many: skipped over, not built.
        match seq.next_element::<IgnoredAny>()? {
            None => Ok(items),
            Some(_) => {
                self.over.set(true);
                Err(A::Error::custom("too many items"))
            }
        }
    }
}

fn into_message(
    body: &Bytes,
    index: usize,
    item: Item<'_>,
    request: &BatchRequest<'_>,
) -> Result<Incoming, ApiError> {
    let (payload, content_type) = match (item.value, item.value_base64) {
        (Some(raw), None) => (
            body.slice_ref(raw.get().as_bytes()),
            Some(
                item.content_type
                    .unwrap_or_else(|| "application/json".to_owned()),
            ),
        ),
        (None, Some(encoded)) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|e| {
                    ApiError::BadRequest(format!("item {index}: value_base64 is not base64: {e}"))
                })?;
            (
                Bytes::from(decoded),
                Some(
                    item.content_type
                        .unwrap_or_else(|| "application/octet-stream".to_owned()),
                ),
            )
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "item {index}: give exactly one of `value` and `value_base64`"
            )))
        }
    };
    Ok(Incoming {
        payload,
        content_type,
        key: item.key.map(Bytes::from),
        headers: Headers::with_shared(request.headers.clone(), item.headers.into_iter().collect()),
        schema_version: item.schema_version.or(request.schema_version),
        ..Incoming::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(content_type: &'a str, headers: &[(&str, &str)]) -> BatchRequest<'a> {
        BatchRequest {
            content_type: Some(content_type),
            schema_version: None,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            max_messages: 10,
        }
    }

    #[test]
    fn json_array_values_are_sliced_from_the_body() {
        let body = Bytes::from_static(
            br#"[{"key":"k1","value":{"a": 1}},{"value_base64":"AAE=","content_type":"application/x-protobuf"}]"#,
        );
        let batch = BatchRequest {
            schema_version: Some(2),
            ..request("application/json", &[])
        };
        let messages = parse_batch(&body, &batch).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(&messages[0].payload[..], br#"{"a": 1}"#);
        assert_eq!(messages[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(messages[0].schema_version, Some(2));
        assert_eq!(&messages[1].payload[..], &[0u8, 1]);
        assert_eq!(
            messages[1].content_type.as_deref(),
            Some("application/x-protobuf")
        );
    }

    #[test]
    fn ndjson_lines_are_items_after_the_requests_headers() {
        let body =
            Bytes::from_static(b"{\"value\":1}\n\n{\"value\":\"two\",\"headers\":{\"h\":\"v\"}}\n");
        let batch = request("application/x-ndjson", &[("trace", "t")]);
        let messages = parse_batch(&body, &batch).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(&messages[1].payload[..], b"\"two\"");
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        assert_eq!(
            messages[1].headers,
            Headers::from(vec![pair("trace", "t"), pair("h", "v")])
        );
    }

    #[test]
    fn more_items_than_the_limit_are_refused_while_parsing() {
        for (body, ct) in [
            (
                "[{\"value\":1},{\"value\":2},{\"value\":3}]",
                "application/json",
            ),
            (
                "{\"value\":1}\n{\"value\":2}\n{\"value\":3}\n",
                "application/x-ndjson",
            ),
        ] {
            let batch = BatchRequest {
                max_messages: 2,
                ..request(ct, &[])
            };
            let err = parse_batch(&Bytes::from(body), &batch).unwrap_err();
            assert!(
                matches!(
                    err,
                    ApiError::Pipeline(PipelineError::TooManyMessages { limit: 2 })
                ),
                "{err:?}"
            );
        }
        // Past the limit, an item is refused before it is read: this one would not parse.
        let batch = BatchRequest {
            max_messages: 1,
            ..request("application/json", &[])
        };
        let err = parse_batch(&Bytes::from("[{\"value\":1},{\"bad\":2}]"), &batch).unwrap_err();
        assert!(matches!(err, ApiError::Pipeline(_)), "{err:?}");
    }

    #[test]
    fn request_headers_may_not_outweigh_the_body() {
        let body = Bytes::from("{\"value\":1}\n".repeat(5));
        let heavy = "x".repeat(20);
        let batch = request("application/x-ndjson", &[("big", heavy.as_str())]);
        let err = parse_batch(&body, &batch).unwrap_err();
        assert!(
            matches!(err, ApiError::HeaderExpansion { items: 5, .. }),
            "{err:?}"
        );
        let light = request("application/x-ndjson", &[("t", "1")]);
        assert_eq!(parse_batch(&body, &light).unwrap().len(), 5);
        // One item takes the request's headers as a single message would.
        let one = Bytes::from("{\"value\":1}\n");
        assert_eq!(parse_batch(&one, &batch).unwrap().len(), 1);
    }

    #[test]
    fn broken_envelopes_are_bad_requests() {
        for (body, ct) in [
            (&b"{\"value\":1}"[..], "application/json"),
            (b"[{\"valeu\":1}]", "application/json"),
            (
                b"[{\"value\":1,\"value_base64\":\"AA==\"}]",
                "application/json",
            ),
            (b"[{\"value\":1}", "application/json"),
            (b"[{\"value\":1}] x", "application/json"),
            (b"{\"value\":1}\nnot json\n", "application/x-ndjson"),
        ] {
            let err = parse_batch(&Bytes::copy_from_slice(body), &request(ct, &[])).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
        }
    }
}
