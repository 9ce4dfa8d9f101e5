//! The Protobuf validation entry point (`CompiledSchema::validate`) on arbitrary bytes, with every
//! Protobuf schema of `tests/fixtures/protobuf/repo` in each encoding it accepts.

#![no_main]

mod schemas;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice::formats::{FormatKind, PayloadEncoding};

static VERSIONS: LazyLock<schemas::Versions> =
    LazyLock::new(|| schemas::load_versions("tests/fixtures/protobuf/repo", FormatKind::Protobuf));

fuzz_target!(|data: &[u8]| {
    VERSIONS.judge(data, &[PayloadEncoding::Protobuf, PayloadEncoding::Json, PayloadEncoding::ConfluentFramed]);
});
