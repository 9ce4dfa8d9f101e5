//! Avro JSON payloads: judging plain JSON (as `fastavro.validate` does) or the specification's JSON
//! encoding against the schema, and building the binary datum of accepted JSON for stations that
//! normalize.

use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;
use serde_json::Value as Json;

use super::decimal::unscaled_bytes;
use super::{
    full_name, not_a_time_of_day, timestamps, type_name, violation, AvroSchema, JsonEncoding,
    DAY_MILLIS,
};
use crate::formats::{pointer_escape, preview, Violation, MAX_VIOLATIONS};

impl AvroSchema {
    /// A union's branches as the JSON encoding names them, for messages.
    fn branch_names(&self, branches: &[Schema]) -> String {
        branches
            .iter()
            .map(|b| type_name(self.resolve(b)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Judges a JSON value against `schema`; pushes violations and returns whether it matched.
    pub(super) fn check_json(
        &self,
        value: &Json,
        schema: &Schema,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        if out.len() >= MAX_VIOLATIONS {
            return false;
        }
        let schema = self.resolve(schema);
        let mismatch =
            |out: &mut Vec<Violation>, expected: &str| report_mismatch(value, path, out, expected);
        match schema {
            Schema::Null => value.is_null() || mismatch(out, "null"),
            Schema::Boolean => value.is_boolean() || mismatch(out, "a boolean"),
            Schema::Int | Schema::Date => {
                value.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
                    || mismatch(out, "an int (32-bit)")
            }
            Schema::TimeMillis => match value.as_i64() {
                Some(ms) if i32::try_from(ms).is_ok() => {
                    is_time_of_day(ms, DAY_MILLIS, "time-millis", path, out)
                }
                _ => mismatch(out, "a time-millis int"),
            },
            Schema::TimeMicros => match value.as_i64() {
                Some(us) => is_time_of_day(us, DAY_MILLIS * 1000, "time-micros", path, out),
                None => mismatch(out, "a time-micros long"),
            },
            Schema::Long | timestamps!() => {
                value.as_i64().is_some() || mismatch(out, "a long (64-bit)")
            }
            Schema::Float | Schema::Double => value.is_number() || mismatch(out, "a number"),
            Schema::String => value.is_string() || mismatch(out, "a string"),
            Schema::Uuid => match value.as_str() {
                Some(text) if is_uuid(text) => true,
                _ => mismatch(out, "a UUID string"),
            },
            Schema::Bytes | Schema::BigDecimal => match value.as_str() {
                Some(text) if latin1_len(text).is_some() => true,
                _ => mismatch(out, "bytes (a string of code points up to U+00FF)"),
            },
            Schema::Fixed(fixed) => match value.as_str().and_then(latin1_len) {
                Some(len) if len == fixed.size => true,
                _ => mismatch(out, &format!("fixed {} ({} bytes)", fixed.name, fixed.size)),
            },
            Schema::Duration => match value.as_str().and_then(latin1_len) {
                Some(12) => true,
                _ => mismatch(out, "a duration (12 bytes)"),
            },
            Schema::Decimal(spec) => {
                self.check_json_decimal(value, spec.precision, spec.scale, path, out)
            }
            Schema::Enum(spec) => match value.as_str() {
                Some(symbol) if spec.symbols.iter().any(|s| s == symbol) => true,
                _ => mismatch(out, &format!("one of {:?}", spec.symbols)),
            },
            Schema::Array(array) => self.check_json_array(value, &array.items, path, out),
            Schema::Map(map) => self.check_json_map(value, &map.types, path, out),
            Schema::Record(record) => self.check_json_record(value, record, path, out),
            Schema::Union(union) => self.check_json_union(value, union.variants(), path, out),
            Schema::Ref { name } => {
                out.push(violation(
                    path,
                    format!("unknown named type {}", full_name(name)),
                ));
                false
            }
        }
    }

    /// Judges a JSON array: every item against `items`, each at its index, reporting them all.
    #[inline]
    fn check_json_array(
        &self,
        value: &Json,
        items: &Schema,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        match value.as_array() {
            Some(elements) => every(
                elements
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.check_json(item, items, &format!("{path}/{i}"), out)),
            ),
            None => report_mismatch(value, path, out, "an array"),
        }
    }

    /// Judges a JSON object as an Avro map: every entry against `types`, each at its key.
    #[inline]
    fn check_json_map(
        &self,
        value: &Json,
        types: &Schema,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        match value.as_object() {
            Some(entries) => every(entries.iter().map(|(key, item)| {
                self.check_json(item, types, &format!("{path}/{}", pointer_escape(key)), out)
            })),
            None => report_mismatch(value, path, out, "an object (map)"),
        }
    }

    /// Judges a JSON object as an Avro record: every field of `record`, reporting them all.
    #[inline]
    fn check_json_record(
        &self,
        value: &Json,
        record: &RecordSchema,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        match value.as_object() {
            Some(object) => every(
                record
                    .fields
                    .iter()
                    .map(|field| self.check_json_field(object, field, path, out)),
            ),
            None => report_mismatch(
                value,
                path,
                out,
                &format!("an object (record {})", record.name),
            ),
        }
    }

    fn check_json_field(
        &self,
        object: &serde_json::Map<String, Json>,
        field: &RecordField,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        let field_path = format!("{path}/{}", pointer_escape(&field.name));
        match object.get(&field.name) {
            Some(value) => self.check_json(value, &field.schema, &field_path, out),
            // A default fills a missing field; like fastavro, a missing field is otherwise null.
            None if field.default.is_some() => true,
            None => {
                let mut scratch = Vec::new();
                self.check_json(&Json::Null, &field.schema, &field_path, &mut scratch) || {
                    out.push(violation(
                        &field_path,
                        format!("required field `{}` is missing", field.name),
                    ));
                    false
                }
            }
        }
    }

    fn check_json_union(
        &self,
        value: &Json,
        branches: &[Schema],
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        match self.json_encoding {
            JsonEncoding::Plain => {
                let matched = branches
                    .iter()
                    .any(|branch| self.check_json(value, branch, path, &mut Vec::new()));
                matched || {
                    out.push(violation(
                        path,
                        format!(
                            "{} matches no branch of the union [{}]",
                            preview(value),
                            self.branch_names(branches)
                        ),
                    ));
                    false
                }
            }
            JsonEncoding::AvroJson => {
                if value.is_null() && branches.iter().any(|b| matches!(b, Schema::Null)) {
                    return true;
                }
                let wrapped = value
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.iter().next());
                let Some((tag, inner)) = wrapped else {
                    out.push(violation(
                        path,
                        "a non-null union value must be wrapped as {\"<type>\": value}",
                    ));
                    return false;
                };
                match branches.iter().find(|b| type_name(self.resolve(b)) == *tag) {
                    Some(branch) => self.check_json(
                        inner,
                        branch,
                        &format!("{path}/{}", pointer_escape(tag)),
                        out,
                    ),
                    None => {
                        out.push(violation(
                            path,
                            format!(
                                "`{tag}` is not a branch of the union [{}]",
                                self.branch_names(branches)
                            ),
                        ));
                        false
                    }
                }
            }
        }
    }

    fn check_json_decimal(
        &self,
        value: &Json,
        precision: usize,
        scale: usize,
        path: &str,
        out: &mut Vec<Violation>,
    ) -> bool {
        let text = match value {
            Json::Number(n) => n.to_string(),
            Json::String(s) => s.clone(),
            _ => {
                out.push(violation(
                    path,
                    format!("expected a decimal, found {}", preview(value)),
                ));
                return false;
            }
        };
        let unsigned = text.strip_prefix('-').unwrap_or(&text);
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            out.push(violation(path, format!("`{text}` is not a decimal number")));
            return false;
        }
        let whole_digits = whole.trim_start_matches('0').len();
        if fraction.len() > scale || whole_digits + scale > precision {
            out.push(violation(
                path,
                format!("`{text}` does not fit decimal({precision}, {scale})"),
            ));
            return false;
        }
        true
    }

    /// Builds the Avro value of JSON that [`Self::check_json`] accepted, for normalization.
    pub(super) fn avro_value(&self, value: &Json, schema: &Schema) -> AvroValue {
        let schema = self.resolve(schema);
        match (schema, value) {
            (Schema::Bytes, Json::String(text)) => AvroValue::Bytes(latin1_bytes(text)),
            (Schema::Fixed(fixed), Json::String(text)) => {
                AvroValue::Fixed(fixed.size, latin1_bytes(text))
            }
            (Schema::Duration, Json::String(text)) => AvroValue::Fixed(12, latin1_bytes(text)),
            (Schema::Decimal(spec), _) => {
                let text = match value {
                    Json::String(text) => text.clone(),
                    other => other.to_string(),
                };
                AvroValue::Decimal(apache_avro::Decimal::from(unscaled_bytes(
                    &text, spec.scale,
                )))
            }
            (Schema::Enum(spec), Json::String(symbol)) => {
                let index = spec.symbols.iter().position(|s| s == symbol).unwrap_or(0);
                AvroValue::Enum(index as u32, symbol.clone())
            }
            (Schema::Array(array), Json::Array(items)) => AvroValue::Array(
                items
                    .iter()
                    .map(|item| self.avro_value(item, &array.items))
                    .collect(),
            ),
            (Schema::Map(map), Json::Object(entries)) => AvroValue::Map(
                entries
                    .iter()
                    .map(|(key, item)| (key.clone(), self.avro_value(item, &map.types)))
                    .collect(),
            ),
            (Schema::Record(record), Json::Object(object)) => AvroValue::Record(
                record
                    .fields
                    .iter()
                    .map(|field| {
                        let field_value = match (object.get(&field.name), &field.default) {
                            (Some(v), _) => self.avro_value(v, &field.schema),
                            (None, Some(default)) => self.default_value(default, &field.schema),
                            (None, None) => self.avro_value(&Json::Null, &field.schema),
                        };
                        (field.name.clone(), field_value)
                    })
                    .collect(),
            ),
            (Schema::Union(union), _) => {
                let (branch_value, candidates): (&Json, Vec<(usize, &Schema)>) =
                    match (self.json_encoding, value) {
                        (JsonEncoding::AvroJson, Json::Object(o)) if o.len() == 1 => {
                            let (tag, inner) = o.iter().next().expect("one entry");
                            let found = union
                                .variants()
                                .iter()
                                .enumerate()
                                .filter(|(_, b)| type_name(self.resolve(b)) == *tag)
                                .collect();
                            (inner, found)
                        }
                        _ => (value, union.variants().iter().enumerate().collect()),
                    };
                let (index, branch) = candidates
                    .into_iter()
                    .find(|(_, b)| self.check_json(branch_value, b, "", &mut Vec::new()))
                    .unwrap_or((0, &union.variants()[0]));
                AvroValue::Union(
                    index as u32,
                    Box::new(self.avro_value(branch_value, branch)),
                )
            }
            _ => AvroValue::from(value.clone()),
        }
    }

    /// A field default, which the specification writes for the union's first branch.
    fn default_value(&self, default: &Json, schema: &Schema) -> AvroValue {
        match self.resolve(schema) {
            Schema::Union(union) => {
                AvroValue::Union(0, Box::new(self.avro_value(default, &union.variants()[0])))
            }
            other => self.avro_value(default, other),
        }
    }

    /// The binary datum of accepted JSON.
    pub(super) fn to_binary(&self, value: &Json) -> Result<Vec<u8>, Violation> {
        let avro = self
            .avro_value(value, self.schema())
            .resolve(self.schema())
            .map_err(|e| {
                Violation::whole_message(format!("cannot be stored as binary Avro: {e}"))
            })?;
        apache_avro::to_avro_datum(self.schema(), avro)
            .map_err(|e| Violation::whole_message(format!("cannot be stored as binary Avro: {e}")))
    }
}

/// Pushes "expected …, found …" for a value of the wrong shape at `path`; always `false`, so a
/// check can end `ok || report_mismatch(…)`.
fn report_mismatch(value: &Json, path: &str, out: &mut Vec<Violation>, expected: &str) -> bool {
    out.push(violation(
        path,
        format!("expected {expected}, found {}", preview(value)),
    ));
    false
}

/// Whether a time-of-day count (`per_day` units in a day) is in range, pushing why not if it isn't.
#[inline]
fn is_time_of_day(
    count: i64,
    per_day: i64,
    kind: &str,
    path: &str,
    out: &mut Vec<Violation>,
) -> bool {
    match not_a_time_of_day(count, per_day, kind) {
        None => true,
        Some(reason) => {
            out.push(violation(path, reason));
            false
        }
    }
}

/// Whether every check passed, running all of them so every violation is reported.
fn every(checks: impl Iterator<Item = bool>) -> bool {
    checks.fold(true, |all, ok| all & ok)
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Length in bytes of a string that encodes bytes as code points U+0000..U+00FF.
fn latin1_len(text: &str) -> Option<usize> {
    text.chars()
        .all(|c| (c as u32) <= 0xFF)
        .then(|| text.chars().count())
}

/// A string of code points U+0000..U+00FF as the bytes it stands for.
fn latin1_bytes(text: &str) -> Vec<u8> {
    text.chars().map(|c| c as u32 as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_recognized() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    }
}
