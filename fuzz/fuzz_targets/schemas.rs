//! Shared by the format targets: every compiled schema version of a repository, loaded once, and
//! one call that judges an input with each of them in every encoding the format accepts and both
//! ways of storing it. A target fails only by crashing, hanging or allocating without bound.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use sluice::formats::{CompiledSchema, FormatKind, MessageLimits, Normalize, PayloadEncoding};
use sluice::registry::{load, source};

pub struct Versions {
    pub compiled: Vec<(FormatKind, Arc<dyn CompiledSchema>)>,
}

/// The compiled versions of every schema of `format` in the repository at `repo` (relative to
/// the project root).
pub fn load_versions(repo: &str, format: FormatKind) -> Versions {
    sluice::formats::avro::set_allocation_limit(16 * 1024 * 1024);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(repo);
    let files = source::read_directory(&root).expect("the repository reads");
    let revision = files.fingerprint();
    let snapshot = load::build(Arc::new(files), revision, &[], load::History::Unknown)
        .expect("the repository loads");
    let compiled = snapshot
        .schemas()
        .filter(|schema| schema.format == format)
        .flat_map(|schema| schema.versions().iter())
        .map(|version| (format, version.compiled.clone()))
        .collect::<Vec<_>>();
    assert!(!compiled.is_empty(), "{repo} has {format:?} schemas");
    Versions { compiled }
}

impl Versions {
    /// Judges `data` with every version, in each of `encodings`, stored as sent and normalized.
    pub fn judge(&self, data: &[u8], encodings: &[PayloadEncoding]) {
        let payload = Bytes::copy_from_slice(data);
        let limits = MessageLimits::default();
        for (format, compiled) in &self.compiled {
            for encoding in encodings {
                assert!(format.accepts(encoding));
                for normalize in [Normalize::AsSent, Normalize::Binary] {
                    let judged = compiled.validate(&payload, encoding, normalize, &limits);
                    if let Err(violations) = judged {
                        assert!(!violations.is_empty(), "a refusal gives a reason");
                        assert!(violations.len() <= sluice::formats::MAX_VIOLATIONS);
                    }
                }
                let _ = compiled.written_with_this_version(&payload, encoding);
            }
        }
    }
}
