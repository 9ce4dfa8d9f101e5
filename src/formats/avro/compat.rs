//! Avro compatibility by the specification's schema resolution (through `apache-avro`'s
//! `SchemaCompatibility`): a version can read another's data when a reader with its schema can
//! resolve a datum written with the other's. Backward asks whether the new version reads old data,
//! forward whether the old version reads new data.

use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::SchemaCompatibility;

use super::AvroSchema;
use crate::formats::{Breaks, Evolution, Incompatibility};

/// What changed from `old` to `new` that breaks readers of either.
impl Evolution for AvroSchema {
    fn changes(old: &Self, new: &Self) -> Vec<Incompatibility> {
        let mut found = Vec::new();
        for (breaks, writer, reader, reader_name) in [
            (Breaks::Backward, old, new, "the new version"),
            (Breaks::Forward, new, old, "the old version"),
        ] {
            if let Err(error) = SchemaCompatibility::can_read(writer.schema(), reader.schema()) {
                let (rule, path, cause) = describe(&error, String::new());
                found.push(Incompatibility::new(
                    breaks,
                    rule,
                    if path.is_empty() { "/".into() } else { path },
                    format!("{reader_name} cannot resolve data of the other: {cause}"),
                ));
            }
        }
        found
    }
}

/// The rule, field path and sentence for a resolution failure, unwrapping nested field errors.
fn describe(error: &CompatibilityError, path: String) -> (&'static str, String, String) {
    let rule = match error {
        CompatibilityError::FieldTypeMismatch(field, inner) => {
            return describe(inner, format!("{path}/{field}"))
        }
        CompatibilityError::WrongType { .. } | CompatibilityError::TypeExpected { .. } => {
            "type_changed"
        }
        CompatibilityError::MissingDefaultValue(field) => {
            return (
                "field_without_default",
                format!("{path}/{field}"),
                format!("the reading schema has field `{field}` with no default, and the writing schema does not write it"),
            )
        }
        CompatibilityError::MissingSymbols => "enum_symbol_removed",
        CompatibilityError::MissingUnionElements => "union_branch_removed",
        CompatibilityError::FixedMismatch => "fixed_changed",
        CompatibilityError::NameMismatch { .. } => "name_changed",
        _ => "unresolvable",
    };
    (rule, path, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::compile_for_test as compile;
    use super::*;

    fn rules(old: &str, new: &str) -> Vec<(Breaks, &'static str, String)> {
        crate::formats::changes_between(&compile(old), &compile(new))
    }

    const V1: &str =
        r#"{"type":"record","name":"Click","fields":[{"name":"url","type":"string"}]}"#;

    #[test]
    fn a_field_added_with_a_default_is_fully_compatible() {
        let v2 = r#"{"type":"record","name":"Click","fields":[{"name":"url","type":"string"},{"name":"ms","type":"long","default":0}]}"#;
        assert_eq!(rules(V1, v2), vec![]);
    }

    #[test]
    fn a_field_added_without_a_default_breaks_backward() {
        let v2 = r#"{"type":"record","name":"Click","fields":[{"name":"url","type":"string"},{"name":"ms","type":"long"}]}"#;
        assert_eq!(
            rules(V1, v2),
            vec![(Breaks::Backward, "field_without_default", "/ms".into())]
        );
    }

    #[test]
    fn a_field_removed_without_a_default_breaks_forward() {
        let v2 = r#"{"type":"record","name":"Click","fields":[]}"#;
        assert_eq!(
            rules(V1, v2),
            vec![(Breaks::Forward, "field_without_default", "/url".into())]
        );
    }

    #[test]
    fn a_promotable_type_change_breaks_one_way_only() {
        let int = r#"{"type":"record","name":"C","fields":[{"name":"n","type":"int"}]}"#;
        let long = r#"{"type":"record","name":"C","fields":[{"name":"n","type":"long"}]}"#;
        // long can read int data, int cannot read long data.
        assert_eq!(
            rules(int, long),
            vec![(Breaks::Forward, "type_changed", "/n".into())]
        );
        let string = r#"{"type":"record","name":"C","fields":[{"name":"n","type":"string"}]}"#;
        assert_eq!(
            rules(int, string),
            vec![
                (Breaks::Backward, "type_changed", "/n".into()),
                (Breaks::Forward, "type_changed", "/n".into())
            ]
        );
    }

    #[test]
    fn removing_an_enum_symbol_breaks_backward() {
        let two = r#"{"type":"enum","name":"S","symbols":["A","B"]}"#;
        let one = r#"{"type":"enum","name":"S","symbols":["A"]}"#;
        assert_eq!(
            rules(two, one),
            vec![(Breaks::Backward, "enum_symbol_removed", "/".into())]
        );
    }

    #[test]
    fn renaming_a_record_breaks_both_ways() {
        let other = r#"{"type":"record","name":"Tap","fields":[{"name":"url","type":"string"}]}"#;
        let found = rules(V1, other);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, rule, _)| *rule == "name_changed"));
    }
}
