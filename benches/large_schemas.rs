//! Validation throughput on large schemas, per format, through each version's compiled schema
//! (`CompiledSchema::validate`, what the pipeline calls):
//!
//! * JSON Schema: four real schemas of the SchemaStore catalogue (`scripts/catalogue --only`:
//!   CloudFormation, 4.7 MiB; vega-lite; GitHub workflow; Cargo manifest), each with a real
//!   document (`benches/fixtures/large/`);
//! * the other formats at size (`scripts/formats-catalogue`): a Protobuf message whose type
//!   reaches a deep tree of imported files, filled three levels deep; an Avro record of 300 named
//!   types, each present; a GraphQL query eight levels deep against an SDL of 2,000 types.
//!
//! Run: `cargo bench --bench large_schemas`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Map, Value};
use sluice::formats::{MessageLimits, Normalize, PayloadEncoding};
use sluice::registry::{load, source, Snapshot};

const CATALOGUE_URLS: &str = "https://raw.githubusercontent.com/awslabs/goformation/master/schema/cloudformation.schema.json,\
https://json.schemastore.org/vega-lite.json,https://json.schemastore.org/github-workflow.json,\
https://json.schemastore.org/cargo.json";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one of the repository's scripts that writes a schema repository into `target`.
fn generate(script: &str, args: &[&str], target: &Path) {
    let status = Command::new(manifest_dir().join("scripts").join(script))
        .arg(target)
        .args(args)
        .status()
        .expect("run the generator");
    assert!(status.success(), "{script} failed");
}

fn snapshot(dir: &Path) -> Snapshot {
    let files = source::read_directory(dir).expect("read the repository");
    let revision = files.fingerprint();
    load::build(Arc::new(files), revision, &[], load::History::Unknown).expect("it loads")
}

/// Validates `payload` against the schema's newest version, criterion measuring messages/s.
fn measure(
    c: &mut Criterion,
    snapshot: &Snapshot,
    schema: &str,
    label: &str,
    payload: Bytes,
    encoding: PayloadEncoding,
) {
    let version = snapshot
        .schema(schema)
        .and_then(|s| s.versions().last())
        .unwrap_or_else(|| panic!("no schema {schema}"));
    let limits = MessageLimits::default();
    let judge = || {
        version
            .compiled
            .validate(&payload, &encoding, Normalize::AsSent, &limits)
    };
    if let Err(violations) = judge() {
        panic!("{label}: the sample is refused: {violations:?}");
    }
    let mut group = c.benchmark_group("large_schemas");
    group.throughput(Throughput::Elements(1));
    group.bench_function(label, |b| b.iter(judge));
    group.finish();
}

fn json_schemas(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("catalogue");
    generate("catalogue", &["--only", CATALOGUE_URLS], &repo);
    let snapshot = snapshot(&repo);
    for name in [
        "cloudformation-schema",
        "vega-lite",
        "github-workflow",
        "cargo",
    ] {
        let path = manifest_dir().join(format!("benches/fixtures/large/{name}.json"));
        let document = Bytes::from(std::fs::read(path).unwrap());
        let label = format!("json_{name}");
        measure(c, &snapshot, name, &label, document, PayloadEncoding::Json);
    }
}

/// `common.cJ.TJ` filled `depth` levels deep, as `scripts/formats-catalogue` writes it: it
/// holds the types J-1, J-7 and J-31.
fn proto_common(j: i64, depth: u32) -> Value {
    let mut object = Map::from_iter([("name".into(), json!("n")), ("at".into(), json!("7"))]);
    if depth > 0 {
        for i in [j - 1, j - 7, j - 31].into_iter().filter(|i| *i >= 0) {
            object.insert(format!("t{i}"), proto_common(i, depth - 1));
        }
    }
    Value::Object(object)
}

/// Schema `proto-0`'s `Event0` as JSON: its id and each imported type it holds, three deep.
fn proto_event(text: &str) -> Value {
    let mut object = Map::from_iter([("id".into(), json!("e-1"))]);
    for line in text.lines() {
        let Some(field) = line.trim().strip_prefix("common.c") else {
            continue;
        };
        let j: i64 = field.split('.').next().unwrap().parse().unwrap();
        object.insert(format!("f{j}"), proto_common(j, 3));
    }
    Value::Object(object)
}

/// Schema `avro-0`'s `Top`: every one of its 300 record types present.
fn avro_top() -> Value {
    let record = |i: usize| {
        let mut object = Map::from_iter([("id".into(), json!("r")), ("at".into(), json!(7))]);
        for j in [i.checked_sub(1), i.checked_sub(2)].into_iter().flatten() {
            object.insert(format!("r{j}"), Value::Null);
        }
        Value::Object(object)
    };
    Value::Object((0..300).map(|i| (format!("t{i}"), record(i))).collect())
}

/// A query following `root` eight types deep through the SDL's `t` fields.
fn graphql_query() -> String {
    let mut selection = String::from("id name");
    for i in (1..=8).rev() {
        selection = format!("id name t{i} {{ {selection} }}");
    }
    format!("query Deep {{ root {{ {selection} }} }}")
}

/// The binary form of a JSON message that `schema` accepts.
fn to_binary(snapshot: &Snapshot, schema: &str, message: &Value) -> Bytes {
    let version = snapshot.schema(schema).unwrap().versions().last().unwrap();
    let payload = Bytes::from(serde_json::to_vec(message).unwrap());
    version
        .compiled
        .validate(
            &payload,
            &PayloadEncoding::Json,
            Normalize::Binary,
            &MessageLimits::default(),
        )
        .unwrap_or_else(|v| panic!("{schema}: {v:?}"))
        .value
}

fn other_formats(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("formats");
    generate("formats-catalogue", &[], &repo);
    let snapshot = snapshot(&repo);
    let text = std::fs::read_to_string(repo.join("schemas/proto-0/v1.proto")).unwrap();
    let event = to_binary(&snapshot, "proto-0", &proto_event(&text));
    measure(
        c,
        &snapshot,
        "proto-0",
        "protobuf_deep_imports",
        event,
        PayloadEncoding::Protobuf,
    );
    let top = to_binary(&snapshot, "avro-0", &avro_top());
    measure(
        c,
        &snapshot,
        "avro-0",
        "avro_300_types",
        top,
        PayloadEncoding::Avro,
    );
    measure(
        c,
        &snapshot,
        "graphql-0",
        "graphql_2000_types",
        Bytes::from(graphql_query()),
        PayloadEncoding::GraphQl,
    );
}

criterion_group!(benches, json_schemas, other_formats);
criterion_main!(benches);
