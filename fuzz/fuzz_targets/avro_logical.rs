//! Avro's logical types (decimals on bytes and fixed, big-decimal, uuid, dates, times, timestamps,
//! durations) on arbitrary bytes, as a binary datum and as JSON. Beyond not crashing or hanging
//! (a decimal as long as the input is judged in time linear in it), JSON that a version accepts
//! and normalizes to a binary datum must be a datum the same version accepts: no logical value
//! is stored as something else (a decimal too large for a fixed-width integer, say).

#![no_main]

mod schemas;

use std::sync::LazyLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::formats::{FormatKind, MessageLimits, Normalize, PayloadEncoding};

static VERSIONS: LazyLock<schemas::Versions> =
    LazyLock::new(|| schemas::load_versions("fuzz/schemas/avro-logical", FormatKind::Avro));

fuzz_target!(|data: &[u8]| {
    VERSIONS.judge(data, &[PayloadEncoding::Avro, PayloadEncoding::Json]);
    let payload = Bytes::copy_from_slice(data);
    let limits = MessageLimits::default();
    for (_, compiled) in &VERSIONS.compiled {
        let normalized = compiled.validate(&payload, &PayloadEncoding::Json, Normalize::Binary, &limits);
        if let Ok(valid) = normalized {
            let again = compiled.validate(&valid.value, &PayloadEncoding::Avro, Normalize::AsSent, &limits);
            assert!(again.is_ok(), "JSON {data:?} normalized to a datum its version refuses: {again:?}");
        }
    }
});
