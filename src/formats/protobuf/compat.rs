//! Protobuf compatibility by the wire format's rules, walking the judging message type of both
//! versions field number by field number (and into nested message and enum types):
//!
//! * a field removed must have its number (or name) `reserved`, or a later version could reuse
//!   the number with another meaning;
//! * a number kept must keep a wire-compatible type (`int32`/`int64`/`uint32`/`uint64`/`bool`/enum
//!   share the varint encoding, `sint32`/`sint64` the zig-zag one, `fixed32`/`sfixed32`,
//!   `fixed64`/`sfixed64`, `string`/`bytes`; messages are compared in turn), and its cardinality;
//!   a number reused under another name with another type, or a `reserved` number taken again, is
//!   a reuse;
//! * enum values must not be removed (readers of the new version meet them in old data);
//! * proto2 `required`: adding one breaks backward (old data lacks it), dropping one breaks forward
//!   (old readers insist on it).

use std::collections::HashSet;

use prost_reflect::{Cardinality, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

use super::ProtobufSchema;
use crate::formats::{Breaks, Evolution, Incompatibility};

/// What changed from `old` to `new` that breaks readers of either.
impl Evolution for ProtobufSchema {
    fn changes(old: &Self, new: &Self) -> Vec<Incompatibility> {
        let mut walk = Walk {
            seen: HashSet::new(),
            found: Vec::new(),
        };
        walk.compare_messages(&old.message, &new.message, "");
        walk.found
    }
}

struct Walk {
    /// (old, new) message type pairs already compared, so recursive types terminate.
    seen: HashSet<(String, String)>,
    found: Vec<Incompatibility>,
}

impl Walk {
    fn report(&mut self, breaks: Breaks, rule: &'static str, path: String, message: String) {
        self.found
            .push(Incompatibility::new(breaks, rule, path, message));
    }

    fn compare_messages(&mut self, old: &MessageDescriptor, new: &MessageDescriptor, path: &str) {
        if !self
            .seen
            .insert((old.full_name().to_owned(), new.full_name().to_owned()))
        {
            return;
        }
        for old_field in old.fields() {
            let at = format!("{path}/{}", old_field.name());
            match new.get_field(old_field.number()) {
                Some(new_field) => self.compare_fields(&old_field, &new_field, &at),
                None => {
                    let reserved = new
                        .reserved_ranges()
                        .any(|range| range.contains(&old_field.number()))
                        || new.reserved_names().any(|name| name == old_field.name());
                    if !reserved {
                        self.report(
                            Breaks::Both,
                            "field_removed_without_reserved",
                            at.clone(),
                            format!(
                                "field {} `{}` of {} was removed without `reserved {};`, so a later version could reuse the number with another meaning",
                                old_field.number(),
                                old_field.name(),
                                old.full_name(),
                                old_field.number()
                            ),
                        );
                    }
                    if old_field.is_required() {
                        self.report(
                            Breaks::Forward,
                            "required_removed",
                            at,
                            format!(
                                "required field `{}` was removed: readers of the old version refuse data without it",
                                old_field.name()
                            ),
                        );
                    }
                }
            }
        }
        for new_field in new.fields() {
            if old.get_field(new_field.number()).is_some() {
                continue;
            }
            let at = format!("{path}/{}", new_field.name());
            let was_reserved = old
                .reserved_ranges()
                .any(|range| range.contains(&new_field.number()));
            if was_reserved {
                self.report(
                    Breaks::Both,
                    "reserved_number_reused",
                    at.clone(),
                    format!(
                        "field `{}` takes number {}, which the old version reserved: data written with the field that held it is misread",
                        new_field.name(),
                        new_field.number()
                    ),
                );
            }
            if new_field.is_required() {
                self.report(
                    Breaks::Backward,
                    "required_added",
                    at,
                    format!(
                        "new required field `{}`: data written with the old version lacks it",
                        new_field.name()
                    ),
                );
            }
        }
    }

    fn compare_fields(&mut self, old: &FieldDescriptor, new: &FieldDescriptor, at: &str) {
        let (old_kind, new_kind) = (old.kind(), new.kind());
        if !wire_compatible(&old_kind, &new_kind) {
            self.report_type_changed(old, new, &old_kind, &new_kind, at);
            return;
        }
        if old.is_list() != new.is_list() || old.is_map() != new.is_map() {
            self.report(
                Breaks::Both,
                "field_cardinality_changed",
                at.to_owned(),
                format!(
                    "field `{}` changed between single, repeated and map",
                    new.name()
                ),
            );
            return;
        }
        self.compare_required(old, new, at);
        match (old_kind, new_kind) {
            (Kind::Message(old_message), Kind::Message(new_message)) => {
                self.compare_messages(&old_message, &new_message, at)
            }
            (Kind::Enum(old_enum), Kind::Enum(new_enum)) => {
                self.compare_enum_values(&old_enum, &new_enum, at)
            }
            _ => {}
        }
    }

    /// Reports a field number whose type changed to one that does not read the old bytes: under
    /// the same name a type change, under another name a reuse of the number.
    fn report_type_changed(
        &mut self,
        old: &FieldDescriptor,
        new: &FieldDescriptor,
        old_kind: &Kind,
        new_kind: &Kind,
        at: &str,
    ) {
        let (rule, what) = if old.name() == new.name() {
            ("field_type_changed", format!("field `{}`", old.name()))
        } else {
            (
                "field_number_reused",
                format!(
                    "number {} (was `{}`, now `{}`)",
                    old.number(),
                    old.name(),
                    new.name()
                ),
            )
        };
        self.report(
            Breaks::Both,
            rule,
            at.to_owned(),
            format!(
                "{what} changed type from {} to {}, which is not wire-compatible",
                kind_name(old_kind),
                kind_name(new_kind)
            ),
        );
    }

    /// Reports a field that became proto2 `required` (old data may lack it) or stopped being so
    /// (old readers insist on it).
    fn compare_required(&mut self, old: &FieldDescriptor, new: &FieldDescriptor, at: &str) {
        match (old.cardinality(), new.cardinality()) {
            (Cardinality::Required, Cardinality::Required) => {}
            (_, Cardinality::Required) => self.report(
                Breaks::Backward,
                "required_added",
                at.to_owned(),
                format!(
                    "field `{}` became required: data written with the old version may lack it",
                    new.name()
                ),
            ),
            (Cardinality::Required, _) => self.report(
                Breaks::Forward,
                "required_removed",
                at.to_owned(),
                format!(
                    "field `{}` is no longer required: readers of the old version refuse data without it",
                    new.name()
                ),
            ),
            _ => {}
        }
    }

    /// Reports each value (by number) of the old enum that the new one lost: readers of the new
    /// version meet it in old data.
    fn compare_enum_values(
        &mut self,
        old_enum: &EnumDescriptor,
        new_enum: &EnumDescriptor,
        at: &str,
    ) {
        for value in old_enum.values() {
            if new_enum.get_value(value.number()).is_none() {
                self.report(
                    Breaks::Backward,
                    "enum_value_removed",
                    at.to_owned(),
                    format!(
                        "enum {} lost value {} = {}: data written with the old version may carry it",
                        new_enum.full_name(),
                        value.name(),
                        value.number()
                    ),
                );
            }
        }
    }
}

/// Which encoding a kind uses on the wire; kinds of one class read each other's bytes.
fn wire_class(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            "varint"
        }
        Kind::Sint32 | Kind::Sint64 => "zigzag",
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32",
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64",
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::String | Kind::Bytes => "length-delimited",
        Kind::Message(_) => "message",
    }
}

fn wire_compatible(old: &Kind, new: &Kind) -> bool {
    wire_class(old) == wire_class(new)
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(message) => message.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::formats::CompileInput;
    use crate::formats::RepoFiles;
    use crate::formats::SchemaSettings;

    fn compile(text: &str) -> ProtobufSchema {
        let repo: RepoFiles = [("payments/v1.proto".to_owned(), Bytes::from(text.to_owned()))]
            .into_iter()
            .collect();
        ProtobufSchema::compile(&CompileInput {
            file: "payments/v1.proto",
            schema_root: "",
            text,
            repo: &repo,
            settings: &SchemaSettings {
                message: text.contains("acme").then(|| "acme.Payment".to_owned()),
                ..SchemaSettings::default()
            },
            prepared: None,
        })
        .unwrap()
    }

    fn rules(old: &str, new: &str) -> Vec<(Breaks, &'static str, String)> {
        crate::formats::changes_between(&compile(old), &compile(new))
    }

    const V1: &str = r#"syntax = "proto3"; package acme;
        message Payment { string id = 1; int64 cents = 2; Status status = 3; Card card = 4; }
        message Card { string last4 = 1; }
        enum Status { NEW = 0; PAID = 1; }"#;

    #[test]
    fn adding_a_field_is_compatible() {
        let v2 = V1.replace("Card card = 4;", "Card card = 4; string note = 5;");
        assert_eq!(rules(V1, &v2), vec![]);
    }

    #[test]
    fn removing_a_field_needs_reserved() {
        let removed = V1.replace("int64 cents = 2;", "");
        assert_eq!(
            rules(V1, &removed),
            vec![(
                Breaks::Both,
                "field_removed_without_reserved",
                "/cents".into()
            )]
        );
        let reserved = V1.replace("int64 cents = 2;", "reserved 2;");
        assert_eq!(rules(V1, &reserved), vec![]);
    }

    #[test]
    fn reusing_a_number_with_another_type_is_refused() {
        let reused = V1.replace("int64 cents = 2;", "string memo = 2;");
        assert_eq!(
            rules(V1, &reused),
            vec![(Breaks::Both, "field_number_reused", "/cents".into())]
        );
    }

    #[test]
    fn wire_type_changes_are_refused_and_compatible_ones_allowed() {
        let widened = V1.replace("int64 cents = 2;", "uint64 cents = 2;");
        assert_eq!(rules(V1, &widened), vec![]);
        let zigzag = V1.replace("int64 cents = 2;", "sint64 cents = 2;");
        assert_eq!(
            rules(V1, &zigzag),
            vec![(Breaks::Both, "field_type_changed", "/cents".into())]
        );
        let nested = V1.replace("string last4 = 1;", "int32 last4 = 1;");
        assert_eq!(
            rules(V1, &nested),
            vec![(Breaks::Both, "field_type_changed", "/card/last4".into())]
        );
    }

    #[test]
    fn removing_an_enum_value_breaks_backward() {
        let fewer = V1.replace("PAID = 1;", "");
        assert_eq!(
            rules(V1, &fewer),
            vec![(Breaks::Backward, "enum_value_removed", "/status".into())]
        );
    }

    #[test]
    fn proto2_required_changes_break_one_way() {
        let optional = r#"syntax = "proto2"; message M { optional string id = 1; }"#;
        let required = r#"syntax = "proto2"; message M { required string id = 1; }"#;
        assert_eq!(
            rules(optional, required),
            vec![(Breaks::Backward, "required_added", "/id".into())]
        );
        assert_eq!(
            rules(required, optional),
            vec![(Breaks::Forward, "required_removed", "/id".into())]
        );
    }

    #[test]
    fn taking_a_reserved_number_again_is_refused() {
        let reserved = V1.replace("int64 cents = 2;", "reserved 2;");
        let retaken = V1.replace("int64 cents = 2;", "int64 amount = 2;");
        assert_eq!(
            rules(&reserved, &retaken),
            vec![(Breaks::Both, "reserved_number_reused", "/amount".into())]
        );
    }
}
