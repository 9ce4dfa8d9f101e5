//! protovalidate: the `buf.validate` constraints a `.proto` annotates its messages with (field
//! rules such as string lengths and numeric bounds, `required`, oneof rules, message-level CEL),
//! enforced through `prost-protovalidate` on a message the schema accepted; and
//! `buf/validate/validate.proto` itself, importable by every file without the repository
//! vendoring it.

use std::collections::{HashMap, HashSet};

use prost_protovalidate::{Error as ValidateError, Validator, ValidatorOption};
use prost_protovalidate_types::field_path_element::Subscript;
use prost_protovalidate_types::{field_constraints_typed, message_constraints_typed, FieldPath};
use prost_reflect::{DescriptorPool, DynamicMessage, ExtensionDescriptor, MessageDescriptor};
use protox::file::{File, FileResolver};

use crate::formats::{CompileError, Violation};
use crate::model::CONSTRAINT_MARK;

/// The import path protovalidate's annotations are declared at.
pub const VALIDATE_PROTO: &str = "buf/validate/validate.proto";

/// Resolves [`VALIDATE_PROTO`] to protovalidate's own descriptor of it (its imports are Google's
/// well-known types).
pub struct ValidateProtoResolver;

impl FileResolver for ValidateProtoResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name != VALIDATE_PROTO {
            return Err(protox::Error::file_not_found(name));
        }
        let file = prost_protovalidate_types::DESCRIPTOR_POOL
            .get_file_by_name(VALIDATE_PROTO)
            .ok_or_else(|| protox::Error::file_not_found(name))?;
        Ok(File::from_file_descriptor_proto(
            file.file_descriptor_proto().clone(),
        ))
    }
}

/// The constraints of a version's message type and of every message it reaches.
pub struct Constraints {
    validator: Validator,
    /// The version's file, which violations name.
    file: String,
    /// The `message` of each CEL constraint, by id: what a failure of a message-level one is
    /// reported with.
    cel_messages: HashMap<String, String>,
}

impl std::fmt::Debug for Constraints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraints")
            .field("file", &self.file)
            .finish()
    }
}

impl Constraints {
    /// The constraints `message` (of repository file `file`) is held to; `None` when neither it
    /// nor any message it reaches is annotated. Constraints that cannot be compiled (a CEL
    /// expression that does not parse, a rule on a field of the wrong type) refuse the version.
    pub fn of(message: &MessageDescriptor, file: &str) -> Result<Option<Self>, CompileError> {
        let pool = message.parent_pool();
        if pool.get_file_by_name(VALIDATE_PROTO).is_none() || !is_annotated(message, pool) {
            return Ok(None);
        }
        let validator = Validator::with_options(&[
            ValidatorOption::DisableLazy,
            ValidatorOption::MessageDescriptors(vec![message.clone()]),
        ]);
        let mut cel_messages = HashMap::new();
        collect_cel_messages(message, &mut cel_messages);
        let constraints = Self {
            validator,
            file: file.to_owned(),
            cel_messages,
        };
        // Judging the empty message builds every evaluator the type reaches, and reports the
        // constraints that do not compile.
        match constraints
            .validator
            .validate(&DynamicMessage::new(message.clone()))
        {
            Err(ValidateError::Compilation(e)) => Err(CompileError::new(format!(
                "its buf.validate constraints do not compile: {}",
                e.to_string().lines().next().unwrap_or_default()
            ))),
            _ => Ok(Some(constraints)),
        }
    }

    /// The constraints `message` breaks, each located by field path and named by constraint id.
    pub fn check(&self, message: &DynamicMessage) -> Vec<Violation> {
        match self.validator.validate(message) {
            Ok(()) => Vec::new(),
            Err(ValidateError::Validation(refused)) => refused
                .violations()
                .iter()
                .map(|violation| {
                    let proto = violation.to_proto();
                    let id = violation.rule_id();
                    Violation {
                        path: proto.field.as_ref().map(pointer).unwrap_or_default(),
                        schema_path: format!("{}{CONSTRAINT_MARK}{id}", self.file),
                        reason: self.reason(id, violation.message()),
                    }
                })
                .collect(),
            Err(other) => vec![Violation {
                path: String::new(),
                schema_path: format!("{}{CONSTRAINT_MARK}evaluation", self.file),
                reason: format!("the buf.validate constraints could not be evaluated: {other}"),
            }],
        }
    }
}

impl Constraints {
    /// What a producer is told of constraint `id`: protovalidate's sentence, else the
    /// constraint's own `message`, else its id.
    fn reason(&self, id: &str, message: &str) -> String {
        if !message.is_empty() {
            return message.to_owned();
        }
        self.cel_messages
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("constraint `{id}` is not satisfied"))
    }
}

/// The `message` of every CEL constraint on `message` and the messages it reaches, by id.
fn collect_cel_messages(message: &MessageDescriptor, found: &mut HashMap<String, String>) {
    let mut seen = HashSet::new();
    let mut pending = vec![message.clone()];
    while let Some(message) = pending.pop() {
        if !seen.insert(message.full_name().to_owned()) {
            continue;
        }
        let mut rules = message_constraints_typed(&message)
            .ok()
            .flatten()
            .map(|m| m.cel)
            .unwrap_or_default();
        for field in message.fields() {
            if let Some(field_rules) = field_constraints_typed(&field).ok().flatten() {
                rules.extend(field_rules.cel);
            }
            if let prost_reflect::Kind::Message(child) = field.kind() {
                pending.push(child);
            }
        }
        for rule in rules {
            if let (Some(id), Some(text)) = (rule.id, rule.message) {
                found.entry(id).or_insert(text);
            }
        }
    }
}

/// A protovalidate field path as a JSON pointer: `/items/0/sku`, map keys as members.
fn pointer(path: &FieldPath) -> String {
    let mut pointer = String::new();
    for element in &path.elements {
        pointer.push('/');
        pointer.push_str(element.field_name());
        let subscript = match &element.subscript {
            None => continue,
            Some(Subscript::Index(i)) => i.to_string(),
            Some(Subscript::BoolKey(b)) => b.to_string(),
            Some(Subscript::IntKey(i)) => i.to_string(),
            Some(Subscript::UintKey(u)) => u.to_string(),
            Some(Subscript::StringKey(s)) => s.replace('~', "~0").replace('/', "~1"),
        };
        pointer.push('/');
        pointer.push_str(&subscript);
    }
    pointer
}

/// Whether `message`, or a message it reaches, carries a `buf.validate` annotation.
fn is_annotated(message: &MessageDescriptor, pool: &DescriptorPool) -> bool {
    let extension = |name: &str| pool.get_extension_by_name(name);
    let annotations = Annotations {
        message: extension("buf.validate.message"),
        field: extension("buf.validate.field"),
        oneof: extension("buf.validate.oneof"),
    };
    let mut seen = Vec::new();
    annotations.reached(message, &mut seen)
}

struct Annotations {
    message: Option<ExtensionDescriptor>,
    field: Option<ExtensionDescriptor>,
    oneof: Option<ExtensionDescriptor>,
}

impl Annotations {
    fn reached(&self, message: &MessageDescriptor, seen: &mut Vec<String>) -> bool {
        if seen.iter().any(|name| name == message.full_name()) {
            return false;
        }
        seen.push(message.full_name().to_owned());
        let has = |options: DynamicMessage, extension: &Option<ExtensionDescriptor>| {
            extension.as_ref().is_some_and(|e| options.has_extension(e))
        };
        has(message.options(), &self.message)
            || message.oneofs().any(|o| has(o.options(), &self.oneof))
            || message.fields().any(|field| {
                has(field.options(), &self.field)
                    || match field.kind() {
                        prost_reflect::Kind::Message(child) => self.reached(&child, seen),
                        _ => false,
                    }
            })
    }
}
