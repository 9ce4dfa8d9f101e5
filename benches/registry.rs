//! The registry at 1,000 schemas (250 each of JSON Schema, Protobuf, Avro and GraphQL, two
//! versions each, one station per schema):
//!
//! * `registry_snapshot/*`: building a whole snapshot in memory: every schema compiled, every
//!   version judged against its compatibility mode, stations resolved; from nothing (start-up)
//!   and as a commit that adds one version after a served snapshot (what a sync does).
//! * `registry_commit_to_serving/webhook_1000_schemas`: the gateway serving a real git repository;
//!   a commit adds a version, and the time measured is `POST /v1/registry/sync` until the answer
//!   says the new commit serves (fetch, read the tree, build, judge, swap).
//!
//! Run: `cargo bench --bench registry`

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use sluice::formats::RepoFiles;
use sluice::registry::load;

const SCHEMAS_PER_FORMAT: usize = 250;

/// JSON Schema `n`, version `version`: a closed object that gains one optional property per
/// version (backward compatible).
fn json_schema(n: usize, version: usize) -> String {
    let extra: String = (2..=version)
        .map(|v| format!(r#","added_in_v{v}":{{"type":"string"}}"#))
        .collect();
    format!(
        r#"{{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"event{n}",
"type":"object","additionalProperties":false,"required":["id","at","kind"],
"properties":{{"id":{{"type":"string","minLength":1}},"at":{{"type":"string","format":"date-time"}},
"kind":{{"enum":["created","updated","deleted"]}},"amount":{{"type":"number","minimum":0}},
"tags":{{"type":"array","items":{{"type":"string"}}}},
"meta":{{"type":"object","properties":{{"source":{{"type":"string"}}}}}}{extra}}}}}"#
    )
}

fn proto_schema(n: usize, version: usize) -> String {
    let extra: String = (2..=version)
        .map(|v| format!("  string added_in_v{v} = {};\n", 10 + v))
        .collect();
    format!(
        "syntax = \"proto3\";\npackage bench.p{n};\n\nmessage Event{n} {{\n  string id = 1;\n  int64 at = 2;\n  \
         Kind kind = 3;\n  double amount = 4;\n  repeated string tags = 5;\n  map<string, string> meta = 6;\n{extra}\n  \
         enum Kind {{\n    KIND_UNSPECIFIED = 0;\n    CREATED = 1;\n    UPDATED = 2;\n  }}\n}}\n"
    )
}

fn avro_schema(n: usize, version: usize) -> String {
    let extra: String = (2..=version)
        .map(|v| format!(r#",{{"name":"added_in_v{v}","type":["null","string"],"default":null}}"#))
        .collect();
    format!(
        r#"{{"type":"record","name":"Event{n}","namespace":"bench.a","fields":[
{{"name":"id","type":"string"}},{{"name":"at","type":{{"type":"long","logicalType":"timestamp-millis"}}}},
{{"name":"kind","type":{{"type":"enum","name":"Kind{n}","symbols":["CREATED","UPDATED","DELETED"]}}}},
{{"name":"amount","type":"double"}},{{"name":"tags","type":{{"type":"array","items":"string"}}}},
{{"name":"meta","type":{{"type":"map","values":"string"}}}}{extra}]}}"#
    )
}

fn graphql_schema(n: usize, version: usize) -> String {
    let extra: String = (2..=version)
        .map(|v| format!("  addedInV{v}: String\n"))
        .collect();
    format!(
        "type Query {{\n  event{n}(id: ID!): Event{n}\n  events{n}(first: Int = 20): [Event{n}!]!\n}}\n\n\
         enum Kind {{ CREATED UPDATED DELETED }}\n\n\
         type Event{n} {{\n  id: ID!\n  at: String!\n  kind: Kind!\n  amount: Float\n  tags: [String!]!\n{extra}}}\n"
    )
}

/// Schema `index` of the repository: its folder name, file extension and text at `version`.
fn schema_file(index: usize, version: usize) -> (String, String) {
    let n = index / 4;
    let (name, ext, text) = match index % 4 {
        0 => (format!("json{n}"), "json", json_schema(n, version)),
        1 => (format!("proto{n}"), "proto", proto_schema(n, version)),
        2 => (format!("avro{n}"), "avsc", avro_schema(n, version)),
        _ => (format!("graphql{n}"), "graphql", graphql_schema(n, version)),
    };
    (format!("schemas/{name}/v{version}.{ext}"), text)
}

/// Every file of the 1,000-schema repository, two versions per schema.
fn repository_files() -> Vec<(String, String)> {
    let total = 4 * SCHEMAS_PER_FORMAT;
    let mut files = Vec::with_capacity(2 * total + 1);
    let mut stations = String::new();
    for index in 0..total {
        for version in 1..=2 {
            files.push(schema_file(index, version));
        }
        let (path, _) = schema_file(index, 1);
        let name = path.split('/').nth(1).unwrap();
        stations.push_str(&format!(
            "[[station]]\nname = \"{name}\"\nschema = \"{name}\"\n\n"
        ));
    }
    files.push(("stations.toml".to_owned(), stations));
    files
}

fn in_memory(files: &[(String, String)]) -> Arc<RepoFiles> {
    Arc::new(
        files
            .iter()
            .map(|(path, text)| (path.clone(), Bytes::from(text.clone())))
            .collect(),
    )
}

fn snapshot_build(c: &mut Criterion) {
    let files = repository_files();
    let first = in_memory(&files);
    let served = load::build(first.clone(), "first".into(), &[], load::History::Unknown)
        .expect("the bench repository loads");
    assert_eq!(served.schemas().count(), 4 * SCHEMAS_PER_FORMAT);

    let mut next_files = files.clone();
    next_files.push(schema_file(0, 3));
    let next = in_memory(&next_files);

    let mut group = c.benchmark_group("registry_snapshot");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("build_1000_schemas_from_nothing", |b| {
        b.iter(|| load::build(first.clone(), "first".into(), &[], load::History::Unknown).unwrap())
    });
    group.bench_function("build_1000_schemas_one_new_version_since_served", |b| {
        b.iter(|| {
            load::build(
                next.clone(),
                "next".into(),
                &[],
                load::History::Since(&served),
            )
            .unwrap()
        })
    });
    group.finish();
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is installed");
    assert!(output.status.success(), "git {args:?} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn commit_to_serving(c: &mut Criterion) {
    let repo = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["config", "user.email", "bench@example.com"]);
    git(repo.path(), &["config", "user.name", "Bench"]);
    let write = |path: &str, text: &str| {
        let full = repo.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    };
    for (path, text) in repository_files() {
        write(&path, &text);
    }
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "1,000 schemas"]);

    let config_file = data.path().join("sluice.toml");
    std::fs::write(
        &config_file,
        format!(
            "[registry]\nsource = \"{}\"\npoll_interval = \"1h\"\n\n[storage]\ndir = \"{}\"\nfsync = \"never\"\n",
            repo.path().display(),
            data.path().join("store").display()
        ),
    )
    .unwrap();
    let config = sluice::config::Config::load(&config_file, true, std::iter::empty()).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listeners = sluice::server::Listeners {
        http: listener,
        grpc: None,
    };
    let server = runtime.spawn(sluice::server::serve(config, listeners, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let status = |client: reqwest::Client, base: String| async move {
        let response = client
            .get(format!("{base}/v1/registry/status"))
            .send()
            .await;
        match response {
            Ok(response) => response.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        }
    };
    // Wait until the first commit serves.
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    let started = Instant::now();
    loop {
        let serving = runtime.block_on(status(client.clone(), base.clone()));
        if serving.is_some_and(|s| s["serving_commit"] == head.as_str()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the gateway never served the bench repository"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut next_version = 3;
    let mut group = c.benchmark_group("registry_commit_to_serving");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("webhook_1000_schemas", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                // The commit is the schema author's work, not measured.
                let (path, text) = schema_file(0, next_version);
                next_version += 1;
                write(&path, &text);
                git(repo.path(), &["add", "-A"]);
                git(repo.path(), &["commit", "-q", "-m", "one more version"]);
                let head = git(repo.path(), &["rev-parse", "HEAD"]);

                let began = Instant::now();
                let answer: serde_json::Value = runtime.block_on(async {
                    client
                        .post(format!("{base}/v1/registry/sync"))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap()
                });
                elapsed += began.elapsed();
                assert_eq!(
                    answer["serving_commit"],
                    head.as_str(),
                    "the new commit serves: {answer}"
                );
            }
            elapsed
        })
    });
    group.finish();

    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
}

criterion_group!(benches, snapshot_build, commit_to_serving);
criterion_main!(benches);
