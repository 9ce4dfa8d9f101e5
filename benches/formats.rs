//! Per format: the raw library's own decode/validate of a message against the same work through
//! Sluice — the format layer (`CompiledSchema::validate`) and the pipeline's dry run (snapshot,
//! schema and version lookup, validation). Messages are the test fixtures made by each format's
//! reference tooling (see `tests/fixtures/*/make_fixtures.py`).
//!
//! Each group ends with the same ratios measured interleaved (raw and Sluice alternating), the
//! figures to quote: criterion's functions run one after another, and this machine drifts.
//!
//! Run: `cargo bench --bench formats`

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sluice::backends::embedded::config::FsyncPolicy;
use sluice::backends::embedded::EmbeddedStore;
use sluice::backends::routing::Backends;
use sluice::formats::{Normalize, PayloadEncoding};
use sluice::pipeline::Limits;
use sluice::pipeline::Pipeline;
use sluice::registry::{load, source, Registry};

fn fixtures(path: &str) -> std::path::PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    root.join("tests/fixtures").join(path)
}

fn pipeline(repo: &str, store_dir: &Path) -> Pipeline {
    let files = source::read_directory(&fixtures(repo)).unwrap();
    let revision = files.fingerprint();
    let snapshot = load::build(Arc::new(files), revision, &[], load::History::Unknown).unwrap();
    let registry = Arc::new(Registry::serving(repo.into(), snapshot));
    Pipeline::new(
        registry,
        Backends::with_defaults(EmbeddedStore::open(store_dir, FsyncPolicy::Never).unwrap()),
        Limits::default(),
    )
}

fn read(path: &str) -> Bytes {
    Bytes::from(std::fs::read(fixtures(path)).unwrap())
}

/// Benchmarks raw vs Sluice for one message of one schema.
fn compare(
    c: &mut Criterion,
    group_name: &str,
    pipeline: &Pipeline,
    schema: &str,
    payload: &Bytes,
    content_type: &str,
    raw: impl Fn(&Bytes),
) {
    let encoding = PayloadEncoding::from_content_type(Some(content_type));
    let snapshot = pipeline.registry().snapshot();
    let compiled = snapshot.schema(schema).unwrap().versions()[0]
        .compiled
        .clone();
    assert!(compiled
        .validate(payload, &encoding, Normalize::AsSent, &Default::default())
        .is_ok());
    assert!(
        pipeline
            .dry_run(schema, None, payload, Some(content_type))
            .unwrap()
            .valid
    );

    common::raw_versus(
        c,
        group_name,
        ("raw_library", &|| raw(payload)),
        &[
            ("sluice_format_validate", &|| {
                compiled
                    .validate(payload, &encoding, Normalize::AsSent, &Default::default())
                    .unwrap();
            }),
            ("sluice_pipeline_dry_run", &|| {
                pipeline
                    .dry_run(schema, None, payload, Some(content_type))
                    .unwrap();
            }),
        ],
    );
}

fn formats(c: &mut Criterion) {
    let store = tempfile::tempdir().unwrap();

    // Protobuf: prost-reflect's dynamic decode of the same descriptor.
    let protobuf = pipeline("protobuf/repo", &store.path().join("protobuf"));
    let pool = protox::Compiler::new([fixtures("protobuf/repo/schemas")])
        .unwrap()
        .open_file("orders/v1.proto")
        .unwrap()
        .descriptor_pool();
    let order = pool.get_message_by_name("acme.Order").unwrap();
    compare(
        c,
        "protobuf_order_56_bytes",
        &protobuf,
        "orders",
        &read("protobuf/messages/order_valid.bin"),
        "application/x-protobuf",
        |payload| {
            prost_reflect::DynamicMessage::decode(order.clone(), payload.as_ref()).unwrap();
        },
    );

    // Avro: apache-avro's datum decode with the same schema.
    let avro = pipeline("avro/repo", &store.path().join("avro"));
    let click_schema = apache_avro::Schema::parse_str(
        &std::fs::read_to_string(fixtures("avro/repo/schemas/clicks/v1.avsc")).unwrap(),
    )
    .unwrap();
    compare(
        c,
        "avro_click_datum",
        &avro,
        "clicks",
        &read("avro/messages/click_valid.avro"),
        "avro/binary",
        |payload| {
            let mut slice = payload.as_ref();
            apache_avro::from_avro_datum(&click_schema, &mut slice, None).unwrap();
        },
    );

    // GraphQL: apollo-compiler parsing and validating the same document against the same SDL.
    let graphql = pipeline("graphql/repo", &store.path().join("graphql"));
    let sdl = std::fs::read_to_string(fixtures("graphql/repo/schemas/shop/v1.graphql")).unwrap();
    let schema = apollo_compiler::Schema::parse_and_validate(sdl, "shop.graphql").unwrap();
    let document = Bytes::from_static(
        b"query Q($id: ID!) { order(id: $id) { id status total { amount currency } items { sku qty } customer { name } } }",
    );
    compare(
        c,
        "graphql_document",
        &graphql,
        "shop",
        &document,
        "application/graphql",
        |payload| {
            let text = std::str::from_utf8(payload).unwrap();
            apollo_compiler::ExecutableDocument::parse_and_validate(&schema, text, "q.graphql")
                .unwrap();
        },
    );
}

criterion_group!(benches, formats);
criterion_main!(benches);
