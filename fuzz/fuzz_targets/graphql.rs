//! The GraphQl validation entry point (`CompiledSchema::validate`) on arbitrary bytes, with every
//! GraphQl schema of `tests/fixtures/graphql/repo` in each encoding it accepts.

#![no_main]

mod schemas;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sluice::formats::{FormatKind, PayloadEncoding};

static VERSIONS: LazyLock<schemas::Versions> =
    LazyLock::new(|| schemas::load_versions("tests/fixtures/graphql/repo", FormatKind::GraphQl));

fuzz_target!(|data: &[u8]| {
    VERSIONS.judge(data, &[PayloadEncoding::GraphQl, PayloadEncoding::Json]);
});
