//! The batch envelope parser (`messages:batch`) on arbitrary requests, as a JSON array and as
//! NDJSON, with the request's `Sluice-Header-*` headers; then each item's metadata check, as
//! `produce` runs it. Whatever the parser accepts: at most the item limit, every payload a slice
//! of what was sent or decoded base64, and the request's headers adding at most the body's size
//! across the items. Whatever the check lets through: header names that are HTTP tokens outside
//! the reserved ones and values without line breaks, which every backend carries.

#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::backends::is_reserved_header;
use sluice::ingress::batch::{parse_batch, BatchRequest};
use sluice::model::Header;
use sluice::pipeline::{check_metadata, Limits};

const MAX_ITEMS: usize = 64;

/// The request's headers from the input's first line, `name=value` pairs separated by `;`.
fn request_headers(line: &[u8]) -> Arc<[Header]> {
    String::from_utf8_lossy(line)
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let headers = request_headers(line);
    let each: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    let body = Bytes::copy_from_slice(rest);
    let limits = Limits::default();
    for content_type in [Some("application/json"), Some("application/x-ndjson"), None] {
        let request = BatchRequest {
            content_type,
            schema_version: Some(1),
            headers: headers.clone(),
            max_messages: MAX_ITEMS,
        };
        let Ok(items) = parse_batch(&body, &request) else {
            continue;
        };
        assert!(items.len() <= MAX_ITEMS);
        if items.len() > 1 {
            assert!(each * items.len() <= body.len(), "headers outweigh the body");
        }
        for item in items {
            assert!(item.payload.len() <= body.len());
            if check_metadata(&item, &limits).is_err() {
                continue;
            }
            for (name, value) in &item.headers {
                assert!(!name.is_empty());
                assert!(name.bytes().all(|b| b.is_ascii_graphic() && b != b':'), "{name:?}");
                assert!(!is_reserved_header(name), "{name:?}");
                assert!(!value.contains(['\r', '\n', '\0']), "{value:?}");
            }
        }
    }
});
