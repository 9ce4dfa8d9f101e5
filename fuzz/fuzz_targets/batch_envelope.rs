//! The batch envelope parser (`messages:batch`) on arbitrary bodies, as a JSON array and as NDJSON.
//! Whatever it accepts, every item's payload must be a slice of what was sent or decoded base64.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::ingress::batch::parse_batch;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let headers = [("origin".to_owned(), "fuzz".to_owned())];
    for content_type in [Some("application/json"), Some("application/x-ndjson"), None] {
        if let Ok(items) = parse_batch(&body, content_type, Some(1), &headers) {
            for item in items {
                assert!(item.payload.len() <= body.len());
            }
        }
    }
});
