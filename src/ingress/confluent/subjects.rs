//! What a Confluent subject names, and its versions as the API shows them: a schema (by its name,
//! or a station's `<station>-value` / `<station>-key`), or a file versions refer to (a support
//! subject, with one version). Each version carries its schema references.

use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ConfluentError;
use crate::formats::rules::{OnFailure, RuleSet};
use crate::formats::FormatKind;
use crate::registry::load::schema_root;
use crate::registry::references::{Reference, SupportSubject};
use crate::registry::{Schema, SchemaVersion, Snapshot};

/// A subject of the serving snapshot.
pub(super) enum Subject<'a> {
    Schema(&'a Arc<Schema>),
    Support(&'a Arc<SupportSubject>),
}

/// One version of a subject.
pub(super) enum Shown<'a> {
    Version(&'a Schema, &'a SchemaVersion),
    Support(&'a SupportSubject),
}

/// `?format=` of the schema-reading endpoints: `serialized` asks for a Protobuf schema as its
/// base64 `FileDescriptorProto` (what Confluent's Protobuf deserializers read).
#[derive(Debug, Default, Deserialize)]
pub(super) struct FormatParams {
    #[serde(default)]
    pub format: Option<String>,
}

/// The subject `name` names.
pub(super) fn resolve<'a>(
    snapshot: &'a Snapshot,
    name: &str,
) -> Result<Subject<'a>, ConfluentError> {
    if let Some(schema) = snapshot.schema(name) {
        return Ok(Subject::Schema(schema));
    }
    if let Some(support) = snapshot.support_subject(name) {
        return Ok(Subject::Support(support));
    }
    name.strip_suffix("-value")
        .or_else(|| name.strip_suffix("-key"))
        .and_then(|station| snapshot.station(station))
        .and_then(|station| station.schema.as_ref())
        .map(Subject::Schema)
        .ok_or_else(|| ConfluentError::subject_not_found(name))
}

impl<'a> Subject<'a> {
    pub fn versions(&self) -> Vec<u32> {
        match self {
            Self::Schema(schema) => schema.versions().iter().map(|v| v.version).collect(),
            Self::Support(_) => vec![1],
        }
    }

    /// Version `version` (a number, `latest` or `-1`) of subject `name`.
    pub fn version(&self, name: &str, version: &str) -> Result<Shown<'a>, ConfluentError> {
        match self {
            Self::Schema(schema) => pick(schema, name, version).map(|v| Shown::Version(schema, v)),
            Self::Support(support) => match number(version, 1)? {
                1 => Ok(Shown::Support(support)),
                _ => Err(ConfluentError::version_not_found(name, version)),
            },
        }
    }
}

/// Version `version` (a number, `latest` or `-1`) of `schema`, asked for as subject `name`.
pub(super) fn pick<'a>(
    schema: &'a Schema,
    name: &str,
    version: &str,
) -> Result<&'a SchemaVersion, ConfluentError> {
    schema
        .version(number(version, schema.newest())?)
        .ok_or_else(|| ConfluentError::version_not_found(name, version))
}

/// The version number `version` names, `newest` being the latest.
fn number(version: &str, newest: u32) -> Result<u32, ConfluentError> {
    match version {
        "latest" | "-1" => Ok(newest),
        v => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ConfluentError::invalid_version(v)),
    }
}

/// The version with global id `id`, of a schema or a support subject.
pub(super) fn by_id<'a>(snapshot: &'a Snapshot, id: &str) -> Result<Shown<'a>, ConfluentError> {
    let not_found = || ConfluentError::schema_not_found(format!("Schema {id} not found"));
    let id: u32 = id.parse().map_err(|_| not_found())?;
    if let Some((schema, version)) = snapshot.version_by_id(id) {
        return Ok(Shown::Version(schema, version));
    }
    snapshot
        .support_subjects()
        .find(|support| support.id == id)
        .map(|support| Shown::Support(support))
        .ok_or_else(not_found)
}

impl Shown<'_> {
    pub fn subject(&self) -> &str {
        match self {
            Self::Version(schema, _) => &schema.name,
            Self::Support(support) => &support.subject,
        }
    }

    pub fn number(&self) -> u32 {
        match self {
            Self::Version(_, version) => version.version,
            Self::Support(_) => 1,
        }
    }

    pub fn id(&self) -> u32 {
        match self {
            Self::Version(_, version) => version.id,
            Self::Support(support) => support.id,
        }
    }

    pub fn format(&self) -> FormatKind {
        match self {
            Self::Version(schema, _) => schema.format,
            Self::Support(support) => support.format,
        }
    }

    pub fn references(&self) -> &[Reference] {
        match self {
            Self::Version(_, version) => &version.references,
            Self::Support(support) => &support.references,
        }
    }

    /// The schema's source text.
    pub fn text(&self, snapshot: &Snapshot) -> String {
        match self {
            Self::Version(_, version) => version.text.to_string(),
            Self::Support(support) => snapshot
                .files
                .get(&support.file)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default(),
        }
    }

    /// The schema as asked for: the source, or for Protobuf with `format=serialized` its encoded
    /// `FileDescriptorProto` in base64.
    pub fn schema_string(&self, snapshot: &Snapshot, params: &FormatParams) -> String {
        if params.format.as_deref() != Some("serialized") {
            return self.text(snapshot);
        }
        let serialized = match self {
            Self::Version(_, version) => version.compiled.serialized_descriptor(),
            Self::Support(support) => support.format.serialized_file(
                &support.file,
                schema_root(&snapshot.files),
                &snapshot.files,
            ),
        };
        match serialized {
            Some(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
            None => self.text(snapshot),
        }
    }

    /// `schemaType`, `references` and `ruleSet`, where Confluent writes them: the type unless
    /// Avro (its default), the references and the version's rules when there are any.
    pub fn annotate(&self, body: &mut Value) {
        let kind = self.format().confluent_type();
        if kind != super::DEFAULT_SCHEMA_TYPE {
            body["schemaType"] = json!(kind);
        }
        if !self.references().is_empty() {
            body["references"] = json!(self.references());
        }
        if let Self::Version(
            _,
            SchemaVersion {
                rules: Some(rules), ..
            },
        ) = self
        {
            body["ruleSet"] = json!({ "domainRules": domain_rules(&rules.set) });
        }
    }

    /// The body of `GET /subjects/{subject}/versions/{version}` and of lookups.
    pub fn body(&self, subject: &str, snapshot: &Snapshot, params: &FormatParams) -> Value {
        let mut body = json!({
            "subject": subject,
            "version": self.number(),
            "id": self.id(),
            "schema": self.schema_string(snapshot, params),
        });
        self.annotate(&mut body);
        body
    }
}

/// A version's rules as Confluent's data-contract domain rules: CEL conditions checked when a
/// message is written, whose failure dead-letters it (`DLQ`) or only counts it (`NONE`).
fn domain_rules(rules: &RuleSet) -> Vec<Value> {
    rules
        .rules()
        .iter()
        .map(|rule| {
            let mut json = json!({
                "name": rule.name,
                "kind": "CONDITION",
                "mode": "WRITE",
                "type": "CEL",
                "expr": rule.expr,
                "onFailure": match rule.on_failure {
                    OnFailure::Dlq => "DLQ",
                    OnFailure::Warn => "NONE",
                },
                "disabled": false,
            });
            if let Some(doc) = &rule.doc {
                json["doc"] = json!(doc);
            }
            json
        })
        .collect()
}

/// The ids of every version and support subject whose references name `subject` `version`.
pub(super) fn referenced_by(snapshot: &Snapshot, subject: &str, version: u32) -> Vec<u32> {
    let names_it = |references: &[Reference]| {
        references
            .iter()
            .any(|r| r.subject == subject && r.version == version)
    };
    let versions = snapshot
        .schemas()
        .flat_map(|schema| schema.versions())
        .filter(|v| names_it(&v.references))
        .map(|v| v.id);
    let support = snapshot
        .support_subjects()
        .filter(|s| names_it(&s.references))
        .map(|s| s.id);
    let mut ids: Vec<u32> = versions.chain(support).collect();
    ids.sort_unstable();
    ids
}
