//! The rules between revisions of the repository: published versions are immutable, and each new
//! version must keep its schema's compatibility mode against the versions before it.
//!
//! A candidate snapshot is judged against the baseline — the snapshot serving now, or for
//! `sluice check --base` the base revision. Versions the baseline already had were judged when
//! they were published and are not judged again (a `schema.toml` may tighten a mode without
//! rewriting history); without a baseline every version is judged. Each format says what breaks
//! and in which direction (`CompiledSchema::changes_since`); this module applies the mode.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{LoadProblem, Schema, SchemaVersion, Snapshot};
use crate::formats::{Compatibility, CompiledSchema, Incompatibility};

/// Reports every published version the candidate edited or deleted, and every new version that
/// breaks its schema's compatibility mode.
pub fn check(
    candidate: &BTreeMap<String, Arc<Schema>>,
    baseline: Option<&Snapshot>,
    problems: &mut Vec<LoadProblem>,
) {
    if let Some(baseline) = baseline {
        check_immutable(candidate, baseline, problems);
    }
    for schema in candidate.values() {
        let published = baseline
            .and_then(|b| b.schema(&schema.name))
            .map_or(0, |s| s.newest());
        for version in schema.versions().iter().skip(published as usize) {
            let earlier = &schema.versions()[..version.version as usize - 1];
            for (older, change) in breaking_changes(
                schema.settings.compatibility,
                version.compiled.as_ref(),
                earlier,
            ) {
                problems.push(LoadProblem {
                    file: version.file.clone(),
                    version: Some(version.version),
                    rule: change.rule,
                    message: describe(schema.settings.compatibility, older, &change),
                });
            }
        }
    }
}

/// The changes of `newer` against `earlier` versions (oldest first) that `mode` forbids, each with
/// the version it breaks.
pub fn breaking_changes(
    mode: Compatibility,
    newer: &dyn CompiledSchema,
    earlier: &[SchemaVersion],
) -> Vec<(u32, Incompatibility)> {
    let (backward, forward, transitive) = match mode {
        Compatibility::None => return Vec::new(),
        Compatibility::Backward => (true, false, false),
        Compatibility::BackwardTransitive => (true, false, true),
        Compatibility::Forward => (false, true, false),
        Compatibility::ForwardTransitive => (false, true, true),
        Compatibility::Full => (true, true, false),
        Compatibility::FullTransitive => (true, true, true),
    };
    let judged = if transitive {
        earlier
    } else {
        &earlier[earlier.len().saturating_sub(1)..]
    };
    judged
        .iter()
        .flat_map(|older| {
            newer
                .changes_since(older.compiled.as_ref())
                .into_iter()
                .filter(|c| (backward && c.breaks.backward()) || (forward && c.breaks.forward()))
                .map(|c| (older.version, c))
        })
        .collect()
}

/// One sentence naming the mode, the version broken, where, and why.
pub fn describe(mode: Compatibility, older: u32, change: &Incompatibility) -> String {
    let direction = match (change.breaks.backward(), change.breaks.forward()) {
        (true, true) => "backward and forward",
        (true, false) => "backward",
        _ => "forward",
    };
    format!(
        "not {direction} compatible with v{older} (compatibility = \"{}\"): at {}: {}",
        mode.as_str(),
        change.path,
        change.message
    )
}

fn check_immutable(
    candidate: &BTreeMap<String, Arc<Schema>>,
    baseline: &Snapshot,
    problems: &mut Vec<LoadProblem>,
) {
    for published in baseline.schemas() {
        let now = candidate.get(&published.name);
        for version in published.versions() {
            let kept = now.and_then(|schema| schema.version(version.version));
            let (rule, message) = match kept {
                None => (
                    "published_version_deleted",
                    format!(
                        "version {} of schema `{}` was published and cannot be deleted; publish a new version instead",
                        version.version, published.name
                    ),
                ),
                Some(kept)
                    if kept.text != version.text || kept.rules_text() != version.rules_text() =>
                {
                    (
                    "published_version_edited",
                    format!(
                        "version {} of schema `{}` was published and cannot change, nor can its rules; put the change in v{}",
                        version.version,
                        published.name,
                        now.map_or(1, |s| s.newest() + 1)
                    ),
                )
                }
                Some(_) => continue,
            };
            problems.push(LoadProblem {
                file: kept.map_or_else(|| version.file.clone(), |k| k.file.clone()),
                version: Some(version.version),
                rule,
                message,
            });
        }
    }
}
