//! Batched appends to the embedded store (fjall, group commit) by batch size and fsync policy.
//! Each iteration appends one batch of ~200-byte records and waits for the durable answer; the
//! concurrent case shows group commit folding many producers' appends into one fsync.
//!
//! Run: `cargo bench --bench store`

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::backends::embedded::config::FsyncPolicy;
use sluice::backends::embedded::EmbeddedStore;
use sluice::backends::Backend;
use sluice::model::{ContentKind, Record};

fn record() -> Record {
    Record {
        received_at_ms: sluice::model::time::now_ms(),
        deliver_after_ms: None,
        key: None,
        headers: Default::default(),
        value: Bytes::from(vec![b'x'; 200]),
        content: ContentKind::Json,
        schema_version: Some(1),
        dead_letter: None,
        provenance: Default::default(),
    }
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, fsync) in [
        ("fsync_always", FsyncPolicy::Always),
        ("fsync_never", FsyncPolicy::Never),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), fsync).unwrap();
        let mut group = c.benchmark_group(format!("embedded_append_{name}"));
        group.measurement_time(Duration::from_secs(4));
        for batch in [1usize, 10, 100, 1000] {
            group.throughput(Throughput::Elements(batch as u64));
            let records: Vec<Record> = (0..batch).map(|_| record()).collect();
            group.bench_function(format!("batch_{batch}"), |b| {
                b.iter(|| {
                    runtime
                        .block_on(store.append("bench", records.clone()))
                        .unwrap()
                })
            });
        }
        // 64 producers appending one record each at once: group commit folds them together.
        group.throughput(Throughput::Elements(64));
        group.bench_function("concurrent_64_producers_batch_1", |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let store = store.clone();
                            tokio::spawn(async move { store.append("bench", vec![record()]).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap().unwrap();
                    }
                })
            })
        });
        group.finish();
        runtime.block_on(store.close());
    }
}

criterion_group!(benches, appends);
criterion_main!(benches);
