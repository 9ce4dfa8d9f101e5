//! The batch envelope: a JSON array, or NDJSON (`application/x-ndjson`), of
//! `{key?, headers?, value | value_base64, content_type?, schema_version?}` items, turned into
//! pipeline messages. A JSON `value` is sliced out of the request body without copying; the
//! envelope being malformed refuses the whole request (400), while each item is judged on its own
//! later.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::errors::ApiError;
use crate::pipeline::Incoming;

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

/// Parses a batch body. `schema_version` and `headers` from the request apply to every item that
/// does not set its own.
pub fn parse_batch(
    body: &Bytes,
    content_type: Option<&str>,
    schema_version: Option<u32>,
    headers: &[(String, String)],
) -> Result<Vec<Incoming>, ApiError> {
    let ndjson = content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/x-ndjson")
            || essence.eq_ignore_ascii_case("application/jsonl")
    });
    let items: Vec<Item<'_>> = if ndjson {
        body.split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(n, line)| {
                serde_json::from_slice(line)
                    .map_err(|e| ApiError::BadRequest(format!("NDJSON line {}: {e}", n + 1)))
            })
            .collect::<Result<_, _>>()?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "a batch is a JSON array of {{\"value\": ...}} items (or NDJSON with Content-Type: application/x-ndjson): {e}"
            ))
        })?
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| into_message(body, index, item, schema_version, headers))
        .collect()
}

fn into_message(
    body: &Bytes,
    index: usize,
    item: Item<'_>,
    schema_version: Option<u32>,
    request_headers: &[(String, String)],
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
    let mut headers: Vec<(String, String)> = request_headers.to_vec();
    headers.extend(item.headers);
    Ok(Incoming {
        payload,
        content_type,
        key: item.key.map(Bytes::from),
        headers,
        schema_version: item.schema_version.or(schema_version),
        ..Incoming::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_array_values_are_sliced_from_the_body() {
        let body = Bytes::from_static(
            br#"[{"key":"k1","value":{"a": 1}},{"value_base64":"AAE=","content_type":"application/x-protobuf"}]"#,
        );
        let messages = parse_batch(&body, Some("application/json"), Some(2), &[]).unwrap();
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
    fn ndjson_lines_are_items() {
        let body =
            Bytes::from_static(b"{\"value\":1}\n\n{\"value\":\"two\",\"headers\":{\"h\":\"v\"}}\n");
        let messages = parse_batch(&body, Some("application/x-ndjson"), None, &[]).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(&messages[1].payload[..], b"\"two\"");
        assert_eq!(messages[1].headers, vec![("h".to_owned(), "v".to_owned())]);
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
            (b"{\"value\":1}\nnot json\n", "application/x-ndjson"),
        ] {
            let err = parse_batch(&Bytes::copy_from_slice(body), Some(ct), None, &[]).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
        }
    }
}
