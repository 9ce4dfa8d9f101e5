//! Avro, through `apache-avro`: `.avsc` versions, and payloads sent as
//!
//! * a binary datum (`avro/binary`), read with the version as writer schema; bytes left over after
//!   the datum are a violation;
//! * single-object encoding (`C3 01` + the version's 8-byte Rabin fingerprint, then the datum);
//! * JSON: plain JSON matched against the schema the way `fastavro.validate` judges it (unions
//!   unwrapped, as Memphis's SDKs send them; a missing field is null), or — with
//!   `encoding = "avro-json"` in schema.toml — the Avro specification's JSON encoding, where a
//!   non-null union value is wrapped as `{"<branch type>": value}`.
//!
//! Logical types are checked where the specification constrains them: decimal precision,
//! `uuid` strings, `time-millis`/`time-micros` within a day. A hostile length prefix never
//! allocates more than `[limits] max_avro_allocation_bytes`. Stations with
//! `normalize = "binary"` store JSON payloads as binary datums.
//!
//! This module owns compiling a version and the entry point; `walk` accepts valid binary datums
//! in one pass, `binary` decodes and explains the others, `json` judges and normalizes JSON
//! payloads.

mod binary;
mod compat;
mod decimal;
mod json;
mod rules_value;
mod walk;

use std::collections::HashMap;

use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
use apache_avro::schema::Name;
use apache_avro::Schema;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{
    CompileError, CompileInput, CompiledSchema, MessageLimits, Normalize, PayloadEncoding, Valid,
    Violation, MAX_VIOLATIONS,
};

/// How an Avro schema expects JSON payloads (`encoding` in schema.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum JsonEncoding {
    /// Plain JSON, unions unwrapped.
    #[default]
    #[serde(rename = "plain")]
    Plain,
    /// The Avro specification's JSON encoding, unions wrapped.
    #[serde(rename = "avro-json")]
    AvroJson,
}

const DAY_MILLIS: i64 = 86_400_000;

/// The pattern of the logical types written as a plain `long` and bounded by nothing but it: the
/// timestamps, local or not, in milli-, micro- and nanoseconds.
macro_rules! timestamps {
    () => {
        apache_avro::Schema::TimestampMillis
            | apache_avro::Schema::TimestampMicros
            | apache_avro::Schema::TimestampNanos
            | apache_avro::Schema::LocalTimestampMillis
            | apache_avro::Schema::LocalTimestampMicros
            | apache_avro::Schema::LocalTimestampNanos
    };
}
use timestamps;
/// Deepest nesting of records, arrays and maps a binary datum may have (as prost allows Protobuf).
const MAX_NESTING: usize = 100;

/// Sets the most bytes one decode may allocate for a length-prefixed value. The first call wins
/// for the whole process (the crate keeps it globally).
pub fn set_allocation_limit(bytes: usize) -> usize {
    apache_avro::util::max_allocation_bytes(bytes)
}

/// A compiled Avro version.
#[derive(Debug)]
pub struct AvroSchema {
    /// The parsed schema and its named types.
    tree: Tree,
    /// `C3 01` + this version's Rabin fingerprint.
    single_object_header: Vec<u8>,
    json_encoding: JsonEncoding,
}

impl AvroSchema {
    pub fn compile(input: &CompileInput<'_>) -> Result<Self, CompileError> {
        let schema = Schema::parse_str(input.text).map_err(|e| CompileError::new(e.to_string()))?;
        Ok(Self {
            single_object_header: RabinFingerprintHeader::from_schema(&schema).build_header(),
            tree: Tree::new(schema, |schema| {
                let mut names = HashMap::new();
                collect_names(schema, &mut names);
                names
            }),
            json_encoding: input.settings.encoding,
        })
    }

    /// The parsed schema.
    fn schema(&self) -> &Schema {
        self.tree.borrow_owner()
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self
                .tree
                .borrow_dependent()
                .get(&full_name(name))
                .copied()
                .unwrap_or(schema),
            other => other,
        }
    }

    /// Whether a message can have the field at `path`; `None` when the schema cannot tell.
    fn field_known(&self, path: &[String]) -> Option<bool> {
        let mut schema = self.resolve(self.schema());
        for name in path {
            let Schema::Record(record) = schema else {
                return None;
            };
            let field = record.fields.iter().find(|field| &field.name == name);
            let Some(field) = field else {
                return Some(false);
            };
            schema = self.resolve(&field.schema);
        }
        Some(true)
    }
}

impl CompiledSchema for AvroSchema {
    fn validate(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
        limits: &MessageLimits,
    ) -> Result<Valid, Vec<Violation>> {
        if encoding.is_json() {
            let value = super::limits::parse_json(payload, limits)?;
            let mut violations = Vec::new();
            if !self.check_json(&value, self.schema(), "", &mut violations) {
                violations.truncate(MAX_VIOLATIONS);
                return Err(violations);
            }
            if normalize == Normalize::Binary {
                let datum = self.to_binary(&value).map_err(|v| vec![v])?;
                return Ok(Valid {
                    value: Bytes::from(datum),
                    is_json: false,
                });
            }
        } else {
            let framed = *encoding == PayloadEncoding::ConfluentFramed;
            self.validate_binary(payload, !framed)?;
        }
        Ok(Valid::as_sent(payload, encoding))
    }

    fn written_with_this_version(&self, payload: &Bytes, encoding: &PayloadEncoding) -> bool {
        *encoding == PayloadEncoding::Avro && payload.starts_with(&self.single_object_header)
    }

    fn missing_field(&self, paths: &[&[String]]) -> Option<usize> {
        paths
            .iter()
            .position(|path| self.field_known(path) == Some(false))
    }

    fn rules_message<'p>(
        &self,
        payload: &'p Bytes,
        encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<super::rules::Message<'p>, String> {
        self.rules_value(payload, encoding, limits)
            .map(super::rules::Message::from_value)
    }
}

impl AvroSchema {
    /// The payload's datum as a CEL value.
    fn rules_value(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<::cel::Value, String> {
        if encoding.is_json() {
            let json = super::limits::parse_json(payload, limits).map_err(|v| {
                v.into_iter()
                    .map(|v| v.reason)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            return self.rules_value_of_json(&json);
        }
        let single_object = *encoding != PayloadEncoding::ConfluentFramed;
        let datum = match payload.strip_prefix(self.single_object_header.as_slice()) {
            Some(datum) if single_object => datum,
            _ => payload,
        };
        self.rules_value_of_datum(datum)
    }
}

/// Named types by full name, for the `Ref`s met while walking the schema.
type Names<'a> = HashMap<String, &'a Schema>;

self_cell::self_cell!(
    /// A parsed schema with its named types pointing into it (a large schema's types are not
    /// copied: a record defined inside another would be copied once per level).
    struct Tree {
        owner: Schema,
        #[covariant]
        dependent: Names,
    }
    impl {Debug}
);

/// Indexes the named types (records, enums, fixed) `schema` defines, at any depth.
fn collect_names<'a>(schema: &'a Schema, names: &mut Names<'a>) {
    match schema {
        Schema::Record(record) => {
            names.insert(full_name(&record.name), schema);
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(full_name(&e.name), schema);
        }
        Schema::Fixed(f) => {
            names.insert(full_name(&f.name), schema);
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        Schema::Decimal(d) => collect_names(&d.inner, names),
        _ => {}
    }
}

/// Compiles `text` as a version with default settings, for tests here and in the submodules.
#[cfg(test)]
fn compile_for_test(text: &str) -> AvroSchema {
    AvroSchema::compile(&CompileInput {
        file: "s/v1.avsc",
        schema_root: "",
        text,
        repo: &crate::formats::RepoFiles::default(),
        settings: &crate::formats::SchemaSettings::default(),
        prepared: None,
    })
    .unwrap()
}

fn full_name(name: &Name) -> String {
    name.fullname(None)
}

/// The name a union branch goes by in the Avro JSON encoding.
fn type_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => full_name(&r.name),
        Schema::Enum(e) => full_name(&e.name),
        Schema::Fixed(f) => full_name(&f.name),
        Schema::Ref { name } => full_name(name),
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long | Schema::TimeMicros | timestamps!() => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String | Schema::Uuid => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Decimal(d) => type_name(&d.inner),
        Schema::Duration => "fixed".into(),
    }
}

/// Why `value` is not a time of day, in a unit of which a day has `per_day`, when it is not.
fn not_a_time_of_day(value: i64, per_day: i64, kind: &str) -> Option<String> {
    (!(0..per_day).contains(&value))
        .then(|| format!("{kind} {value} is not a time of day (0 to {})", per_day - 1))
}

fn violation(path: &str, reason: impl Into<String>) -> Violation {
    Violation {
        path: path.to_owned(),
        schema_path: String::new(),
        reason: reason.into(),
    }
}
