//! The JsonSchema validation entry point (`CompiledSchema::validate`) on arbitrary bytes, with every
//! JsonSchema schema of `schemas` in each encoding it accepts.

#![no_main]

mod schemas;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice::formats::{FormatKind, PayloadEncoding};

static VERSIONS: LazyLock<schemas::Versions> =
    LazyLock::new(|| schemas::load_versions("schemas", FormatKind::JsonSchema));

fuzz_target!(|data: &[u8]| {
    VERSIONS.judge(data, &[PayloadEncoding::Json, PayloadEncoding::ConfluentFramed]);
});
