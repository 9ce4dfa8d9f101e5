//! GraphQL compatibility by the breaking-change rules schema tooling (graphql-inspector, Apollo)
//! uses, read in Sluice's terms: a version "reads" the documents and data another accepted.
//!
//! Backward (documents or data valid under the old version stay valid): no type, field, argument,
//! input field, enum value or union member removed; no field or argument type changed; no required
//! argument or required input field added. Forward (valid under the new version stays valid under
//! the old): nothing added that the old version would refuse — a field, an enum value, a union
//! member, an input field.

use apollo_compiler::ast::{FieldDefinition, InputValueDefinition, Type};
use apollo_compiler::schema::{EnumType, ExtendedType, InputObjectType, Schema, UnionType};
use apollo_compiler::Node;

use super::GraphQlSchema;
use crate::formats::{Breaks, Evolution, Incompatibility};

/// What changed from `old` to `new` that breaks readers of either.
impl Evolution for GraphQlSchema {
    fn changes(old: &Self, new: &Self) -> Vec<Incompatibility> {
        let mut found = Vec::new();
        compare(&old.schema, &new.schema, &mut found);
        found
    }
}

fn compare(old: &Schema, new: &Schema, found: &mut Vec<Incompatibility>) {
    let mut report = |breaks, rule, path: String, message: String| {
        found.push(Incompatibility::new(breaks, rule, path, message))
    };
    for (name, old_type) in old.types.iter().filter(|(_, t)| !t.is_built_in()) {
        let Some(new_type) = new.types.get(name) else {
            report(
                Breaks::Backward,
                "type_removed",
                name.to_string(),
                format!("type {name} was removed"),
            );
            continue;
        };
        match (old_type, new_type) {
            (ExtendedType::Object(o), ExtendedType::Object(n)) => {
                compare_fields(name.as_str(), &o.fields, &n.fields, &mut report)
            }
            (ExtendedType::Interface(o), ExtendedType::Interface(n)) => {
                compare_fields(name.as_str(), &o.fields, &n.fields, &mut report)
            }
            (ExtendedType::InputObject(o), ExtendedType::InputObject(n)) => {
                compare_input_fields(name.as_str(), o, n, &mut report)
            }
            (ExtendedType::Enum(o), ExtendedType::Enum(n)) => {
                compare_enum_values(name.as_str(), o, n, &mut report)
            }
            (ExtendedType::Union(o), ExtendedType::Union(n)) => {
                compare_union_members(name.as_str(), o, n, &mut report)
            }
            (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
            (o, n) => report(
                Breaks::Both,
                "type_kind_changed",
                name.to_string(),
                format!("type {name} changed from {} to {}", kind(o), kind(n)),
            ),
        }
    }
}

/// Input fields of input type `name`: a removed or retyped field breaks, a new required field
/// breaks backward (old data lacks it) and a new optional one breaks forward.
fn compare_input_fields(
    name: &str,
    o: &InputObjectType,
    n: &InputObjectType,
    report: &mut impl FnMut(Breaks, &'static str, String, String),
) {
    for (field, definition) in &o.fields {
        let path = format!("{name}.{field}");
        match n.fields.get(field) {
            None => report(
                Breaks::Backward,
                "input_field_removed",
                path,
                format!("input field {name}.{field} was removed"),
            ),
            Some(now) if now.ty != definition.ty => report(
                Breaks::Both,
                "input_field_type_changed",
                path,
                format!(
                    "input field {name}.{field} changed type from {} to {}",
                    definition.ty, now.ty
                ),
            ),
            Some(_) => {}
        }
    }
    for (field, definition) in n.fields.iter().filter(|(f, _)| !o.fields.contains_key(*f)) {
        let path = format!("{name}.{field}");
        if is_required(definition) {
            report(
                Breaks::Backward,
                "required_input_field_added",
                path,
                format!("required input field {name}.{field}: {} was added; old documents and data lack it", definition.ty),
            );
        } else {
            report(
                Breaks::Forward,
                "input_field_added",
                path,
                format!("input field {name}.{field} was added; the old version refuses it"),
            );
        }
    }
}

/// Values of enum `name`: a removed value breaks backward, an added one breaks forward.
fn compare_enum_values(
    name: &str,
    o: &EnumType,
    n: &EnumType,
    report: &mut impl FnMut(Breaks, &'static str, String, String),
) {
    for value in o.values.keys().filter(|v| !n.values.contains_key(*v)) {
        report(
            Breaks::Backward,
            "enum_value_removed",
            format!("{name}.{value}"),
            format!("enum value {name}.{value} was removed"),
        );
    }
    for value in n.values.keys().filter(|v| !o.values.contains_key(*v)) {
        report(
            Breaks::Forward,
            "enum_value_added",
            format!("{name}.{value}"),
            format!("enum value {name}.{value} was added; the old version refuses it"),
        );
    }
}

/// Members of union `name`: a removed member breaks backward, an added one breaks forward.
fn compare_union_members(
    name: &str,
    o: &UnionType,
    n: &UnionType,
    report: &mut impl FnMut(Breaks, &'static str, String, String),
) {
    for member in o.members.iter().filter(|m| !n.members.contains(*m)) {
        report(
            Breaks::Backward,
            "union_member_removed",
            name.to_string(),
            format!("{member} is no longer a member of union {name}"),
        );
    }
    for member in n.members.iter().filter(|m| !o.members.contains(*m)) {
        report(
            Breaks::Forward,
            "union_member_added",
            name.to_string(),
            format!("{member} became a member of union {name}; the old version refuses it"),
        );
    }
}

type Fields = apollo_compiler::collections::IndexMap<
    apollo_compiler::Name,
    apollo_compiler::schema::Component<FieldDefinition>,
>;

fn compare_fields(
    owner: &str,
    old: &Fields,
    new: &Fields,
    report: &mut impl FnMut(Breaks, &'static str, String, String),
) {
    for (field, definition) in old {
        let path = format!("{owner}.{field}");
        let Some(now) = new.get(field) else {
            report(
                Breaks::Backward,
                "field_removed",
                path,
                format!("field {owner}.{field} was removed"),
            );
            continue;
        };
        if now.ty != definition.ty {
            report(
                Breaks::Both,
                "field_type_changed",
                path.clone(),
                format!(
                    "field {owner}.{field} changed type from {} to {}",
                    definition.ty, now.ty
                ),
            );
        }
        compare_arguments(&path, &definition.arguments, &now.arguments, report);
    }
    for field in new.keys().filter(|f| !old.contains_key(*f)) {
        report(
            Breaks::Forward,
            "field_added",
            format!("{owner}.{field}"),
            format!("field {owner}.{field} was added; the old version refuses it"),
        );
    }
}

fn compare_arguments(
    path: &str,
    old: &[Node<InputValueDefinition>],
    new: &[Node<InputValueDefinition>],
    report: &mut impl FnMut(Breaks, &'static str, String, String),
) {
    for argument in old {
        let at = format!("{path}({})", argument.name);
        match new.iter().find(|a| a.name == argument.name) {
            None => report(
                Breaks::Backward,
                "argument_removed",
                at,
                format!("argument `{}` of {path} was removed", argument.name),
            ),
            Some(now) if now.ty != argument.ty => report(
                Breaks::Both,
                "argument_type_changed",
                at,
                format!(
                    "argument `{}` of {path} changed type from {} to {}",
                    argument.name, argument.ty, now.ty
                ),
            ),
            Some(_) => {}
        }
    }
    for argument in new.iter().filter(|a| !old.iter().any(|o| o.name == a.name)) {
        let at = format!("{path}({})", argument.name);
        if is_required(argument) {
            report(
                Breaks::Backward,
                "required_argument_added",
                at,
                format!(
                    "required argument `{}: {}` was added to {path}; old documents lack it",
                    argument.name, argument.ty
                ),
            );
        } else {
            report(
                Breaks::Forward,
                "argument_added",
                at,
                format!(
                    "argument `{}` was added to {path}; the old version refuses it",
                    argument.name
                ),
            );
        }
    }
}

fn is_required(value: &InputValueDefinition) -> bool {
    matches!(*value.ty, Type::NonNullNamed(_) | Type::NonNullList(_))
        && value.default_value.is_none()
}

fn kind(ty: &ExtendedType) -> &'static str {
    match ty {
        ExtendedType::Scalar(_) => "a scalar",
        ExtendedType::Object(_) => "an object type",
        ExtendedType::Interface(_) => "an interface",
        ExtendedType::Union(_) => "a union",
        ExtendedType::Enum(_) => "an enum",
        ExtendedType::InputObject(_) => "an input type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::CompileInput;
    use crate::formats::RepoFiles;
    use crate::formats::SchemaSettings;

    fn compile(text: &str) -> GraphQlSchema {
        GraphQlSchema::compile(&CompileInput {
            file: "storefront/v1.graphql",
            schema_root: "",
            text,
            repo: &RepoFiles::default(),
            settings: &SchemaSettings::default(),
            prepared: None,
        })
        .unwrap()
    }

    fn rules(old: &str, new: &str) -> Vec<(Breaks, &'static str, String)> {
        crate::formats::changes_between(&compile(old), &compile(new))
    }

    const V1: &str = "type Query { product(id: ID!): Product, search(term: String): [Product!]! }
        type Product { id: ID!, name: String, status: Status }
        enum Status { DRAFT, LIVE }
        input Filter { term: String }
        union Hit = Product";

    #[test]
    fn removing_a_type_field_or_enum_value_breaks_backward() {
        let no_status = V1.replace("enum Status { DRAFT, LIVE }", "enum Status { DRAFT }");
        assert_eq!(
            rules(V1, &no_status),
            vec![(Breaks::Backward, "enum_value_removed", "Status.LIVE".into())]
        );
        let no_name = V1.replace("name: String, ", "");
        assert_eq!(
            rules(V1, &no_name),
            vec![(Breaks::Backward, "field_removed", "Product.name".into())]
        );
        let no_filter = V1.replace("input Filter { term: String }", "");
        assert_eq!(
            rules(V1, &no_filter),
            vec![(Breaks::Backward, "type_removed", "Filter".into())]
        );
    }

    #[test]
    fn changing_a_field_type_breaks_both_ways() {
        let changed = V1.replace("name: String,", "name: Int,");
        assert_eq!(
            rules(V1, &changed),
            vec![(Breaks::Both, "field_type_changed", "Product.name".into())]
        );
    }

    #[test]
    fn adding_required_arguments_and_input_fields_breaks_backward() {
        let argument = V1.replace("search(term: String)", "search(term: String, limit: Int!)");
        assert_eq!(
            rules(V1, &argument),
            vec![(
                Breaks::Backward,
                "required_argument_added",
                "Query.search(limit)".into()
            )]
        );
        let input = V1.replace(
            "input Filter { term: String }",
            "input Filter { term: String, shop: ID! }",
        );
        assert_eq!(
            rules(V1, &input),
            vec![(
                Breaks::Backward,
                "required_input_field_added",
                "Filter.shop".into()
            )]
        );
        let defaulted = V1.replace(
            "search(term: String)",
            "search(term: String, limit: Int! = 10)",
        );
        assert_eq!(
            rules(V1, &defaulted),
            vec![(
                Breaks::Forward,
                "argument_added",
                "Query.search(limit)".into()
            )]
        );
    }

    #[test]
    fn additions_break_forward_only() {
        let added = V1.replace("status: Status }", "status: Status, price: Int }");
        assert_eq!(
            rules(V1, &added),
            vec![(Breaks::Forward, "field_added", "Product.price".into())]
        );
    }
}
