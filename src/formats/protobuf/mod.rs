//! Protobuf: `.proto` files (proto2 and proto3) compiled at registry load by protox — no system
//! `protoc` — with imports resolved inside the schema repository (from the schema root, then the
//! repository root) and Google's well-known types available. Messages are judged by
//! `prost-reflect`'s dynamic decoding.
//!
//! A message is the binary encoding of the schema's message type (`message` in schema.toml, else
//! the file's only top-level message), or its proto3 JSON mapping when sent as JSON. Violations:
//! bytes that do not decode (truncation, a wire type that does not match the field, invalid UTF-8
//! in a `string`), nesting deeper than `limits.max_protobuf_depth` (JSON: `limits.max_json_depth`),
//! missing proto2 `required` fields, and unknown fields unless `allow_unknown_fields = true`.
//! Binary payloads are first walked once on the wire (`wire.rs`), which accepts valid messages
//! without decoding them; anything it does not accept is decoded here and explained.

mod compat;
mod constraints;
mod depth;
mod pools;
mod rules_value;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::DescriptorPool;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

pub use pools::{Pools, SharedPool};

use super::confluent::split_message_indexes;
use super::{
    CompileError, CompileInput, CompiledSchema, DerivedFromTree, FileReference, MessageLimits,
    Normalize, PayloadEncoding, RepoFiles, Valid, Violation, MAX_VIOLATIONS,
};

/// A compiled Protobuf version: the message type that judges payloads.
#[derive(Debug)]
pub struct ProtobufSchema {
    message: MessageDescriptor,
    allow_unknown_fields: bool,
    /// Whether any message reachable from `message` has a proto2 `required` field.
    has_required: bool,
    /// Where `message` sits in its file, as Confluent's message-index array names it.
    message_indexes: Vec<i64>,
    /// The deepest nesting the type allows; `None` for recursive types.
    type_depth: Option<usize>,
    /// The one-pass check binary payloads try first; `None` for types it does not model.
    wire_plan: Option<wire::WirePlan>,
    /// The type's `buf.validate` constraints; `None` when it has none.
    constraints: Option<constraints::Constraints>,
}

/// The repository files a `.proto` text (the file at `file`) imports, by the import path it
/// writes; imports the repository does not hold (Google's well-known types) are left out.
pub fn imports(file: &str, schema_root: &str, text: &str, repo: &RepoFiles) -> Vec<FileReference> {
    let name = file.strip_prefix(schema_root).unwrap_or(file);
    let Ok(parsed) = File::from_source(name, text) else {
        return Vec::new();
    };
    parsed
        .file_descriptor_proto()
        .dependency
        .iter()
        .filter_map(|import| {
            let path = [format!("{schema_root}{import}"), import.clone()]
                .into_iter()
                .find(|path| repo.get(path).is_some())?;
            Some(FileReference {
                name: import.clone(),
                file: path,
            })
        })
        .collect()
}

/// The encoded `FileDescriptorProto` of repository file `file` (a `.proto` no version is, which
/// versions import), compiled with its own imports: what Confluent's clients ask for with
/// `format=serialized` when they follow a reference to it.
pub fn serialized_file(
    file: &str,
    schema_root: &str,
    repo: &RepoFiles,
) -> Result<Vec<u8>, CompileError> {
    let name = file.strip_prefix(schema_root).unwrap_or(file);
    let text = repo
        .get(file)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or_else(|| CompileError::new(format!("{file} is not a text file of the repository")))?;
    let pool = compile_alone(name, text, schema_root, repo)?;
    let compiled = pool
        .get_file_by_name(name)
        .expect("the compiled file is in its pool");
    Ok(compiled.file_descriptor_proto().encode_to_vec())
}

/// The pool of `name` (whose source is `text`, which the repository need not hold) compiled with
/// its imports from the repository and Google's well-known types.
fn compile_alone(
    name: &str,
    text: &str,
    schema_root: &str,
    repo: &RepoFiles,
) -> Result<DescriptorPool, CompileError> {
    let resolver = RepoResolver {
        compiled: Some((name.to_owned(), text.to_owned())),
        proto_files: repo.derived::<ProtoFiles>(),
        schema_root: schema_root.to_owned(),
    };
    Ok(compiler_for(name, resolver)?.descriptor_pool())
}

/// A protox compiler that has compiled `name`, resolving files with `repo` and then Google's
/// well-known types.
fn compiler_for(name: &str, repo: RepoResolver) -> Result<protox::Compiler, CompileError> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(repo);
    resolver.add(GoogleFileResolver::new());
    resolver.add(constraints::ValidateProtoResolver);
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_file(name)
        .map_err(|e| CompileError::new(e.to_string()))?;
    Ok(compiler)
}

/// Every `.proto` file of a repository, by path: what imports resolve against, shared by all the
/// Protobuf versions compiled from one tree.
pub struct ProtoFiles(HashMap<String, Bytes>);

impl DerivedFromTree for ProtoFiles {
    fn derive(repo: &RepoFiles) -> Self {
        let files = repo.iter().filter(|(path, _)| path.ends_with(".proto"));
        Self(
            files
                .map(|(path, bytes)| (path.to_owned(), bytes.clone()))
                .collect(),
        )
    }
}

/// Resolves the file being compiled to its text, and `import`s to repository files: relative to
/// the schema root first, then to the repository root.
struct RepoResolver {
    /// A file being compiled that the repository may not hold (a candidate schema), by the name
    /// protox opens it with, and its text.
    compiled: Option<(String, String)>,
    proto_files: Arc<ProtoFiles>,
    schema_root: String,
}

impl FileResolver for RepoResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if let Some((compiled, text)) = &self.compiled {
            if name == compiled {
                return File::from_source(name, text);
            }
        }
        let found = [format!("{}{name}", self.schema_root), name.to_owned()]
            .into_iter()
            .find_map(|path| self.proto_files.0.get(&path));
        let Some(bytes) = found else {
            return Err(protox::Error::file_not_found(name));
        };
        let source = std::str::from_utf8(bytes).map_err(|_| protox::Error::file_not_found(name))?;
        File::from_source(name, source)
    }
}

impl ProtobufSchema {
    pub fn compile(input: &CompileInput<'_>) -> Result<Self, CompileError> {
        let name = input
            .file
            .strip_prefix(input.schema_root)
            .unwrap_or(input.file);
        let shared = input
            .prepared
            .and_then(|prepared| prepared.protobuf.get(input.file));
        let shared = match shared {
            Some(shared) => shared.cloned().map_err(CompileError::clone)?,
            None => SharedPool::new(compile_alone(
                name,
                input.text,
                input.schema_root,
                input.repo,
            )?),
        };
        let pool = &shared.pool;
        let message = match &input.settings.message {
            Some(wanted) => pool.get_message_by_name(wanted).ok_or_else(|| {
                CompileError::new(format!(
                    "schema.toml names message `{wanted}`, which {name} does not define (use the fully qualified name, e.g. `package.Message`)"
                ))
            })?,
            None => {
                let file = pool
                    .get_file_by_name(name)
                    .expect("the compiled file is in its pool");
                let top_level: Vec<MessageDescriptor> = file.messages().collect();
                match top_level.as_slice() {
                    [only] => only.clone(),
                    [] => return Err(CompileError::new(format!("{name} defines no message"))),
                    several => {
                        let names: Vec<&str> = several.iter().map(|m| m.full_name()).collect();
                        return Err(CompileError::new(format!(
                            "{name} defines {} top-level messages ({}): set `message = \"...\"` in schema.toml",
                            names.len(),
                            names.join(", ")
                        )));
                    }
                }
            }
        };
        Ok(Self {
            constraints: constraints::Constraints::of(&message, input.file)?,
            wire_plan: wire::WirePlan::new(
                &shared.plan,
                &message,
                input.settings.allow_unknown_fields,
            ),
            has_required: reaches_required(&message, &mut Vec::new()),
            type_depth: depth::type_depth(&message),
            message_indexes: message_indexes(&message),
            message,
            allow_unknown_fields: input.settings.allow_unknown_fields,
        })
    }

    /// The message type a Confluent message-index path names in this version's file.
    fn message_at(&self, indexes: &[i64]) -> Option<MessageDescriptor> {
        let (first, rest) = indexes.split_first()?;
        let file = self.message.parent_file();
        let mut message = file.messages().nth(usize::try_from(*first).ok()?)?;
        for index in rest {
            let child = message
                .child_messages()
                .nth(usize::try_from(*index).ok()?)?;
            message = child;
        }
        Some(message)
    }

    /// The binary message inside `payload`, for encodings that carry one: the whole payload, or
    /// a Confluent frame's body when its message indexes name this schema's message.
    fn binary_body(&self, payload: &Bytes, encoding: &PayloadEncoding) -> Option<Bytes> {
        match encoding {
            PayloadEncoding::Json => None,
            PayloadEncoding::ConfluentFramed => {
                let (indexes, body) = split_message_indexes(payload).ok()?;
                (self.message_at(&indexes).as_ref() == Some(&self.message)).then_some(body)
            }
            _ => Some(payload.clone()),
        }
    }

    /// Decodes `payload` and judges the decoded message: the authority on what is valid, and the
    /// path that explains every violation.
    fn judge_decoded(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
        limits: &MessageLimits,
    ) -> Result<Valid, Vec<Violation>> {
        let message = self
            .decode(payload, encoding, limits)
            .map_err(|v| vec![v])?;
        let may_be_too_deep = self
            .type_depth
            .is_none_or(|deepest| deepest > limits.protobuf_depth);
        if may_be_too_deep && depth::deeper_than(&message, limits.protobuf_depth) {
            return Err(vec![Violation::whole_message(format!(
                "the message nests {} messages deeper than {} levels (limits.max_protobuf_depth)",
                self.message.full_name(),
                limits.protobuf_depth
            ))]);
        }
        let needs_walk = self.has_required || !self.allow_unknown_fields;
        if needs_walk && !is_complete(&message, self.allow_unknown_fields, self.has_required) {
            let mut violations = Vec::new();
            check_message(&message, "", self.allow_unknown_fields, &mut violations);
            violations.truncate(MAX_VIOLATIONS);
            return Err(violations);
        }
        let is_json = encoding.is_json();
        Ok(if is_json && normalize == Normalize::Binary {
            Valid {
                value: Bytes::from(message.encode_to_vec()),
                is_json: false,
            }
        } else {
            Valid {
                value: payload.clone(),
                is_json,
            }
        })
    }

    /// Decodes `payload` in its encoding, or explains why it does not decode.
    fn decode(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<DynamicMessage, Violation> {
        match encoding {
            PayloadEncoding::Json => {
                super::limits::check_json_depth(payload, limits.json_depth)?;
                let options = prost_reflect::DeserializeOptions::new()
                    .deny_unknown_fields(!self.allow_unknown_fields);
                let mut deserializer = serde_json::Deserializer::from_slice(payload);
                let message = DynamicMessage::deserialize_with_options(
                    self.message.clone(),
                    &mut deserializer,
                    &options,
                )
                .and_then(|m| deserializer.end().map(|()| m))
                .map_err(|e| {
                    Violation::whole_message(format!(
                        "not a valid JSON {} message: {e}",
                        self.message.full_name()
                    ))
                })?;
                Ok(message)
            }
            PayloadEncoding::ConfluentFramed => {
                let (indexes, body) = split_message_indexes(payload)?;
                let framed = self.message_at(&indexes);
                if framed.as_ref() != Some(&self.message) {
                    return Err(Violation::whole_message(format!(
                        "the frame's message indexes {indexes:?} name {}, but this schema's message is {}",
                        framed.map_or("no message".to_owned(), |m| m.full_name().to_owned()),
                        self.message.full_name()
                    )));
                }
                self.decode(&body, &PayloadEncoding::Protobuf, limits)
            }
            _ => DynamicMessage::decode(self.message.clone(), payload.as_ref()).map_err(|e| {
                Violation::whole_message(format!(
                    "not a valid binary {} message: {e}",
                    self.message.full_name()
                ))
            }),
        }
    }

    /// Whether a message can have the field at `path`; `None` when the schema cannot tell.
    fn field_known(&self, path: &[String]) -> Option<bool> {
        let mut message = self.message.clone();
        for (depth, name) in path.iter().enumerate() {
            let Some(field) = message.get_field_by_name(name) else {
                return Some(false);
            };
            let last = depth + 1 == path.len();
            match field.kind() {
                _ if last => return Some(true),
                prost_reflect::Kind::Message(child)
                    if !field.is_list()
                        && !field.is_map()
                        && !child.full_name().starts_with("google.protobuf.") =>
                {
                    message = child
                }
                _ => return None,
            }
        }
        Some(true)
    }
}

impl CompiledSchema for ProtobufSchema {
    fn validate(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
        limits: &MessageLimits,
    ) -> Result<Valid, Vec<Violation>> {
        let walked = self.wire_plan.as_ref().and_then(|plan| {
            let body = self.binary_body(payload, encoding)?;
            Some(plan.accepts(&body, limits.protobuf_depth))
        });
        if walked == Some(true) {
            debug_assert!(
                self.judge_decoded(payload, encoding, normalize, limits)
                    .is_ok(),
                "the wire walk accepted a payload decoding refuses: {payload:?}"
            );
            return Ok(Valid {
                value: payload.clone(),
                is_json: false,
            });
        }
        self.judge_decoded(payload, encoding, normalize, limits)
    }

    fn rules_message<'p>(
        &self,
        payload: &'p Bytes,
        encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<super::rules::Message<'p>, String> {
        let message = self
            .decode(payload, encoding, limits)
            .map_err(|violation| violation.reason)?;
        Ok(super::rules::Message::from_value(
            rules_value::message_value(&message),
        ))
    }

    fn missing_field(&self, paths: &[&[String]]) -> Option<usize> {
        paths
            .iter()
            .position(|path| self.field_known(path) == Some(false))
    }

    fn constraint_violations(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Vec<Violation> {
        let Some(constraints) = &self.constraints else {
            return Vec::new();
        };
        match self.decode(payload, encoding, limits) {
            Ok(message) => constraints.check(&message),
            Err(violation) => vec![violation],
        }
    }

    fn serialized_descriptor(&self) -> Option<Vec<u8>> {
        Some(
            self.message
                .parent_file()
                .file_descriptor_proto()
                .encode_to_vec(),
        )
    }

    fn confluent_frame(&self, id: u32, value: &[u8]) -> Bytes {
        super::confluent::frame(id, Some(&self.message_indexes), value)
    }
}

/// The index path of `message` in its file: its position among the file's top-level messages,
/// then among each parent's nested messages.
fn message_indexes(message: &MessageDescriptor) -> Vec<i64> {
    let mut path = Vec::new();
    let mut current = message.clone();
    loop {
        let siblings: Vec<MessageDescriptor> = match current.parent_message() {
            Some(parent) => parent.child_messages().collect(),
            None => current.parent_file().messages().collect(),
        };
        let position = siblings
            .iter()
            .position(|m| m.full_name() == current.full_name())
            .unwrap_or(0);
        path.push(position as i64);
        match current.parent_message() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    path.reverse();
    path
}

/// Fast path: whether `message` and everything nested in it has every required field and (unless
/// allowed) no unknown field. Allocates nothing; [`check_message`] explains a `false`.
fn is_complete(message: &DynamicMessage, allow_unknown_fields: bool, has_required: bool) -> bool {
    if !allow_unknown_fields && message.unknown_fields().next().is_some() {
        return false;
    }
    if has_required
        && message
            .descriptor()
            .fields()
            .any(|field| field.is_required() && !message.has_field(&field))
    {
        return false;
    }
    message
        .fields()
        .all(|(_, value)| value_is_complete(value, allow_unknown_fields, has_required))
}

fn value_is_complete(value: &Value, allow_unknown_fields: bool, has_required: bool) -> bool {
    match value {
        Value::Message(nested) => is_complete(nested, allow_unknown_fields, has_required),
        Value::List(items) => items
            .iter()
            .all(|item| value_is_complete(item, allow_unknown_fields, has_required)),
        Value::Map(entries) => entries
            .values()
            .all(|item| value_is_complete(item, allow_unknown_fields, has_required)),
        _ => true,
    }
}

/// Whether `message` or any message type reachable through its fields has a required field.
fn reaches_required(message: &MessageDescriptor, seen: &mut Vec<String>) -> bool {
    if seen.iter().any(|name| name == message.full_name()) {
        return false;
    }
    seen.push(message.full_name().to_owned());
    message.fields().any(|field| {
        field.is_required()
            || match field.kind() {
                prost_reflect::Kind::Message(nested) => reaches_required(&nested, seen),
                _ => false,
            }
    })
}

/// Collects missing required fields and unknown fields of `message` and everything nested in it.
fn check_message(
    message: &DynamicMessage,
    path: &str,
    allow_unknown_fields: bool,
    violations: &mut Vec<Violation>,
) {
    if violations.len() >= MAX_VIOLATIONS {
        return;
    }
    let descriptor = message.descriptor();
    for field in descriptor.fields() {
        if field.is_required() && !message.has_field(&field) {
            violations.push(Violation {
                path: format!("{path}/{}", field.name()),
                schema_path: format!("{}.{}", descriptor.full_name(), field.name()),
                reason: format!("required field `{}` is missing", field.name()),
            });
        }
    }
    if !allow_unknown_fields {
        for unknown in message.unknown_fields() {
            violations.push(Violation {
                path: format!("{path}/{}", unknown.number()),
                schema_path: descriptor.full_name().to_owned(),
                reason: format!(
                    "field number {} is not in {} (set allow_unknown_fields = true in schema.toml to accept unknown fields)",
                    unknown.number(),
                    descriptor.full_name()
                ),
            });
        }
    }
    for (field, value) in message.fields() {
        let field_path = format!("{path}/{}", field.name());
        check_value(value, &field_path, allow_unknown_fields, violations);
    }
}

fn check_value(
    value: &Value,
    path: &str,
    allow_unknown_fields: bool,
    violations: &mut Vec<Violation>,
) {
    match value {
        Value::Message(nested) => check_message(nested, path, allow_unknown_fields, violations),
        Value::List(items) => {
            for (index, item) in items.iter().enumerate() {
                check_value(
                    item,
                    &format!("{path}/{index}"),
                    allow_unknown_fields,
                    violations,
                );
            }
        }
        Value::Map(entries) => {
            for (key, item) in entries {
                let key = match key {
                    prost_reflect::MapKey::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                check_value(
                    item,
                    &format!("{path}/{key}"),
                    allow_unknown_fields,
                    violations,
                );
            }
        }
        _ => {}
    }
}

/// Compiles `files[0]` (the others are importable) for tests here and in `wire`.
#[cfg(test)]
fn compile(
    files: &[(&str, &str)],
    settings: crate::formats::SchemaSettings,
) -> Result<ProtobufSchema, CompileError> {
    let repo: crate::formats::RepoFiles = files
        .iter()
        .map(|(p, c)| (p.to_string(), Bytes::from(c.to_string())))
        .collect();
    let (file, text) = files[0];
    ProtobufSchema::compile(&CompileInput {
        file,
        schema_root: "",
        text,
        repo: &repo,
        settings: &settings,
        prepared: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::SchemaSettings;

    #[test]
    fn types_many_paths_reach_are_measured_once() {
        // T60 holds T59 twice and T58: 2^60 paths from the top, 61 levels deep.
        let mut text = String::from(
            "syntax = \"proto3\";\nmessage T0 { string id = 1; }\nmessage T1 { T0 a = 1; }\n",
        );
        for i in 2..=60 {
            text.push_str(&format!(
                "message T{i} {{ T{} a = 1; T{} b = 2; T{} c = 3; }}\n",
                i - 1,
                i - 1,
                i - 2
            ));
        }
        text.push_str("message Top { T60 t = 1; }\n");
        let settings = SchemaSettings {
            message: Some("Top".into()),
            ..SchemaSettings::default()
        };
        let compiled = compile(&[("s/v1.proto", &text)], settings).unwrap();
        assert_eq!(compiled.type_depth, Some(62));
        let recursive = "syntax = \"proto3\";\nmessage A { B b = 1; C c = 2; }\nmessage B { A a = 1; }\nmessage C { string s = 1; }\n";
        let settings = SchemaSettings {
            message: Some("A".into()),
            ..SchemaSettings::default()
        };
        assert_eq!(
            compile(&[("s/v1.proto", recursive)], settings)
                .unwrap()
                .type_depth,
            None
        );
    }

    #[test]
    fn several_top_level_messages_need_a_message_setting() {
        let two = "syntax = \"proto3\"; package p; message A {} message B {}";
        let err = compile(&[("s/v1.proto", two)], SchemaSettings::default()).unwrap_err();
        assert!(err.message.contains("p.A, p.B"), "{}", err.message);
        let settings = SchemaSettings {
            message: Some("p.B".into()),
            ..SchemaSettings::default()
        };
        assert_eq!(
            compile(&[("s/v1.proto", two)], settings)
                .unwrap()
                .message
                .full_name(),
            "p.B"
        );
        let settings = SchemaSettings {
            message: Some("p.C".into()),
            ..SchemaSettings::default()
        };
        assert!(compile(&[("s/v1.proto", two)], settings).is_err());
    }

    #[test]
    fn imports_resolve_inside_the_repository_and_to_well_known_types() {
        let schema = compile(
            &[
                (
                    "s/v1.proto",
                    "syntax = \"proto3\"; import \"common/id.proto\"; import \"google/protobuf/any.proto\";
                     message M { common.Id id = 1; google.protobuf.Any extra = 2; }",
                ),
                ("common/id.proto", "syntax = \"proto3\"; package common; message Id { string v = 1; }"),
            ],
            SchemaSettings::default(),
        )
        .unwrap();
        assert_eq!(schema.message.full_name(), "M");
        let err = compile(
            &[(
                "s/v1.proto",
                "syntax = \"proto3\"; import \"missing.proto\"; message M {}",
            )],
            SchemaSettings::default(),
        )
        .unwrap_err();
        assert!(err.message.contains("missing.proto"), "{}", err.message);
    }

    #[test]
    fn allow_unknown_fields_accepts_them() {
        let settings = SchemaSettings {
            allow_unknown_fields: true,
            ..SchemaSettings::default()
        };
        let schema = compile(
            &[(
                "s/v1.proto",
                "syntax = \"proto3\"; message M { int32 a = 1; }",
            )],
            settings,
        )
        .unwrap();
        // field 1 = 5, then unknown field 9 = 1
        let payload = Bytes::from_static(&[0x08, 0x05, 0x48, 0x01]);
        assert!(schema
            .validate(
                &payload,
                &PayloadEncoding::Protobuf,
                Normalize::AsSent,
                &Default::default()
            )
            .is_ok());
    }
}
