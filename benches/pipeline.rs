//! JSON Schema validation: the raw `jsonschema` crate (parse + `is_valid`) against the same work
//! done through Sluice — the format layer as the pipeline calls it, the pipeline's dry run
//! (snapshot, station/version lookup, validation), and a full produce into the embedded store.
//! `rules/*`: the dry run of the same schema with three typical data-contract rules against the
//! schema alone.
//!
//! The JSON group ends with its ratios measured interleaved (raw and Sluice alternating), the
//! figures to quote: criterion's functions run one after another, and this machine drifts.
//!
//! Run: `cargo bench --bench pipeline`

mod common;

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::backends::embedded::config::FsyncPolicy;
use sluice::backends::embedded::EmbeddedStore;
use sluice::backends::routing::Backends;
use sluice::formats::RepoFiles;
use sluice::formats::{Normalize, PayloadEncoding};
use sluice::pipeline::Limits;
use sluice::pipeline::{Incoming, Pipeline};
use sluice::registry::{load, Registry};

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["order_id", "customer", "items", "total"],
  "properties": {
    "order_id": {"type": "string", "minLength": 1},
    "customer": {"type": "string", "format": "email"},
    "items": {"type": "array", "minItems": 1, "items": {
      "type": "object", "required": ["sku", "qty"],
      "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
    }},
    "total": {"type": "number", "minimum": 0}
  }
}"#;

/// About 200 bytes.
const MESSAGE: &str = r#"{"order_id":"ord-000123456","customer":"ada@example.com","items":[{"sku":"SKU-RED-42","qty":2},{"sku":"SKU-BLUE-7","qty":1},{"sku":"SKU-GREEN-3","qty":5}],"total":129.95,"note":"leave at the door"}"#;

fn pipeline(dir: &std::path::Path) -> Arc<Pipeline> {
    pipeline_with(dir, &[])
}

fn pipeline_with(dir: &std::path::Path, extra: &[(&str, &'static str)]) -> Arc<Pipeline> {
    let files: RepoFiles = [
        (
            "orders/v1.json".to_owned(),
            Bytes::from_static(SCHEMA.as_bytes()),
        ),
        (
            "stations.toml".to_owned(),
            Bytes::from_static(b"[[station]]\nname = \"orders\"\nschema = \"orders\"\n"),
        ),
    ]
    .into_iter()
    .chain(
        extra
            .iter()
            .map(|(path, text)| ((*path).to_owned(), Bytes::from_static(text.as_bytes()))),
    )
    .collect();
    let revision = files.fingerprint();
    let snapshot = load::build(Arc::new(files), revision, &[], load::History::Unknown)
        .expect("bench repository loads");
    let registry = Arc::new(Registry::serving("bench".into(), snapshot));
    let store = EmbeddedStore::open(dir, FsyncPolicy::Never).expect("store opens");
    Arc::new(Pipeline::new(
        registry,
        Backends::with_defaults(store),
        Limits::default(),
    ))
}

fn validation(c: &mut Criterion) {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let raw = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path());
    let payload = Bytes::from_static(MESSAGE.as_bytes());
    assert!(
        pipeline
            .dry_run("orders", None, &payload, None)
            .unwrap()
            .valid
    );
    let snapshot = pipeline.registry().snapshot();
    let compiled = snapshot
        .station("orders")
        .unwrap()
        .pick_version(None)
        .unwrap()
        .unwrap()
        .compiled
        .clone();

    common::raw_versus(
        c,
        "json_validation",
        ("raw_jsonschema_parse_and_is_valid", &|| {
            let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert!(raw.is_valid(&value));
        }),
        &[
            ("sluice_format_validate", &|| {
                compiled
                    .validate(
                        &payload,
                        &PayloadEncoding::Json,
                        Normalize::AsSent,
                        &Default::default(),
                    )
                    .unwrap();
            }),
            ("sluice_pipeline_dry_run", &|| {
                assert!(
                    pipeline
                        .dry_run("orders", None, &payload, None)
                        .unwrap()
                        .valid
                );
            }),
        ],
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("pipeline_produce_embedded_fsync_never");
    for batch in [1usize, 100] {
        group.throughput(Throughput::Elements(batch as u64));
        let messages: Vec<Incoming> = (0..batch)
            .map(|_| Incoming {
                payload: payload.clone(),
                content_type: Some("application/json".into()),
                key: None,
                headers: Default::default(),
                ..Incoming::default()
            })
            .collect();
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let results = pipeline
                        .produce_batch("orders", messages.clone())
                        .await
                        .unwrap();
                    assert!(results.iter().all(Result::is_ok));
                })
            })
        });
    }
    group.finish();
}

fn rules(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let plain = pipeline(&dir.path().join("plain"));
    let ruled = pipeline_with(
        &dir.path().join("ruled"),
        &[("orders/v1.rules.toml", common::ORDER_RULES)],
    );
    let payload = Bytes::from_static(MESSAGE.as_bytes());
    let dry_run = |pipeline: &Pipeline| {
        let verdict = pipeline.dry_run("orders", None, &payload, None).unwrap();
        assert!(
            verdict.valid && verdict.rule_warnings.is_empty(),
            "{verdict:?}"
        );
    };
    common::raw_versus(
        c,
        "rules",
        ("schema_only_dry_run", &|| dry_run(&plain)),
        &[("schema_and_three_rules_dry_run", &|| dry_run(&ruled))],
    );
}

criterion_group!(benches, validation, rules);
criterion_main!(benches);
