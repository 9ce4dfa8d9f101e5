//! The Avro validation entry point (`CompiledSchema::validate`) on arbitrary bytes, with every
//! Avro schema of `tests/fixtures/avro/repo` in each encoding it accepts.

#![no_main]

mod schemas;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice::formats::{FormatKind, PayloadEncoding};

static VERSIONS: LazyLock<schemas::Versions> =
    LazyLock::new(|| schemas::load_versions("tests/fixtures/avro/repo", FormatKind::Avro));

fuzz_target!(|data: &[u8]| {
    VERSIONS.judge(data, &[PayloadEncoding::Avro, PayloadEncoding::Json, PayloadEncoding::ConfluentFramed]);
});
