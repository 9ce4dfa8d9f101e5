//! Schema languages. Each format is a folder behind [`CompiledSchema`] (it compiles a schema
//! version once, at registry load, and then judges messages on the hot path) and [`Evolution`]
//! (what breaks readers between two versions).
//!
//! A format is registered in one place, [`FormatKind`]: its variant, and that variant's arm in
//! each of the matches below — file extension, compilation, the encodings it judges, names and
//! media types, Confluent's name for it, the files it references. The registry, the pipeline,
//! metrics and the front ends ask [`FormatKind`] rather than compare formats, so a new variant
//! makes the compiler name every decision it needs.
//! This module also owns what every format shares: how a payload's encoding is named
//! ([`PayloadEncoding`]), how a failure is explained ([`Violation`]) and how a breaking change
//! between two versions is described ([`Incompatibility`]).

pub mod avro;
pub mod confluent;
pub mod graphql;
pub mod json;
pub mod limits;
pub mod protobuf;
mod repo;
pub mod rules;
mod settings;

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::model::ContentKind;
pub use crate::model::Violation;
pub use limits::MessageLimits;
pub use repo::{DerivedFromTree, RepoFiles};
pub use settings::{Compatibility, SchemaSettings};

/// At most this many violations are reported for one message.
pub const MAX_VIOLATIONS: usize = 20;

/// The schema languages Sluice knows, picked by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::VariantArray, strum::EnumCount)]
#[serde(rename_all = "snake_case")]
pub enum FormatKind {
    JsonSchema,
    Protobuf,
    Avro,
    #[serde(rename = "graphql")]
    GraphQl,
}

impl FormatKind {
    /// Every format, in the order they are declared (their index in it is [`FormatKind::index`]).
    pub const ALL: &'static [Self] = <Self as strum::VariantArray>::VARIANTS;

    /// The format's position in [`FormatKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The format's name in labels and listings (`json_schema`, `protobuf`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::Protobuf => "protobuf",
            Self::Avro => "avro",
            Self::GraphQl => "graphql",
        }
    }

    /// Confluent's `schemaType` for this format.
    pub fn confluent_type(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::JsonSchema => "JSON",
            Self::Protobuf => "PROTOBUF",
            Self::GraphQl => "GRAPHQL",
        }
    }

    /// Whether a station may store this format's messages in Confluent's wire format.
    pub fn frames_as_confluent(self) -> bool {
        match self {
            Self::JsonSchema | Self::Avro | Self::Protobuf => true,
            Self::GraphQl => false,
        }
    }

    /// Whether a schema text of this format is a JSON document (two texts are then the same
    /// schema when they are the same JSON value).
    pub fn text_is_json(self) -> bool {
        match self {
            Self::JsonSchema | Self::Avro => true,
            Self::Protobuf | Self::GraphQl => false,
        }
    }

    /// The extensions of this format's version files.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::JsonSchema => &["json"],
            Self::Protobuf => &["proto"],
            Self::Avro => &["avsc"],
            Self::GraphQl => &["graphql", "gql"],
        }
    }

    /// The format a version file's extension names, if any.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|format| format.extensions().contains(&ext))
    }

    /// Every version file extension, for messages: `.json, .proto, .avsc, .graphql or .gql`.
    pub fn known_extensions() -> String {
        let all: Vec<String> = Self::ALL
            .iter()
            .flat_map(|format| format.extensions())
            .map(|ext| format!(".{ext}"))
            .collect();
        match all.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => all.concat(),
        }
    }

    /// Compiles one schema version.
    pub fn compile(
        self,
        input: &CompileInput<'_>,
    ) -> Result<Arc<dyn CompiledSchema>, CompileError> {
        match self {
            Self::JsonSchema => Ok(Arc::new(json::JsonSchema::compile(
                Path::new(input.file),
                input.text,
                input.repo,
            )?)),
            Self::Protobuf => Ok(Arc::new(protobuf::ProtobufSchema::compile(input)?)),
            Self::Avro => Ok(Arc::new(avro::AvroSchema::compile(input)?)),
            Self::GraphQl => Ok(Arc::new(graphql::GraphQlSchema::compile(input)?)),
        }
    }

    /// The other repository files `text` (the file at `file`) refers to: JSON Schema `$ref`s to
    /// other files and Protobuf imports. Avro and GraphQL schemas are self-contained.
    pub fn references(
        self,
        file: &str,
        schema_root: &str,
        text: &str,
        repo: &RepoFiles,
    ) -> Vec<FileReference> {
        match self {
            Self::JsonSchema => json::references(file, text, repo),
            Self::Protobuf => protobuf::imports(file, schema_root, text, repo),
            Self::Avro | Self::GraphQl => Vec::new(),
        }
    }

    /// The paths a reference by `name` (as [`FormatKind::references`] gives it) could be found
    /// at besides the file it resolved to, so that a file added at one of them counts as a change
    /// to what refers to it: a Protobuf import is looked up under the schema root, then at the
    /// repository root.
    pub fn reference_candidates(self, schema_root: &str, name: &str) -> Vec<String> {
        match self {
            Self::Protobuf => vec![format!("{schema_root}{name}"), name.to_owned()],
            Self::JsonSchema | Self::Avro | Self::GraphQl => Vec::new(),
        }
    }

    /// Whether `text`, a file of this format, may reach files its references do not name by path
    /// (a JSON Schema document that rebases `$ref`s on an inner `$id`): what compiles from it then
    /// cannot be tracked by its inputs.
    pub fn has_untracked_references(self, text: &[u8]) -> bool {
        match self {
            Self::JsonSchema => json::rebases_refs(text),
            Self::Protobuf | Self::Avro | Self::GraphQl => false,
        }
    }

    /// Why a version of this format with `settings` can have no data-contract rules, if it
    /// cannot: a GraphQL document schema (without `root_type`) judges operations, not data.
    pub fn refuses_rules(self, settings: &SchemaSettings) -> Option<&'static str> {
        match self {
            Self::GraphQl if settings.root_type.is_none() => Some(
                "GraphQL document schemas have no rules (a data schema, with `root_type` in schema.toml, has)",
            ),
            Self::JsonSchema | Self::Protobuf | Self::Avro | Self::GraphQl => None,
        }
    }

    /// A repository file of this format that versions refer to, in the serialized form
    /// Confluent's clients ask for (`format=serialized`): a `.proto` as its encoded
    /// `FileDescriptorProto`. `None` where the format has no such form, or the file does not
    /// compile.
    pub fn serialized_file(
        self,
        file: &str,
        schema_root: &str,
        repo: &RepoFiles,
    ) -> Option<Vec<u8>> {
        match self {
            Self::Protobuf => protobuf::serialized_file(file, schema_root, repo).ok(),
            Self::JsonSchema | Self::Avro | Self::GraphQl => None,
        }
    }

    /// Whether messages sent with `encoding` can be judged by this format.
    pub fn accepts(self, encoding: &PayloadEncoding) -> bool {
        match self {
            Self::JsonSchema => matches!(
                encoding,
                PayloadEncoding::Json | PayloadEncoding::ConfluentFramed
            ),
            Self::Protobuf => matches!(
                encoding,
                PayloadEncoding::Json
                    | PayloadEncoding::Protobuf
                    | PayloadEncoding::ConfluentFramed
            ),
            Self::Avro => matches!(
                encoding,
                PayloadEncoding::Json | PayloadEncoding::Avro | PayloadEncoding::ConfluentFramed
            ),
            Self::GraphQl => matches!(encoding, PayloadEncoding::Json | PayloadEncoding::GraphQl),
        }
    }

    /// The format's name in sentences.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::JsonSchema => "JSON Schema",
            Self::Protobuf => "Protobuf",
            Self::Avro => "Avro",
            Self::GraphQl => "GraphQL",
        }
    }

    /// How a value in the format's binary encoding is stored.
    pub fn binary_content(self) -> ContentKind {
        match self {
            Self::JsonSchema => ContentKind::Json,
            Self::Protobuf => ContentKind::Protobuf,
            Self::Avro => ContentKind::Avro,
            Self::GraphQl => ContentKind::GraphQl,
        }
    }

    /// The media type of the format's binary encoding (what `normalize = "binary"` stores).
    pub fn binary_content_type(self) -> &'static str {
        match self {
            Self::JsonSchema => "application/json",
            Self::Protobuf => "application/x-protobuf",
            Self::Avro => "avro/binary",
            Self::GraphQl => "application/graphql",
        }
    }

    /// Content types a producer may use for this format, for error messages.
    pub fn expected_content_types(self) -> &'static str {
        match self {
            Self::JsonSchema => "application/json or application/vnd.confluent (framed)",
            Self::Protobuf => {
                "application/x-protobuf, application/json (proto3 JSON mapping) or application/vnd.confluent (framed)"
            }
            Self::Avro => "avro/binary (datum or single-object encoding), application/json or application/vnd.confluent (framed)",
            Self::GraphQl => "application/graphql (a document) or application/json (a request, or data with root_type)",
        }
    }
}

/// What a format compiles: one version file, with the repository around it for imports and
/// references, and the schema's settings.
pub struct CompileInput<'a> {
    /// The version's path inside the repository.
    pub file: &'a str,
    /// Where schema folders start inside the repository: `""` or `"schemas/"`.
    pub schema_root: &'a str,
    pub text: &'a str,
    pub repo: &'a RepoFiles,
    pub settings: &'a SchemaSettings,
    /// What the versions of one build share, compiled once for all of them; `None` compiles the
    /// version on its own.
    pub prepared: Option<&'a Prepared>,
}

/// What the versions of one build share, compiled once before each version is: the Protobuf
/// versions' descriptor pools, which hold the files they import once for all of them.
#[derive(Debug, Default)]
pub struct Prepared {
    pub protobuf: protobuf::Pools,
}

impl Prepared {
    /// Prepares the versions `versions` (format and repository path) of one build.
    pub fn build<'a>(
        versions: impl IntoIterator<Item = (FormatKind, &'a str)>,
        schema_root: &str,
        repo: &RepoFiles,
    ) -> Self {
        let protobuf = versions
            .into_iter()
            .filter_map(|(format, file)| match format {
                FormatKind::Protobuf => Some(file),
                FormatKind::JsonSchema | FormatKind::Avro | FormatKind::GraphQl => None,
            });
        Self {
            protobuf: protobuf::Pools::build(protobuf, schema_root, repo),
        }
    }
}

/// The files of `older` that references resolved to by another name than their path and that
/// `newer` resolves that name elsewhere (a JSON Schema `$id` moved to another document, or gone):
/// what referred to them changed though their text did not.
pub fn moved_reference_targets(older: &RepoFiles, newer: &RepoFiles) -> Vec<String> {
    FormatKind::ALL
        .iter()
        .flat_map(|format| match format {
            FormatKind::JsonSchema => older
                .derived::<json::JsonDocuments>()
                .paths_of_moved_ids(&newer.derived()),
            FormatKind::Protobuf | FormatKind::Avro | FormatKind::GraphQl => Vec::new(),
        })
        .collect()
}

/// A repository file a schema refers to: its path, and the name the schema uses for it (a
/// `$ref` without its fragment, an import path), as Confluent's schema references name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReference {
    pub name: String,
    pub file: String,
}

/// Whether a station stores messages as they were sent or in the format's binary encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    #[default]
    AsSent,
    Binary,
}

/// A message that passed: the bytes to store and whether they are JSON.
#[derive(Debug, Clone)]
pub struct Valid {
    /// Normally the payload itself (a cheap handle clone); re-encoded when normalizing.
    pub value: Bytes,
    pub is_json: bool,
}

impl Valid {
    /// The payload itself, stored as it was sent.
    pub fn as_sent(payload: &Bytes, encoding: &PayloadEncoding) -> Self {
        Self {
            value: payload.clone(),
            is_json: encoding.is_json(),
        }
    }
}

/// The (breaks, rule, path) of each change from `old` to `new`, two versions of one format: what
/// the formats' compatibility tests compare.
#[cfg(test)]
pub(crate) fn changes_between<T: Evolution>(
    old: &T,
    new: &T,
) -> Vec<(Breaks, &'static str, String)> {
    T::changes(old, new)
        .into_iter()
        .map(|change| (change.breaks, change.rule, change.path))
        .collect()
}

/// How `schema` judges `message` sent as JSON, with the default limits: for the formats' tests.
#[cfg(test)]
pub(crate) fn judge_json(
    schema: &dyn CompiledSchema,
    message: &serde_json::Value,
) -> Result<(), Vec<Violation>> {
    schema
        .validate(
            &Bytes::from(message.to_string()),
            &PayloadEncoding::Json,
            Normalize::AsSent,
            &MessageLimits::default(),
        )
        .map(drop)
}

/// A compiled schema version: the object the hot path calls.
pub trait CompiledSchema: Compare + Send + Sync + std::fmt::Debug {
    /// Judges one message sent with `encoding` (one [`FormatKind::accepts`]). For
    /// [`PayloadEncoding::ConfluentFramed`], `payload` is what follows the schema id. On failure
    /// returns the reasons, at most [`MAX_VIOLATIONS`]. A message past `limits` fails with a
    /// reason naming the limit.
    fn validate(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
        limits: &MessageLimits,
    ) -> Result<Valid, Vec<Violation>>;

    /// Whether `payload` says it was written with this very version (e.g. Avro's single-object
    /// fingerprint), so that this version, rather than the newest accepted, judges it.
    fn written_with_this_version(&self, _payload: &Bytes, _encoding: &PayloadEncoding) -> bool {
        false
    }

    /// `value` (this format's binary encoding, or JSON for JSON Schema) in Confluent's wire format
    /// under schema id `id`.
    fn confluent_frame(&self, id: u32, value: &[u8]) -> Bytes {
        confluent::frame(id, None, value)
    }

    /// Protobuf: the encoded `FileDescriptorProto` of the version's file, which Confluent clients
    /// ask for with `format=serialized`. `None` for other formats.
    fn serialized_descriptor(&self) -> Option<Vec<u8>> {
        None
    }

    /// Drops what only judging messages needs, for a version no station uses: it is built again
    /// on first use. A no-op where that part is small.
    fn set_aside(&self) {}

    /// Builds again what [`CompiledSchema::set_aside`] dropped, before a station needs it.
    fn prepare(&self) {}

    /// The constraints the schema itself declares beyond its types (Protobuf's `buf.validate`
    /// annotations) that `payload`, which this version accepted, breaks; each violation's
    /// `schema_path` names the version's file and the constraint. Empty for formats and versions
    /// without any.
    fn constraint_violations(
        &self,
        _payload: &Bytes,
        _encoding: &PayloadEncoding,
        _limits: &MessageLimits,
    ) -> Vec<Violation> {
        Vec::new()
    }

    /// Of `paths` (field, record or property names from the message's root), the index of the
    /// first that no message of this version can have, as the schema says (a closed object, a
    /// Protobuf message, an Avro record without that field); `None` when each may be there or
    /// the schema cannot tell. Rules reading a field that cannot be are refused at compile.
    fn missing_field(&self, _paths: &[&[String]]) -> Option<usize> {
        None
    }

    /// Judges one message as [`CompiledSchema::validate`] does and, when it is valid, hands it
    /// to `read` as data-contract rules read it ([`CompiledSchema::rules_message`]). A format
    /// that decodes a message to validate it hands over that decoding rather than decode twice.
    fn validate_and_read(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
        limits: &MessageLimits,
        read: &mut dyn FnMut(Result<rules::Message<'_>, String>),
    ) -> Result<Valid, Vec<Violation>> {
        let valid = self.validate(payload, encoding, normalize, limits)?;
        read(self.rules_message(payload, encoding, limits));
        Ok(valid)
    }

    /// The message as data-contract rules read it (`message` in a rule), from a payload this
    /// version accepted (without a Confluent frame's schema id) sent with `encoding`: the JSON
    /// tree of a JSON message ([`json::rules_message`]), the decoded message of a binary one.
    fn rules_message<'p>(
        &self,
        payload: &'p Bytes,
        encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<rules::Message<'p>, String>;
}

/// Comparing versions of one format: what changed from `older` to `newer` that breaks readers,
/// each change tagged with the readers it breaks. The registry decides, from the schema's
/// compatibility mode, which of them refuse a commit. Each format implements this; [`Compare`]
/// follows from it.
pub trait Evolution: Any {
    fn changes(older: &Self, newer: &Self) -> Vec<Incompatibility>
    where
        Self: Sized;
}

/// [`Evolution`] through the trait object: the changes from `older`, a version of the same
/// schema, to this one.
pub trait Compare: Any {
    fn changes_since(&self, older: &dyn CompiledSchema) -> Vec<Incompatibility>;
}

impl<T: Evolution> Compare for T {
    fn changes_since(&self, older: &dyn CompiledSchema) -> Vec<Incompatibility> {
        let older: &dyn Any = older;
        match older.downcast_ref::<T>() {
            Some(older) => T::changes(older, self),
            // Versions of one schema share a format: anything else is a registry bug, reported
            // as a change rather than a panic.
            None => vec![Incompatibility::new(
                Breaks::Both,
                "format_changed",
                "",
                "the versions use different schema formats",
            )],
        }
    }
}

/// Which readers a schema change breaks, in Confluent's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaks {
    /// Readers using the new version cannot read data written with the old one.
    Backward,
    /// Readers still on the old version cannot read data written with the new one.
    Forward,
    /// Both.
    Both,
}

impl Breaks {
    pub fn backward(self) -> bool {
        matches!(self, Self::Backward | Self::Both)
    }

    pub fn forward(self) -> bool {
        matches!(self, Self::Forward | Self::Both)
    }
}

/// One breaking change between two versions of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incompatibility {
    pub breaks: Breaks,
    /// A short stable name of the rule, e.g. `field_removed`, `required_added`.
    pub rule: &'static str,
    /// Where in the schema: a field path, JSON pointer or type name.
    pub path: String,
    pub message: String,
}

impl Incompatibility {
    pub fn new(
        breaks: Breaks,
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            breaks,
            rule,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A schema version that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
}

impl CompileError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// How a payload is encoded, from its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadEncoding {
    Json,
    Protobuf,
    Avro,
    GraphQl,
    ConfluentFramed,
    Other(String),
}

impl PayloadEncoding {
    /// How a value sent with this encoding is stored.
    pub fn content_kind(&self) -> ContentKind {
        match self {
            Self::Json => ContentKind::Json,
            Self::Protobuf => ContentKind::Protobuf,
            Self::Avro => ContentKind::Avro,
            Self::GraphQl => ContentKind::GraphQl,
            Self::ConfluentFramed => ContentKind::ConfluentFramed,
            Self::Other(essence) => ContentKind::Other(essence.clone()),
        }
    }

    /// Maps a `Content-Type` value; a missing one is taken as JSON. Allocates only for types
    /// Sluice does not know.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let Some(raw) = content_type else {
            return Self::Json;
        };
        let essence = raw.split(';').next().unwrap_or_default().trim();
        let is = |name: &str| essence.eq_ignore_ascii_case(name);
        let starts = |prefix: &str| {
            essence
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        let ends = |suffix: &str| {
            essence.len() >= suffix.len()
                && essence
                    .get(essence.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        };
        if starts("application/vnd.confluent") {
            Self::ConfluentFramed
        } else if is("application/json") || is("text/json") || ends("+json") {
            Self::Json
        } else if is("application/x-protobuf") || is("application/protobuf") {
            Self::Protobuf
        } else if is("avro/binary") || is("application/avro") {
            Self::Avro
        } else if is("application/graphql") {
            Self::GraphQl
        } else {
            Self::Other(essence.to_ascii_lowercase())
        }
    }

    pub fn is_json(&self) -> bool {
        matches!(self, Self::Json)
    }
}

/// A JSON value shortened for an error message.
pub(crate) fn preview(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// `key` escaped for use as one JSON pointer segment.
pub(crate) fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_sits_at_its_index() {
        for (index, &format) in FormatKind::ALL.iter().enumerate() {
            assert_eq!(format.index(), index);
        }
    }

    #[test]
    fn content_types_map_to_encodings() {
        use PayloadEncoding::*;
        assert_eq!(PayloadEncoding::from_content_type(None), Json);
        assert_eq!(
            PayloadEncoding::from_content_type(Some("application/json; charset=utf-8")),
            Json
        );
        assert_eq!(
            PayloadEncoding::from_content_type(Some("application/cloudevents+json")),
            Json
        );
        assert_eq!(
            PayloadEncoding::from_content_type(Some("application/x-protobuf")),
            Protobuf
        );
        assert_eq!(
            PayloadEncoding::from_content_type(Some("Text/Plain")),
            Other("text/plain".into())
        );
        assert_eq!(
            PayloadEncoding::from_content_type(Some("application/vnd.confluent.avro+json")),
            ConfluentFramed
        );
        assert_eq!(
            PayloadEncoding::from_content_type(Some("APPLICATION/GRAPHQL")),
            GraphQl
        );
    }
}
