//! JSON Schema, through the `jsonschema` crate: drafts 4, 6, 7, 2019-09 and 2020-12, picked by the
//! schema's `$schema` (2020-12 when absent), with `format` assertions on.
//!
//! `$ref`s to other files resolve inside the schema repository only — by relative path from the
//! referring file, or by another file's absolute `$id` — and never over the network. On the hot
//! path a message is parsed once, into the borrowing tree of [`instance`]; `is_valid` decides, and
//! the violation list is built only for messages that fail. Compatibility between versions lives
//! in [`compat`].

mod compat;
mod fields;
mod fragments;
mod instance;
mod rules_tree;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use serde_json::Value;

use super::{
    rules, CompileError, CompiledSchema, DerivedFromTree, FileReference, MessageLimits, Normalize,
    PayloadEncoding, Valid, Violation, MAX_VIOLATIONS,
};
use crate::formats::RepoFiles;
use instance::{Borrowed, Instance, ParseError};

/// URI scheme prefix under which repository files are addressed while resolving `$ref`s.
const REPO_URI_PREFIX: &str = "file:///";

/// The repository's map of URLs to the files holding copies of them (`"https://…" = "vendor/…"`):
/// a `$ref` to such a URL resolves to that file, so a remote schema is vendored by commit and the
/// `$ref`s keep their URLs.
pub const REFS_FILE: &str = "refs.toml";

/// A compiled JSON Schema version.
pub struct JsonSchema {
    /// What judges messages; set aside (`None`) for a version no station uses, and built again
    /// from the text on first use.
    validator: ArcSwapOption<jsonschema::Validator<Borrowed>>,
    /// The same schema for `serde_json::Value`s: debug builds parse and judge every message both
    /// ways and panic when they disagree.
    #[cfg(debug_assertions)]
    reference: jsonschema::Validator,
    /// The version's repository path, the base of relative `$ref`s.
    file: String,
    /// The schema's text when it is not the repository's file at `file` (a candidate sent to the
    /// compatibility endpoint); else the repository's copy is the one kept.
    own_text: Option<Bytes>,
    /// The repository's JSON documents (their text), for following `$ref`s when comparing
    /// versions; the schema itself is parsed again then, not kept parsed.
    documents: Arc<JsonDocuments>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSchema")
    }
}

impl JsonSchema {
    /// Compiles `text`, the contents of repository file `file`.
    pub fn compile(file: &Path, text: &str, repo: &RepoFiles) -> Result<Self, CompileError> {
        let file = repo_path(file);
        let documents = repo.derived::<JsonDocuments>();
        let schema = parse_schema(text)?;
        let validator = build::<Borrowed>(&file, &documents, &schema)?;
        #[cfg(debug_assertions)]
        let reference = build(&file, &documents, &schema)?;
        let own_text = (repo.get(&file).map(|kept| kept.as_ref()) != Some(text.as_bytes()))
            .then(|| Bytes::copy_from_slice(text.as_bytes()));
        Ok(Self {
            validator: ArcSwapOption::from_pointee(validator),
            #[cfg(debug_assertions)]
            reference,
            file,
            own_text,
            documents,
        })
    }

    /// The schema's source text.
    fn text(&self) -> Bytes {
        match &self.own_text {
            Some(own) => own.clone(),
            None => self
                .documents
                .files
                .get(&self.file)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The validator, built again from the text if it was set aside.
    fn validator(&self) -> Arc<jsonschema::Validator<Borrowed>> {
        if let Some(validator) = self.validator.load_full() {
            return validator;
        }
        let text = self.text();
        let rebuilt = std::str::from_utf8(&text)
            .map_err(|_| CompileError::new("not UTF-8"))
            .and_then(parse_schema)
            .and_then(|schema| build(&self.file, &self.documents, &schema))
            .expect("a version that compiled compiles again from the same text");
        let rebuilt = Arc::new(rebuilt);
        self.validator.store(Some(rebuilt.clone()));
        rebuilt
    }

    /// Judges a parsed message.
    fn validate_instance(&self, instance: &Instance<'_>) -> Result<(), Vec<Violation>> {
        let validator = self.validator();
        let valid = validator.is_valid(instance);
        #[cfg(debug_assertions)]
        {
            let value = instance.to_value();
            assert_eq!(
                valid,
                self.reference.is_valid(&value),
                "the borrowed tree and serde_json::Value disagree on {value}"
            );
        }
        if valid {
            return Ok(());
        }
        Err(validator
            .iter_errors(instance)
            .take(MAX_VIOLATIONS)
            .map(|error| Violation {
                path: error.instance_path().as_str().to_owned(),
                schema_path: error.schema_path().as_str().to_owned(),
                reason: error.to_string(),
            })
            .collect())
    }
}

impl CompiledSchema for JsonSchema {
    fn rules_message<'p>(
        &self,
        payload: &'p Bytes,
        _encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<rules::Message<'p>, String> {
        rules_message(payload, limits)
    }

    fn missing_field(&self, paths: &[&[String]]) -> Option<usize> {
        let schema: Value = serde_json::from_slice(&self.text()).ok()?;
        paths
            .iter()
            .position(|path| fields::known(&schema, path) == Some(false))
    }

    fn set_aside(&self) {
        self.validator.store(None);
    }

    fn prepare(&self) {
        self.validator();
    }

    fn validate(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
        limits: &MessageLimits,
    ) -> Result<Valid, Vec<Violation>> {
        self.validate_and_read(payload, encoding, normalize, limits, &mut |_| {})
    }

    fn validate_and_read(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        _normalize: Normalize,
        limits: &MessageLimits,
        read: &mut dyn FnMut(Result<rules::Message<'_>, String>),
    ) -> Result<Valid, Vec<Violation>> {
        let instance = parse_message(payload, limits).map_err(|violation| vec![violation])?;
        self.validate_instance(&instance)?;
        read(Ok(bounded(rules::Message::borrowed(&instance), payload)));
        Ok(Valid::as_sent(payload, encoding))
    }
}

/// A message's tree, or the violation that says why it is not JSON within `limits`.
fn parse_message<'p>(
    payload: &'p Bytes,
    limits: &MessageLimits,
) -> Result<Instance<'p>, Violation> {
    let parsed = Instance::parse(payload, limits.json_depth);
    #[cfg(debug_assertions)]
    match (&parsed, super::limits::parse_json(payload, limits)) {
        (Ok(instance), Ok(value)) => assert_eq!(instance.to_value(), value),
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!(
            "the message tree and serde_json::Value disagree on {payload:?}: {ours:?} vs {theirs:?}"
        ),
    }
    parsed.map_err(|e| match e {
        ParseError::TooDeep => super::limits::json_too_deep(limits.json_depth),
        ParseError::NotJson(e) => super::limits::not_json(&e),
    })
}

/// A JSON payload as data-contract rules read it: its tree, or why there is none.
pub fn rules_message<'p>(
    payload: &'p Bytes,
    limits: &MessageLimits,
) -> Result<rules::Message<'p>, String> {
    let instance = parse_message(payload, limits).map_err(|violation| violation.reason)?;
    Ok(bounded(rules::Message::owned(instance), payload))
}

/// `message`, the tree of `text`: JSON text of n bytes holds no list or object of more than n
/// elements, which bounds a rule's cost without counting them.
fn bounded<'p>(message: rules::Message<'p>, text: &[u8]) -> rules::Message<'p> {
    message.with_largest_at_most(text.len() as u64)
}

/// `text` parsed as a schema, its `$ref` fragments made URI-safe.
fn parse_schema(text: &str) -> Result<Value, CompileError> {
    let mut schema: Value = serde_json::from_str(text)
        .map_err(|e| CompileError::new(format!("not valid JSON: {e}")))?;
    if !schema.is_object() && !schema.is_boolean() {
        return Err(CompileError::new(
            "a JSON Schema must be an object or a boolean",
        ));
    }
    fragments::encode_ref_fragments(&mut schema);
    Ok(schema)
}

/// The validator of `schema`, the document at repository path `file`, for instances of
/// representation `F`; its `$ref`s resolve to `documents`.
fn build<F: jsonschema::json::Json>(
    file: &str,
    documents: &Arc<JsonDocuments>,
    schema: &Value,
) -> Result<jsonschema::Validator<F>, CompileError> {
    jsonschema::options_for::<F>()
        .with_base_uri(format!("{REPO_URI_PREFIX}{file}"))
        .should_validate_formats(true)
        .with_retriever(RepoRetriever {
            documents: documents.clone(),
        })
        .build(schema)
        .map_err(|e| CompileError::new(e.to_string()))
}

/// `a/b.json` as used in URIs, whatever the platform's separator.
fn repo_path(file: &Path) -> String {
    file.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every JSON document of a repository, by the URIs a `$ref` may use to reach it: its repository
/// path under [`REPO_URI_PREFIX`], and its top-level absolute `$id` if it has one. Only the text is
/// kept (shared with the tree); a document is parsed when a compilation or a comparison needs it.
#[derive(Debug, Default)]
pub struct JsonDocuments {
    /// The repository's `.json` files, by path.
    files: HashMap<String, Bytes>,
    /// The repository path of each document with an absolute `$id`, by that `$id`, and of each
    /// vendored copy by the URL [`REFS_FILE`] maps to it (which wins over an `$id`).
    path_by_id: HashMap<String, String>,
}

/// A document's top-level `$id`, read without building the rest of it.
#[derive(serde::Deserialize)]
struct TopLevelId {
    #[serde(rename = "$id")]
    id: Option<String>,
}

impl DerivedFromTree for JsonDocuments {
    fn derive(repo: &RepoFiles) -> Self {
        Self::index(repo)
    }
}

impl JsonDocuments {
    pub fn index(files: &RepoFiles) -> Self {
        let mut documents = Self::default();
        for (path, contents) in files.iter() {
            if !path.ends_with(".json") {
                continue;
            }
            let id = serde_json::from_slice::<TopLevelId>(contents)
                .ok()
                .and_then(|top| top.id);
            if let Some(id) = id.filter(|id| id.contains("://")) {
                let id = id.trim_end_matches('#').to_owned();
                documents.path_by_id.insert(id, path.to_owned());
            }
            documents.files.insert(path.to_owned(), contents.clone());
        }
        for (url, path) in vendored(files).unwrap_or_default() {
            documents
                .path_by_id
                .insert(url.trim_end_matches('#').to_owned(), path);
        }
        documents
    }

    /// The repository path `uri` names: `file:///<path>` or a document's `$id`.
    fn path_of<'a>(&'a self, uri: &'a str) -> Option<&'a str> {
        match uri.strip_prefix(REPO_URI_PREFIX) {
            Some(path) => self.files.contains_key(path).then_some(path),
            None => self.path_by_id.get(uri).map(String::as_str),
        }
    }

    /// The documents whose `$id` now names another document, or none, in `newer`: what referred
    /// to them by that `$id` reaches something else there.
    pub fn paths_of_moved_ids(&self, newer: &JsonDocuments) -> Vec<String> {
        self.path_by_id
            .iter()
            .filter(|(id, path)| newer.path_by_id.get(*id) != Some(*path))
            .map(|(_, path)| path.clone())
            .collect()
    }

    /// The repository path `target` (a `$ref` without its fragment) names from the document at
    /// `file`: another document's absolute `$id` or a URL [`REFS_FILE`] maps, else a path relative
    /// to `file`'s folder.
    fn resolve(&self, file: &str, target: &str) -> Option<String> {
        if target.contains("://") {
            self.path_of(target.trim_end_matches('#'))
                .map(str::to_owned)
        } else {
            Some(compat::join_relative(file, target))
        }
    }

    /// The document at repository path `path`, parsed now.
    fn parse(&self, path: &str) -> Option<Value> {
        serde_json::from_slice(self.files.get(path)?).ok()
    }

    /// The document at repository path `path`, parsed now, ready to compile.
    fn parse_to_compile(&self, path: &str) -> Option<Value> {
        let mut document = self.parse(path)?;
        fragments::encode_ref_fragments(&mut document);
        Some(document)
    }
}

/// The URL → file pairs of [`REFS_FILE`], when it is there and reads as such.
fn vendored(files: &RepoFiles) -> Result<Vec<(String, String)>, String> {
    let Some(bytes) = files.get(REFS_FILE) else {
        return Ok(Vec::new());
    };
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8 text".to_owned())?;
    let table: toml::Table =
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    table
        .into_iter()
        .map(|(url, path)| match path {
            toml::Value::String(path) => Ok((url, path)),
            other => Err(format!(
                "`{url}` maps to {other}, not to the path of a file"
            )),
        })
        .collect()
}

/// What is wrong with [`REFS_FILE`]: not TOML, a key that is not an absolute URL, a path the
/// repository does not hold, or a file there that is not JSON.
pub fn check_refs_file(files: &RepoFiles) -> Vec<String> {
    let pairs = match vendored(files) {
        Ok(pairs) => pairs,
        Err(why) => return vec![why],
    };
    let mut problems = Vec::new();
    for (url, path) in pairs {
        let held = files.get(&path);
        if !url.contains("://") {
            problems.push(format!(
                "`{url}` is not an absolute URL (write it as `$ref`s do)"
            ));
        } else if held.is_none() {
            problems.push(format!(
                "`{url}` maps to `{path}`, which the repository does not hold"
            ));
        } else if held.is_some_and(|b| serde_json::from_slice::<serde::de::IgnoredAny>(b).is_err())
        {
            problems.push(format!("`{url}` maps to `{path}`, which is not JSON"));
        }
    }
    problems
}

/// Where a vendored copy of `url` would go: `vendor/<host>/<path>`.
fn vendor_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    format!("vendor/{}", rest.trim_end_matches('/'))
}

/// The other repository files a JSON Schema `text` (the file at `file`) refers to with `$ref`:
/// by a path relative to its folder, or by another file's absolute `$id`. Named as the `$ref`s
/// write them, without their fragments, each once.
pub fn references(file: &str, text: &str, repo: &RepoFiles) -> Vec<FileReference> {
    let Ok(document) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let documents = repo.derived::<JsonDocuments>();
    let mut found: Vec<FileReference> = Vec::new();
    for target in ref_targets(&document) {
        let path = documents.resolve(file, target);
        if let Some(path) = path.filter(|p| p != file && repo.get(p).is_some()) {
            if !found.iter().any(|r| r.name == target) {
                found.push(FileReference {
                    name: target.to_owned(),
                    file: path,
                });
            }
        }
    }
    found
}

/// The `$ref`s of `document` that name another document: each without its fragment.
fn ref_targets(document: &Value) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut pending = vec![document];
    while let Some(node) = pending.pop() {
        match node {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    let target = reference.split('#').next().unwrap_or_default();
                    if !target.is_empty() {
                        targets.push(target);
                    }
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    targets
}

/// Resolves `$ref`s to documents of the repository; refuses everything else.
struct RepoRetriever {
    documents: Arc<JsonDocuments>,
}

impl jsonschema::Retrieve for RepoRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let wanted = uri.as_str().split('#').next().unwrap_or_default();
        let path = self.documents.path_of(wanted);
        path.and_then(|path| self.documents.parse_to_compile(path)).ok_or_else(|| {
            let found = if wanted.starts_with(REPO_URI_PREFIX) || !wanted.contains("://") {
                format!(
                    "`{}` is not a JSON file of the schema repository",
                    wanted.trim_start_matches(REPO_URI_PREFIX)
                )
            } else {
                format!(
                    "`{wanted}` is not in the schema repository (nothing is fetched): commit a copy \
                     and map it in {REFS_FILE}: \"{wanted}\" = \"{}\"",
                    vendor_path(wanted)
                )
            };
            found.into()
        })
    }
}

/// Whether a JSON Schema document may resolve `$ref`s against an `$id` inside it (more than one
/// `$id` whose value is not a bare `#fragment`): the files those reach are not all named by their
/// paths, so the version is not tracked by its inputs. Read from the text, conservatively: an
/// `$id` that is only a property name counts too.
pub(super) fn rebases_refs(text: &[u8]) -> bool {
    const ID: &[u8] = b"\"$id\"";
    let bases = (0..text.len().saturating_sub(ID.len()))
        .filter(|&at| text[at..].starts_with(ID))
        .filter(|&at| {
            let value = text[at + ID.len()..]
                .iter()
                .skip_while(|b| b.is_ascii_whitespace() || **b == b':')
                .take(2)
                .collect::<Vec<_>>();
            value.first() != Some(&&b'"') || value.get(1) != Some(&&b'#')
        })
        .count();
    bases > 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_in(repo: &[(&str, Value)], file: &str) -> Result<JsonSchema, CompileError> {
        let files = RepoFiles::from_iter(
            repo.iter()
                .map(|(p, v)| (p.to_string(), Bytes::from(v.to_string()))),
        );
        let text = files.get(file).expect("file in repo").clone();
        JsonSchema::compile(Path::new(file), std::str::from_utf8(&text).unwrap(), &files)
    }

    fn judge(schema: &JsonSchema, message: Value) -> Result<(), Vec<Violation>> {
        crate::formats::judge_json(schema, &message)
    }

    #[test]
    fn relative_ref_resolves_inside_the_repository() {
        let schema = compile_in(
            &[
                (
                    "orders/v1.json",
                    json!({"type":"object","properties":{"ship_to":{"$ref":"../common/address.json"}}}),
                ),
                (
                    "common/address.json",
                    json!({"type":"object","required":["city"]}),
                ),
            ],
            "orders/v1.json",
        )
        .unwrap();
        assert!(judge(&schema, json!({"ship_to":{"city":"Oslo"}})).is_ok());
        let violations = judge(&schema, json!({"ship_to":{}})).unwrap_err();
        assert_eq!(violations[0].path, "/ship_to");
    }

    #[test]
    fn ref_by_absolute_id_resolves_to_the_repository_file() {
        let schema = compile_in(
            &[
                (
                    "orders/v1.json",
                    json!({"properties":{"qty":{"$ref":"https://acme.example/qty.json"}}}),
                ),
                (
                    "common/qty.json",
                    json!({"$id":"https://acme.example/qty.json","type":"integer","minimum":1}),
                ),
            ],
            "orders/v1.json",
        )
        .unwrap();
        assert!(judge(&schema, json!({"qty": 2})).is_ok());
        assert!(judge(&schema, json!({"qty": 0})).is_err());
    }

    #[test]
    fn ref_outside_the_repository_is_a_compile_error_not_a_fetch() {
        let err = compile_in(
            &[(
                "orders/v1.json",
                json!({"$ref":"https://example.invalid/remote.json"}),
            )],
            "orders/v1.json",
        )
        .unwrap_err();
        assert!(
            err.message.contains("nothing is fetched")
                && err.message.contains(
                    r#"refs.toml: "https://example.invalid/remote.json" = "vendor/example.invalid/remote.json""#
                ),
            "{}",
            err.message
        );
    }

    #[test]
    fn malformed_json_is_one_whole_message_violation() {
        let schema = compile_in(&[("a/v1.json", json!({"type":"object"}))], "a/v1.json").unwrap();
        let violations = schema
            .validate(
                &Bytes::from_static(b"{nope"),
                &PayloadEncoding::Json,
                Normalize::AsSent,
                &MessageLimits::default(),
            )
            .unwrap_err();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].path, "");
        assert!(violations[0].reason.starts_with("not valid JSON"));
    }

    #[test]
    fn violations_are_capped() {
        let props: serde_json::Map<String, Value> = (0..50)
            .map(|i| (format!("f{i}"), json!({"type":"string"})))
            .collect();
        let schema =
            compile_in(&[("a/v1.json", json!({"properties": props}))], "a/v1.json").unwrap();
        let message: serde_json::Map<String, Value> =
            (0..50).map(|i| (format!("f{i}"), json!(i))).collect();
        let violations = judge(&schema, Value::Object(message)).unwrap_err();
        assert_eq!(violations.len(), MAX_VIOLATIONS);
    }

    /// Tuple validation: `items` as an array in draft 7, `prefixItems` in 2020-12.
    #[test]
    fn draft7_array_items_vs_2020_12_prefix_items() {
        let draft7 = compile_in(
            &[(
                "t/v1.json",
                json!({"$schema":"http://json-schema.org/draft-07/schema#",
                       "type":"array","items":[{"type":"string"},{"type":"integer"}]}),
            )],
            "t/v1.json",
        )
        .unwrap();
        assert!(judge(&draft7, json!(["a", 1])).is_ok());
        assert!(judge(&draft7, json!([1, "a"])).is_err());

        let draft2020 = compile_in(
            &[(
                "t/v1.json",
                json!({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}]}),
            )],
            "t/v1.json",
        )
        .unwrap();
        assert!(judge(&draft2020, json!(["a", 1])).is_ok());
        assert!(judge(&draft2020, json!([1, "a"])).is_err());
        // Draft 7 does not know `prefixItems`: it is ignored there.
        let draft7_prefix = compile_in(
            &[(
                "t/v1.json",
                json!({"$schema":"http://json-schema.org/draft-07/schema#",
                       "type":"array","prefixItems":[{"type":"string"}]}),
            )],
            "t/v1.json",
        )
        .unwrap();
        assert!(judge(&draft7_prefix, json!([1])).is_ok());
    }

    /// Draft 4's boolean `exclusiveMaximum` vs draft 6's numeric one.
    #[test]
    fn draft4_boolean_exclusive_maximum_vs_draft6_number() {
        let draft4 = compile_in(
            &[(
                "n/v1.json",
                json!({"$schema":"http://json-schema.org/draft-04/schema#",
                       "type":"number","maximum":10,"exclusiveMaximum":true}),
            )],
            "n/v1.json",
        )
        .unwrap();
        assert!(judge(&draft4, json!(9)).is_ok());
        assert!(judge(&draft4, json!(10)).is_err());

        let draft6 = compile_in(
            &[(
                "n/v1.json",
                json!({"$schema":"http://json-schema.org/draft-06/schema#",
                       "type":"number","exclusiveMaximum":10}),
            )],
            "n/v1.json",
        )
        .unwrap();
        assert!(judge(&draft6, json!(9.5)).is_ok());
        assert!(judge(&draft6, json!(10)).is_err());
    }

    /// Draft 6 introduced `const`; draft 4 ignores it.
    #[test]
    fn draft6_const_is_unknown_to_draft4() {
        let schema = |draft: &str| {
            compile_in(
                &[("c/v1.json", json!({"$schema": draft, "const": "x"}))],
                "c/v1.json",
            )
            .unwrap()
        };
        let draft6 = schema("http://json-schema.org/draft-06/schema#");
        assert!(judge(&draft6, json!("y")).is_err());
        let draft4 = schema("http://json-schema.org/draft-04/schema#");
        assert!(judge(&draft4, json!("y")).is_ok());
    }

    /// Draft 2019-09 introduced `dependentRequired`; draft 7 ignores it.
    #[test]
    fn draft2019_09_dependent_required_is_unknown_to_draft7() {
        let schema = |draft: &str| {
            compile_in(
                &[(
                    "d/v1.json",
                    json!({"$schema": draft, "dependentRequired": {"card": ["cvv"]}}),
                )],
                "d/v1.json",
            )
            .unwrap()
        };
        let draft2019 = schema("https://json-schema.org/draft/2019-09/schema");
        let violations = judge(&draft2019, json!({"card": "4111"})).unwrap_err();
        assert!(violations[0].reason.contains("cvv"), "{violations:?}");
        let draft7 = schema("http://json-schema.org/draft-07/schema#");
        assert!(judge(&draft7, json!({"card": "4111"})).is_ok());
    }

    /// The message tree and `serde_json::Value` reach the same verdict and the same violation
    /// paths for every keyword family, on valid and invalid instances alike.
    #[test]
    #[allow(clippy::too_many_lines)] // one table of cases, keyword family by keyword family
    fn the_message_tree_judges_as_serde_json_values_do() {
        let wide: serde_json::Map<String, Value> = (0..24)
            .map(|i| (format!("p{i}"), json!({"type": "integer", "minimum": i})))
            .collect();
        let wide_required: Vec<String> = (0..24).step_by(3).map(|i| format!("p{i}")).collect();
        let schemas = [
            json!({"type":"object","required":["id","qty"],"additionalProperties":false,
                   "properties":{"id":{"type":"string","minLength":2,"maxLength":4},
                                 "qty":{"type":"integer","minimum":1,"multipleOf":1}}}),
            json!({"properties": wide, "required": wide_required, "minProperties": 3}),
            json!({"patternProperties":{"^x-":{"type":"string"}},"propertyNames":{"maxLength":5},
                   "dependentRequired":{"a":["b"]},"dependentSchemas":{"c":{"required":["d"]}}}),
            json!({"enum":[{"a":[1,2]},"x",null,1.5]}),
            json!({"const":{"k":[1,{"z":true}]}}),
            json!({"type":"array","uniqueItems":true,"contains":{"type":"string"},"minContains":2,
                   "items":{"type":["string","number"]}}),
            json!({"if":{"properties":{"kind":{"const":"card"}}},
                   "then":{"required":["pan"]},"else":{"required":["iban"]}}),
            json!({"oneOf":[{"type":"string","format":"email"},{"type":"string","format":"date"}]}),
            json!({"anyOf":[{"type":"null"},{"type":"object","unevaluatedProperties":false,
                   "properties":{"a":{}}}]}),
            json!({"$defs":{"node":{"type":"object","properties":{"next":{"$ref":"#/$defs/node"},
                   "v":{"type":"integer"}},"required":["v"]}},"$ref":"#/$defs/node"}),
            json!({"$schema":"http://json-schema.org/draft-04/schema#","type":"integer"}),
        ];
        let instances = [
            r#"{"id":"ab","qty":2}"#,
            r#"{"id":"a","qty":0,"extra":true}"#,
            r#"{"id":"ab","qty":2,"id":"toolong"}"#,
            r#"{"id":"héé","qty":1.0}"#,
            r#"{"p0":0,"p3":3,"p6":6,"p9":9,"p12":12,"p15":15,"p18":18,"p21":21}"#,
            r#"{"p0":0,"p3":3,"p6":6,"p9":9,"p12":12,"p15":15,"p18":18,"p21":-1,"p21":21}"#,
            r#"{"p0":0,"p3":3,"p6":6,"p9":9,"p12":12,"p15":15,"p18":18}"#,
            r#"{"x-a":"s","x-b":1,"a":1,"c":1}"#,
            r#"{"toolongname":1,"a":1,"b":2,"c":3,"d":4}"#,
            r#"{"a":[1.0,2]}"#,
            r#"{"k":[1,{"z":true}]}"#,
            r#"{"k":[1,{"z":false}]}"#,
            r#"["a","b",1]"#,
            r#"["a","a",1]"#,
            r#"["a",{}]"#,
            r#"{"kind":"card","pan":"4111"}"#,
            r#"{"kind":"card"}"#,
            r#"{"iban":"NO93"}"#,
            r#""a@b.example""#,
            r#""2026-11-24""#,
            r#""neither""#,
            r#"{"a":1}"#,
            r#"{"a":1,"b":2}"#,
            r#"{"v":1,"next":{"v":2,"next":{"v":"x"}}}"#,
            r#"{"v":1,"next":{"next":{}}}"#,
            "1",
            "1.0",
            "1e2",
            "null",
            "1.5",
            r#""x""#,
        ];
        let paths = |errors: Vec<String>| {
            let mut errors = errors;
            errors.sort();
            errors
        };
        for schema_document in &schemas {
            let schema =
                compile_in(&[("s/v1.json", schema_document.clone())], "s/v1.json").unwrap();
            let reference = jsonschema::options()
                .should_validate_formats(true)
                .build(schema_document)
                .unwrap();
            for text in instances {
                let value: Value = serde_json::from_str(text).unwrap();
                let instance = Instance::parse(text.as_bytes(), 64).unwrap();
                let ours = schema.validator().is_valid(&instance);
                assert_eq!(
                    ours,
                    reference.is_valid(&value),
                    "{schema_document} on {text}"
                );
                let ours = paths(
                    schema
                        .validator()
                        .iter_errors(&instance)
                        .map(|e| e.instance_path().as_str().to_owned())
                        .collect(),
                );
                let theirs = paths(
                    reference
                        .iter_errors(&value)
                        .map(|e| e.instance_path().as_str().to_owned())
                        .collect(),
                );
                assert_eq!(ours, theirs, "{schema_document} on {text}");
            }
        }
    }

    #[test]
    fn format_is_asserted() {
        let schema = compile_in(
            &[("e/v1.json", json!({"type":"string","format":"email"}))],
            "e/v1.json",
        )
        .unwrap();
        assert!(judge(&schema, json!("a@b.example")).is_ok());
        assert!(judge(&schema, json!("not an email")).is_err());
    }

    #[test]
    fn ref_fragments_that_generators_write_resolve_as_written() {
        let schema = json!({
            "definitions": {
                "TopLevel<FacetedUnitSpec>": {"type": "object", "required": ["mark"]},
                "vector_common::id::Inputs<alloc::string::String>": {
                    "type": "array", "items": {"type": "string"}
                },
                "Parameter Node": {"type": "integer"},
                "100%": {"type": "boolean"}
            },
            "type": "object",
            "properties": {
                "spec": {"$ref": "#/definitions/TopLevel<FacetedUnitSpec>"},
                "inputs": {"$ref": "#/definitions/vector_common::id::Inputs<alloc::string::String>"},
                "node": {"$ref": "#/definitions/Parameter%20Node"},
                "flag": {"$ref": "#/definitions/100%"}
            }
        });
        let compiled = compile_in(&[("s/v1.json", schema.clone())], "s/v1.json").unwrap();
        let good = json!({"spec": {"mark": "bar"}, "inputs": ["a"], "node": 1, "flag": true});
        assert!(judge(&compiled, good).is_ok());
        for bad in [
            json!({"spec": {}}),
            json!({"inputs": [1]}),
            json!({"node": "one"}),
            json!({"flag": 0}),
        ] {
            assert!(judge(&compiled, bad.clone()).is_err(), "{bad}");
        }
        // The compatibility walk follows them too: narrowing a definition breaks v1's writers.
        let mut narrowed = schema;
        narrowed["definitions"]["vector_common::id::Inputs<alloc::string::String>"]["maxItems"] =
            json!(1);
        let v1 = compile_in(&[("s/v1.json", narrowed.clone())], "s/v1.json").unwrap();
        let v2 = compile_in(&[("s/v2.json", narrowed)], "s/v2.json").unwrap();
        assert!(!crate::formats::Evolution::changes(&compiled, &v1).is_empty());
        assert!(crate::formats::Evolution::changes(&v1, &v2).is_empty());
    }

    #[test]
    fn a_validator_set_aside_is_built_again_on_first_use_and_judges_the_same() {
        let repo = [
            ("s/v1.json", json!({"$ref": "common.json#/$defs/Item"})),
            (
                "s/common.json",
                json!({"$defs": {"Item": {"type": "object", "required": ["sku"]}}}),
            ),
        ];
        let schema = compile_in(&repo, "s/v1.json").unwrap();
        schema.set_aside();
        assert!(schema.validator.load().is_none());
        assert!(judge(&schema, json!({"sku": "x"})).is_ok());
        assert!(judge(&schema, json!({})).is_err());
        assert!(schema.validator.load().is_some());
    }
}
