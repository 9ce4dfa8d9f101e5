//! Compiles a revision's schema versions: each on its own, on every core, and none again that the
//! previous snapshot compiled from the same inputs (what versions share — the files Protobuf
//! versions import — is compiled once first, see `formats::Prepared`). A version's inputs are the files its
//! compilation reads — its own file, its schema's `schema.toml`, and the files it refers to,
//! transitively (JSON Schema `$ref`s, Protobuf imports). A commit that changes none of them reuses
//! the compiled version as it is, so a commit touching one schema of a thousand compiles one (and
//! every schema that refers to what it touched).

use std::collections::HashMap;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::references;
use super::{ids, LoadProblem, SchemaVersion, Snapshot, SourceText, VersionRules};
use crate::formats::rules::{RuleLimits, RuleSet};
use crate::formats::{
    CompileInput, CompiledSchema, FileReference, FormatKind, Prepared, RepoFiles, SchemaSettings,
};

/// An input that counts as changed in every revision: a version whose inputs cannot all be
/// named is compiled again each time.
const UNTRACKED: &str = "\0untracked";

/// One version to compile.
pub(super) struct Job<'a> {
    pub schema: &'a str,
    pub version: u32,
    pub file: &'a str,
    pub format: FormatKind,
    pub settings: &'a SchemaSettings,
    /// Where the schema's `schema.toml` is (or would be).
    pub settings_file: String,
    /// Where the version's rules file is (or would be).
    pub rules_file: String,
    /// A station judges messages with the schema: what judging needs is kept built. Otherwise it
    /// is dropped once the version is known to compile, and built on first use.
    pub in_use: bool,
}

/// The snapshot a revision follows, and which of its files the revision changed.
pub(super) struct Previous<'a> {
    snapshot: &'a Snapshot,
    changed: HashSet<String>,
}

impl<'a> Previous<'a> {
    pub fn new(snapshot: &'a Snapshot, files: &RepoFiles) -> Self {
        let mut changed: HashSet<String> = files.changed_since(&snapshot.files).collect();
        changed.insert(UNTRACKED.to_owned());
        changed.extend(crate::formats::moved_reference_targets(
            &snapshot.files,
            files,
        ));
        Self { snapshot, changed }
    }

    /// The previous snapshot's compilation of `job`, when none of its inputs changed.
    fn reusable(&self, job: &Job<'_>) -> Option<SchemaVersion> {
        let kept = self.snapshot.schema(job.schema)?.version(job.version)?;
        // The same file has the same extension, so the same format.
        let unchanged =
            kept.file == job.file && !kept.inputs.iter().any(|input| self.changed.contains(input));
        unchanged.then(|| kept.clone())
    }
}

/// Each job's version, or why it does not compile, in the order of `jobs`: compiled on as many
/// threads as there are cores, or taken from `previous`.
pub(super) fn compile_all(
    jobs: &[Job<'_>],
    files: &RepoFiles,
    schema_root: &str,
    previous: Option<&Previous<'_>>,
) -> Vec<Result<SchemaVersion, LoadProblem>> {
    let results: Vec<Mutex<Option<Result<SchemaVersion, LoadProblem>>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let mut to_compile = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        match previous.and_then(|previous| previous.reusable(job)) {
            Some(kept) => {
                if job.in_use {
                    kept.compiled.prepare();
                }
                *results[index].lock().expect("result lock") = Some(Ok(kept));
            }
            None => to_compile.push(index),
        }
    }
    let prepared = Prepared::build(
        to_compile.iter().map(|&i| (jobs[i].format, jobs[i].file)),
        schema_root,
        files,
    );
    let next = AtomicUsize::new(0);
    let references = References::default();
    let work = || loop {
        let Some(&index) = to_compile.get(next.fetch_add(1, Ordering::Relaxed)) else {
            return;
        };
        let compiled = compile_one(&jobs[index], files, schema_root, &references, &prepared);
        *results[index].lock().expect("result lock") = Some(compiled);
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(to_compile.len());
    if threads <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    results
        .into_iter()
        .map(|result| {
            result
                .into_inner()
                .expect("result lock")
                .expect("every job ran")
        })
        .collect()
}

/// The files each repository file refers to, found once per build however many versions reach it
/// (a shared `.proto` that a hundred versions import is read for its imports once).
#[derive(Default)]
struct References(Mutex<HashMap<String, Arc<[FileReference]>>>);

impl References {
    /// What `file` (of `format`) refers to; nothing when it is missing or not text.
    fn of(
        &self,
        format: FormatKind,
        file: &str,
        files: &RepoFiles,
        schema_root: &str,
    ) -> Arc<[FileReference]> {
        if let Some(found) = self.0.lock().expect("references lock").get(file) {
            return found.clone();
        }
        let text = files.get(file).and_then(|b| std::str::from_utf8(b).ok());
        let found: Arc<[FileReference]> = text
            .map(|text| format.references(file, schema_root, text, files))
            .unwrap_or_default()
            .into();
        let mut known = self.0.lock().expect("references lock");
        known.insert(file.to_owned(), found.clone());
        found
    }
}

fn compile_one(
    job: &Job<'_>,
    files: &RepoFiles,
    schema_root: &str,
    references: &References,
    prepared: &Prepared,
) -> Result<SchemaVersion, LoadProblem> {
    let problem = |message: String| LoadProblem {
        file: job.file.to_owned(),
        version: None,
        rule: "compile",
        message,
    };
    let bytes = files.get(job.file).expect("listed file exists");
    let source =
        SourceText::new(bytes.clone()).ok_or_else(|| problem("not valid UTF-8 text".into()))?;
    let text = source.as_str();
    let input = CompileInput {
        file: job.file,
        schema_root,
        text,
        repo: files,
        settings: job.settings,
        prepared: Some(prepared),
    };
    let compiled = job.format.compile(&input).map_err(|e| problem(e.message))?;
    let rules = compile_rules(job, files, &*compiled)?;
    if !job.in_use {
        compiled.set_aside();
    }
    let found = references.of(job.format, job.file, files, schema_root);
    let inputs = inputs(job, &found, files, schema_root, references);
    Ok(SchemaVersion {
        version: job.version,
        id: ids::schema_id(job.schema, job.version),
        file: job.file.to_owned(),
        text: source.clone(),
        compiled,
        references: references::to_references(found.to_vec(), schema_root),
        inputs: inputs.into_iter().collect(),
        rules,
    })
}

/// The version's rules, when it has a rules file; why they cannot be compiled, naming the file
/// and the rule.
fn compile_rules(
    job: &Job<'_>,
    files: &RepoFiles,
    schema: &dyn CompiledSchema,
) -> Result<Option<VersionRules>, LoadProblem> {
    let Some(bytes) = files.get(&job.rules_file) else {
        return Ok(None);
    };
    let problem = |message: String| LoadProblem {
        file: job.rules_file.clone(),
        version: Some(job.version),
        rule: "rule_compile",
        message,
    };
    if let Some(why) = job.format.refuses_rules(job.settings) {
        return Err(problem(format!("{}: {why}", job.rules_file)));
    }
    let text = SourceText::new(bytes.clone())
        .ok_or_else(|| problem(format!("{} is not valid UTF-8 text", job.rules_file)))?;
    let set = RuleSet::compile(&job.rules_file, text.as_str(), &RuleLimits::default())
        .map_err(|e| problem(e.message))?;
    if let Some(unknown) = set.unknown_field(&job.rules_file, |paths| schema.missing_field(paths)) {
        return Err(problem(unknown.message));
    }
    Ok(Some(VersionRules {
        file: job.rules_file.clone(),
        text,
        set: Arc::new(set),
    }))
}

/// The files compiling `job` read: its own, its schema's settings file, and the files its
/// references (`direct`) reach, transitively. A Protobuf import names both places it may be found,
/// so that a file added at the other one counts as a change.
fn inputs(
    job: &Job<'_>,
    direct: &[FileReference],
    files: &RepoFiles,
    schema_root: &str,
    references: &References,
) -> BTreeSet<String> {
    let mut inputs = BTreeSet::from([
        job.file.to_owned(),
        job.settings_file.clone(),
        job.rules_file.clone(),
    ]);
    if files
        .get(job.file)
        .is_some_and(|text| job.format.has_untracked_references(text))
    {
        inputs.insert(UNTRACKED.to_owned());
    }
    let mut visited = HashSet::from([job.file.to_owned()]);
    let mut pending: Vec<(String, String)> = direct
        .iter()
        .map(|r| (r.name.clone(), r.file.clone()))
        .collect();
    while let Some((name, file)) = pending.pop() {
        inputs.extend(job.format.reference_candidates(schema_root, &name));
        inputs.insert(file.clone());
        if !visited.insert(file.clone()) {
            continue;
        }
        let Some(bytes) = files.get(&file) else {
            continue;
        };
        if job.format.has_untracked_references(bytes) {
            inputs.insert(UNTRACKED.to_owned());
        }
        for next in references.of(job.format, &file, files, schema_root).iter() {
            pending.push((next.name.clone(), next.file.clone()));
        }
    }
    inputs
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{json, Value};

    use crate::formats::{judge_json, RepoFiles};
    use crate::registry::load::{build, History};
    use crate::registry::Snapshot;

    const COMMON: &str = r#"{"$id":"https://schemas.example/common.json","type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#;
    const BY_PATH: &str =
        r#"{"allOf":[{"$ref":"../common/ids.json"}],"properties":{"qty":{"type":"integer"}}}"#;
    const IDS: &str = r#"{"type":"object","required":["sku"]}"#;
    const BY_ID: &str = r#"{"$ref":"https://schemas.example/common.json"}"#;
    const ALONE: &str = r#"{"type":"object","properties":{"n":{"type":"number"}}}"#;

    fn tree(files: &BTreeMap<&str, String>) -> RepoFiles {
        files
            .iter()
            .map(|(path, text)| (path.to_string(), bytes::Bytes::from(text.clone())))
            .collect()
    }

    fn samples() -> Vec<Value> {
        vec![
            json!({"id": "a", "sku": "x", "qty": 1, "n": 1}),
            json!({"id": "a", "qty": 1}),
            json!({"sku": "x", "qty": "many"}),
            json!({"id": 7, "n": "one"}),
            json!({}),
        ]
    }

    /// Every version's id, references and verdict on each sample.
    fn verdicts(snapshot: &Snapshot) -> Vec<(String, u32, u32, String, Vec<bool>)> {
        snapshot
            .schemas()
            .flat_map(|schema| schema.versions().iter().map(move |v| (schema, v)))
            .map(|(schema, v)| {
                let judged = samples()
                    .iter()
                    .map(|m| judge_json(v.compiled.as_ref(), m).is_ok())
                    .collect();
                let references = format!("{:?}", v.references);
                (schema.name.clone(), v.version, v.id, references, judged)
            })
            .collect()
    }

    fn compiled<'a>(
        snapshot: &'a Snapshot,
        schema: &str,
        version: u32,
    ) -> &'a dyn super::super::CompiledSchema {
        snapshot
            .schema(schema)
            .unwrap()
            .version(version)
            .unwrap()
            .compiled
            .as_ref()
    }

    /// Whether `next` took version `version` of `schema` from `serving` as it was compiled.
    fn kept(next: &Snapshot, serving: &Snapshot, schema: &str, version: u32) -> bool {
        let (a, b) = (
            compiled(next, schema, version),
            compiled(serving, schema, version),
        );
        std::ptr::addr_eq(a as *const _, b as *const _)
    }

    #[test]
    fn building_on_the_serving_snapshot_serves_what_a_full_build_would() {
        let mut files: BTreeMap<&str, String> = BTreeMap::from([
            ("schemas/common/common.json", COMMON.to_owned()),
            ("schemas/common/ids.json", IDS.to_owned()),
            ("schemas/by-path/v1.json", BY_PATH.to_owned()),
            ("schemas/by-id/v1.json", BY_ID.to_owned()),
            ("schemas/alone/v1.json", ALONE.to_owned()),
        ]);
        let mut serving = build(
            std::sync::Arc::new(tree(&files)),
            "1".into(),
            &[],
            History::Unknown,
        )
        .unwrap();
        let step = |files: &BTreeMap<&str, String>, serving: &Snapshot, revision: &str| {
            let incremental = build(
                std::sync::Arc::new(tree(files)),
                revision.into(),
                &[],
                History::Since(serving),
            );
            let full = build(
                std::sync::Arc::new(tree(files)),
                revision.into(),
                &[],
                History::Unknown,
            );
            if let (Ok(incremental), Ok(full)) = (&incremental, &full) {
                assert_eq!(verdicts(incremental), verdicts(full), "at {revision}");
            }
            incremental
        };

        // A new version: the others are kept as compiled.
        files.insert(
            "schemas/alone/v2.json",
            ALONE.replace("{\"n\"", "{\"m\":{},\"n\""),
        );
        let next = step(&files, &serving, "2").unwrap();
        assert!(kept(&next, &serving, "by-path", 1));
        assert!(kept(&next, &serving, "alone", 1));
        serving = next;

        // A file referred to by path changes: what refers to it is compiled again, nothing else.
        files.insert("schemas/common/ids.json", IDS.replace("sku", "qty"));
        let next = step(&files, &serving, "3").unwrap();
        assert!(!kept(&next, &serving, "by-path", 1));
        assert!(kept(&next, &serving, "by-id", 1));
        serving = next;

        // The file a `$id` names changes: what refers to that `$id` is compiled again.
        files.insert(
            "schemas/common/common.json",
            COMMON.replace("\"id\"]", "\"id\",\"n\"]"),
        );
        let next = step(&files, &serving, "4").unwrap();
        assert!(!kept(&next, &serving, "by-id", 1));
        assert!(kept(&next, &serving, "alone", 2));
        serving = next;

        // A published version deleted: refused, and the serving snapshot is unchanged.
        files.remove("schemas/alone/v1.json");
        let refused = step(&files, &serving, "5").unwrap_err();
        assert!(
            refused
                .iter()
                .any(|p| p.rule == "published_version_deleted"),
            "{refused:?}"
        );
        files.insert("schemas/alone/v1.json", ALONE.to_owned());

        // A broken version refused, then fixed.
        files.insert("schemas/by-path/v2.json", "{not json".to_owned());
        assert!(step(&files, &serving, "6").is_err());
        files.insert("schemas/by-path/v2.json", BY_PATH.to_owned());
        let next = step(&files, &serving, "7").unwrap();
        assert!(kept(&next, &serving, "by-path", 1));
        assert_eq!(next.schema("by-path").unwrap().newest(), 2);
    }

    #[test]
    fn a_version_resolving_refs_against_an_inner_id_is_compiled_again_each_time() {
        let inner = r#"{"$id":"https://x.example/root.json","properties":{"a":{"$id":"https://x.example/deep/a.json","$ref":"b.json"}}}"#;
        let files: BTreeMap<&str, String> = BTreeMap::from([
            ("schemas/inner/v1.json", inner.to_owned()),
            (
                "schemas/b/v1.json",
                r#"{"$id":"https://x.example/deep/b.json","type":"string"}"#.to_owned(),
            ),
        ]);
        let serving = build(
            std::sync::Arc::new(tree(&files)),
            "1".into(),
            &[],
            History::Unknown,
        )
        .unwrap();
        let next = build(
            std::sync::Arc::new(tree(&files)),
            "2".into(),
            &[],
            History::Since(&serving),
        )
        .unwrap();
        assert!(!kept(&next, &serving, "inner", 1));
        assert!(kept(&next, &serving, "b", 1));
    }
}
