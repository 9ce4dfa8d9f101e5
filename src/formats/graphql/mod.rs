//! GraphQL, with both uses people have, parsed and validated by `apollo-compiler`:
//!
//! * **documents** (no `root_type`): the payload is a GraphQL executable document — raw with
//!   `Content-Type: application/graphql`, or a GraphQL-over-HTTP JSON request
//!   `{"query", "operationName"?, "variables"?}`. It must parse and pass the specification's
//!   validation rules (§5: operations, fields, arguments, fragments, values, directives, variables)
//!   against the SDL. This is what Memphis Schemaverse validates. Violations are located as
//!   `line:column` in the document.
//! * **data** (`root_type = "Order"` in schema.toml): the payload is JSON data that must match that
//!   type: objects and input objects field by field (unknown fields are violations), interfaces and
//!   unions by `__typename`, non-null, lists, enums and the built-in scalars (`Int` is 32-bit).
//!
//! Documents are bounded by `limits.max_graphql_depth` and `limits.max_graphql_tokens`, which a
//! schema's own `max_depth` and `max_tokens` in schema.toml may lower.

mod compat;

use std::collections::HashMap;

use apollo_compiler::ast::Type;
use apollo_compiler::schema::{ExtendedType, Implementers, InterfaceType, UnionType};
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{Name, Schema};
use bytes::Bytes;
use serde_json::Value as Json;

use super::{
    pointer_escape, preview, rules, CompileError, CompileInput, CompiledSchema, MessageLimits,
    Normalize, PayloadEncoding, Valid as Accepted, Violation, MAX_VIOLATIONS,
};

#[derive(Debug)]
pub struct GraphQlSchema {
    schema: Valid<Schema>,
    /// Data mode: the type JSON payloads must match.
    root_type: Option<Name>,
    implementers: HashMap<Name, Implementers>,
    /// The schema's own `max_depth`, when it is stricter than `limits.max_graphql_depth`.
    max_depth: Option<usize>,
    /// The schema's own `max_tokens`, when it is stricter than `limits.max_graphql_tokens`.
    max_tokens: Option<usize>,
}

impl GraphQlSchema {
    pub fn compile(input: &CompileInput<'_>) -> Result<Self, CompileError> {
        let schema = Schema::parse_and_validate(input.text, input.file)
            .map_err(|e| CompileError::new(diagnostics(&e.errors)))?;
        let root_type = match &input.settings.root_type {
            None => None,
            Some(wanted) => {
                let name = Name::new(wanted)
                    .map_err(|_| CompileError::new(format!("`{wanted}` is not a GraphQL name")))?;
                match schema.types.get(&name) {
                    Some(ExtendedType::Object(_) | ExtendedType::Interface(_))
                    | Some(ExtendedType::Union(_) | ExtendedType::InputObject(_)) => Some(name),
                    Some(_) => {
                        return Err(CompileError::new(format!(
                            "root_type `{wanted}` must be an object, interface, union or input type"
                        )))
                    }
                    None => {
                        return Err(CompileError::new(format!(
                            "root_type `{wanted}` is not a type of {}",
                            input.file
                        )))
                    }
                }
            }
        };
        Ok(Self {
            implementers: schema.implementers_map().into_iter().collect(),
            schema,
            root_type,
            max_depth: input.settings.max_depth,
            max_tokens: input.settings.max_tokens,
        })
    }

    fn validate_document(
        &self,
        source: &str,
        operation: Option<&str>,
        limits: &MessageLimits,
    ) -> Result<(), Vec<Violation>> {
        let max_depth = self
            .max_depth
            .unwrap_or(usize::MAX)
            .min(limits.graphql_depth);
        let max_tokens = self
            .max_tokens
            .unwrap_or(usize::MAX)
            .min(limits.graphql_tokens);
        let parsed = apollo_compiler::parser::Parser::new()
            .recursion_limit(max_depth)
            .token_limit(max_tokens)
            .parse_executable(&self.schema, source, "message.graphql");
        let document = match parsed {
            Ok(document) => document,
            Err(invalid) => {
                let mut violations = located(&invalid.errors);
                for violation in &mut violations {
                    if violation.reason.contains("recursion limit") {
                        violation.reason += &format!(
                            " (at most {max_depth} levels: limits.max_graphql_depth or the schema's max_depth)"
                        );
                    } else if violation.reason.contains("token limit") {
                        violation.reason += &format!(
                            " (at most {max_tokens} tokens: limits.max_graphql_tokens or the schema's max_tokens)"
                        );
                    }
                }
                return Err(violations);
            }
        };
        let document = match document.validate(&self.schema) {
            Ok(valid) => valid,
            Err(invalid) => return Err(located(&invalid.errors)),
        };
        if let Some(name) = operation {
            if document.operations.get(Some(name)).is_err() {
                return Err(vec![Violation::whole_message(format!(
                    "operationName `{name}` names no operation of the document"
                ))]);
            }
        }
        Ok(())
    }

    fn validate_request(
        &self,
        payload: &Bytes,
        limits: &MessageLimits,
    ) -> Result<(), Vec<Violation>> {
        let request = super::limits::parse_json(payload, limits)?;
        let query = request.get("query").and_then(Json::as_str).ok_or_else(|| {
            vec![Violation::whole_message(
                "a JSON GraphQL request needs a \"query\" string (or send the document as application/graphql)",
            )]
        })?;
        let operation = match request.get("operationName") {
            None | Some(Json::Null) => None,
            Some(Json::String(name)) => Some(name.as_str()),
            Some(_) => {
                return Err(vec![Violation {
                    path: "/operationName".into(),
                    schema_path: String::new(),
                    reason: "operationName must be a string".into(),
                }])
            }
        };
        self.validate_document(query, operation, limits)
    }

    /// Checks JSON data against a named type; pushes violations.
    fn check_named(&self, value: &Json, type_name: &Name, path: &str, out: &mut Vec<Violation>) {
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        let mismatch = |out: &mut Vec<Violation>, expected: &str| {
            out.push(violation(
                path,
                format!("expected {expected}, found {}", preview(value)),
            ));
        };
        match self.schema.types.get(type_name) {
            Some(ExtendedType::Scalar(_)) => {
                let (fits, expected) = scalar_fits(value, type_name);
                if !fits {
                    mismatch(out, expected);
                }
            }
            Some(ExtendedType::Enum(e)) => {
                let known = value
                    .as_str()
                    .is_some_and(|v| e.values.keys().any(|k| k.as_str() == v));
                if !known {
                    let names: Vec<&str> = e.values.keys().map(Name::as_str).collect();
                    mismatch(out, &format!("one of {}", names.join(", ")));
                }
            }
            Some(ExtendedType::Object(object)) => {
                let fields = object.fields.iter().map(|(n, f)| (n, &f.ty));
                self.check_object(value, type_name, fields, path, out);
            }
            Some(ExtendedType::InputObject(input)) => {
                let fields = input.fields.iter().map(|(n, f)| (n, &*f.ty));
                self.check_object(value, type_name, fields, path, out);
            }
            Some(ExtendedType::Interface(interface)) => {
                self.check_interface(value, type_name, interface, path, out)
            }
            Some(ExtendedType::Union(union)) => {
                self.check_union(value, type_name, union, path, out)
            }
            None => out.push(violation(path, format!("unknown type {type_name}"))),
        }
    }

    /// Checks data of an interface: as the object type its `__typename` names, which must
    /// implement the interface, or (without `__typename`) against the interface's own fields.
    fn check_interface(
        &self,
        value: &Json,
        type_name: &Name,
        interface: &InterfaceType,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        match self.typename(value, path, out) {
            Some(concrete) => {
                let implements = self
                    .implementers
                    .get(type_name)
                    .is_some_and(|i| i.objects.contains(concrete.as_str()));
                if implements {
                    self.check_named(value, &concrete, path, out);
                } else {
                    out.push(violation(
                        &format!("{path}/__typename"),
                        format!("`{concrete}` does not implement {type_name}"),
                    ));
                }
            }
            None if value.get("__typename").is_none() => {
                let fields = interface.fields.iter().map(|(n, f)| (n, &f.ty));
                self.check_object(value, type_name, fields, path, out);
            }
            None => {}
        }
    }

    /// Checks data of a union: it must say by `__typename` which member it is, and is checked as
    /// that member.
    fn check_union(
        &self,
        value: &Json,
        type_name: &Name,
        union: &UnionType,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        if value.get("__typename").is_none() {
            out.push(violation(
                path,
                format!("a {type_name} value needs `__typename` to say which member it is"),
            ));
            return;
        }
        if let Some(concrete) = self.typename(value, path, out) {
            if union.members.contains(concrete.as_str()) {
                self.check_named(value, &concrete, path, out);
            } else {
                out.push(violation(
                    &format!("{path}/__typename"),
                    format!("`{concrete}` is not a member of {type_name}"),
                ));
            }
        }
    }

    /// The object type named by a value's `__typename`, if it has a valid one.
    fn typename(&self, value: &Json, path: &str, out: &mut Vec<Violation>) -> Option<Name> {
        let named = value.get("__typename")?;
        let found = named
            .as_str()
            .and_then(|n| Name::new(n).ok())
            .filter(|n| matches!(self.schema.types.get(n), Some(ExtendedType::Object(_))));
        if found.is_none() {
            out.push(violation(
                &format!("{path}/__typename"),
                format!("{} is not an object type of the schema", preview(named)),
            ));
        }
        found
    }

    fn check_object<'a>(
        &self,
        value: &Json,
        type_name: &Name,
        fields: impl Iterator<Item = (&'a Name, &'a Type)> + Clone,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        let Some(object) = value.as_object() else {
            out.push(violation(
                path,
                format!("expected a {type_name} object, found {}", preview(value)),
            ));
            return;
        };
        for (key, item) in object {
            if key == "__typename" {
                if item.as_str() != Some(type_name.as_str()) {
                    out.push(violation(
                        &format!("{path}/__typename"),
                        format!("expected \"{type_name}\", found {}", preview(item)),
                    ));
                }
                continue;
            }
            match fields.clone().find(|(name, _)| name.as_str() == key) {
                Some((_, ty)) => {
                    self.check_type(item, ty, &format!("{path}/{}", pointer_escape(key)), out)
                }
                None => out.push(violation(
                    &format!("{path}/{}", pointer_escape(key)),
                    format!("{type_name} has no field `{key}`"),
                )),
            }
        }
        for (name, ty) in fields {
            if ty.is_non_null() && !object.contains_key(name.as_str()) {
                out.push(violation(
                    &format!("{path}/{}", pointer_escape(name)),
                    format!("non-null field `{name}` ({ty}) is missing"),
                ));
            }
        }
    }

    fn check_type(&self, value: &Json, ty: &Type, path: &str, out: &mut Vec<Violation>) {
        if value.is_null() {
            if ty.is_non_null() {
                out.push(violation(path, format!("null where {ty} is non-null")));
            }
            return;
        }
        match ty {
            Type::Named(name) | Type::NonNullNamed(name) => {
                self.check_named(value, name, path, out)
            }
            Type::List(item) | Type::NonNullList(item) => match value.as_array() {
                Some(items) => {
                    for (index, element) in items.iter().enumerate() {
                        self.check_type(element, item, &format!("{path}/{index}"), out);
                    }
                }
                None => out.push(violation(
                    path,
                    format!("expected a list {ty}, found {}", preview(value)),
                )),
            },
        }
    }
}

/// Whether a value fits a scalar type, with the expectation to report when it does not. Custom
/// scalars carry whatever their servers agree on, so any value fits them.
fn scalar_fits(value: &Json, scalar: &Name) -> (bool, &'static str) {
    match scalar.as_str() {
        "Int" => (
            value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "an Int (32-bit integer)",
        ),
        "Float" => (value.is_number(), "a Float"),
        "String" => (value.is_string(), "a String"),
        "Boolean" => (value.is_boolean(), "a Boolean"),
        "ID" => (
            value.is_string() || value.as_i64().is_some(),
            "an ID (string or integer)",
        ),
        _ => (true, ""),
    }
}

impl CompiledSchema for GraphQlSchema {
    /// Only a data schema (with `root_type`) has rules, and its messages are JSON data.
    fn rules_message<'p>(
        &self,
        payload: &'p Bytes,
        _encoding: &PayloadEncoding,
        limits: &MessageLimits,
    ) -> Result<rules::Message<'p>, String> {
        super::json::rules_message(payload, limits)
    }

    fn validate(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        _normalize: Normalize,
        limits: &MessageLimits,
    ) -> Result<Accepted, Vec<Violation>> {
        if let Some(root) = &self.root_type {
            if !encoding.is_json() {
                return Err(vec![Violation::whole_message(format!(
                    "this schema judges JSON data of type {root}; send it as application/json"
                ))]);
            }
            let value = super::limits::parse_json(payload, limits)?;
            let mut violations = Vec::new();
            self.check_named(&value, root, "", &mut violations);
            if !violations.is_empty() {
                violations.truncate(MAX_VIOLATIONS);
                return Err(violations);
            }
        } else if encoding.is_json() {
            self.validate_request(payload, limits)?;
        } else {
            let source = std::str::from_utf8(payload).map_err(|_| {
                vec![Violation::whole_message(
                    "a GraphQL document must be UTF-8 text",
                )]
            })?;
            self.validate_document(source, None, limits)?;
        }
        Ok(Accepted::as_sent(payload, encoding))
    }
}

/// All diagnostics of a list as one line each, for compile errors.
fn diagnostics(errors: &DiagnosticList) -> String {
    errors
        .iter()
        .map(|d| d.error.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Diagnostics of a message's document as violations located `line:column`.
fn located(errors: &DiagnosticList) -> Vec<Violation> {
    errors
        .iter()
        .take(MAX_VIOLATIONS)
        .map(|diagnostic| {
            let json = diagnostic.to_json();
            let path = json
                .locations
                .first()
                .map(|at| format!("{}:{}", at.line, at.column))
                .unwrap_or_default();
            Violation {
                path,
                schema_path: String::new(),
                reason: json.message,
            }
        })
        .collect()
}

fn violation(path: &str, reason: impl Into<String>) -> Violation {
    Violation {
        path: path.to_owned(),
        schema_path: String::new(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::RepoFiles;
    use crate::formats::SchemaSettings;

    const SDL: &str = "
        type Query { node(id: ID!): Node }
        interface Node { id: ID! }
        type Customer implements Node { id: ID! name: String! }
        type Shop implements Node { id: ID! city: String }
        type Money { amount: Float! }
        union Result = Customer | Shop
    ";

    fn data_schema(root: &str) -> GraphQlSchema {
        let settings = SchemaSettings {
            root_type: Some(root.into()),
            ..SchemaSettings::default()
        };
        GraphQlSchema::compile(&CompileInput {
            file: "s/v1.graphql",
            schema_root: "",
            text: SDL,
            repo: &RepoFiles::default(),
            settings: &settings,
            prepared: None,
        })
        .unwrap()
    }

    fn judge(schema: &GraphQlSchema, message: Json) -> Result<(), Vec<Violation>> {
        crate::formats::judge_json(schema, &message)
    }

    #[test]
    fn union_members_are_picked_by_typename() {
        let schema = data_schema("Result");
        assert!(judge(
            &schema,
            serde_json::json!({"__typename": "Customer", "id": "1", "name": "A"})
        )
        .is_ok());
        assert!(judge(
            &schema,
            serde_json::json!({"__typename": "Shop", "id": "1"})
        )
        .is_ok());
        let missing = judge(&schema, serde_json::json!({"id": "1"})).unwrap_err();
        assert!(
            missing[0].reason.contains("needs `__typename`"),
            "{missing:?}"
        );
        let stranger = judge(
            &schema,
            serde_json::json!({"__typename": "Money", "amount": 1}),
        )
        .unwrap_err();
        assert!(
            stranger[0].reason.contains("not a member of Result"),
            "{stranger:?}"
        );
        let wrong = judge(
            &schema,
            serde_json::json!({"__typename": "Customer", "id": "1"}),
        )
        .unwrap_err();
        assert_eq!(wrong[0].path, "/name");
    }

    #[test]
    fn interfaces_take_an_implementer_or_their_own_fields() {
        let schema = data_schema("Node");
        assert!(judge(
            &schema,
            serde_json::json!({"__typename": "Shop", "id": "1", "city": "Oslo"})
        )
        .is_ok());
        assert!(judge(&schema, serde_json::json!({"id": "1"})).is_ok());
        let not_implementer = judge(
            &schema,
            serde_json::json!({"__typename": "Money", "amount": 1}),
        )
        .unwrap_err();
        assert!(
            not_implementer[0]
                .reason
                .contains("does not implement Node"),
            "{not_implementer:?}"
        );
    }

    #[test]
    fn an_invalid_sdl_or_root_type_does_not_compile() {
        let compile = |text: &str, root: Option<&str>| {
            let settings = SchemaSettings {
                root_type: root.map(Into::into),
                ..SchemaSettings::default()
            };
            GraphQlSchema::compile(&CompileInput {
                file: "s/v1.graphql",
                schema_root: "",
                text,
                repo: &RepoFiles::default(),
                settings: &settings,
                prepared: None,
            })
        };
        assert!(compile("type Query { a: Missing }", None).is_err());
        assert!(compile(SDL, Some("Nope")).is_err());
        assert!(compile(SDL, Some("ID")).is_err());
    }
}
