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

use std::collections::HashMap;

use apache_avro::headers::{HeaderBuilder, RabinFingerprintHeader};
use apache_avro::schema::{Name, RecordField};
use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::confluent::read_zigzag;
use super::{
    pointer_escape, preview, CompileError, CompileInput, CompiledSchema, Normalize,
    PayloadEncoding, Valid, Violation, MAX_VIOLATIONS,
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
/// Deepest nesting of records, arrays and maps a binary datum may have (as prost allows Protobuf).
const MAX_NESTING: usize = 100;
/// Stack for decoding datums of recursive schemas (virtual memory, committed only as used).
const RECURSIVE_DECODE_STACK: usize = 64 * 1024 * 1024;

/// Sets the most bytes one decode may allocate for a length-prefixed value. The first call wins
/// for the whole process (the crate keeps it globally).
pub fn set_allocation_limit(bytes: usize) -> usize {
    apache_avro::util::max_allocation_bytes(bytes)
}

/// A compiled Avro version.
#[derive(Debug)]
pub struct AvroSchema {
    schema: Schema,
    /// Named types by full name, for `Ref`s met while walking the schema.
    names: HashMap<String, Schema>,
    /// `C3 01` + this version's Rabin fingerprint.
    single_object_header: Vec<u8>,
    json_encoding: JsonEncoding,
    /// Whether the schema refers to named types, the only way it can be recursive. The decoder
    /// recurses per nesting level, so such datums are measured first (see [`Self::check_nesting`]).
    has_refs: bool,
    /// Whether the schema uses a logical type whose values the decoder does not bound (decimal
    /// precision, time of day); only then is a decoded datum walked again.
    has_bounded_logical_types: bool,
}

impl AvroSchema {
    pub fn compile(input: &CompileInput<'_>) -> Result<Self, CompileError> {
        let schema = Schema::parse_str(input.text).map_err(|e| CompileError::new(e.to_string()))?;
        let mut names = HashMap::new();
        collect_names(&schema, &mut names);
        let has_refs = contains_ref(&schema);
        let has_bounded_logical_types = names
            .values()
            .chain(std::iter::once(&schema))
            .any(has_bounded_logical_type);
        Ok(Self {
            has_refs,
            has_bounded_logical_types,
            single_object_header: RabinFingerprintHeader::from_schema(&schema).build_header(),
            schema,
            names,
            json_encoding: input.settings.encoding,
        })
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.names.get(&full_name(name)).unwrap_or(schema),
            other => other,
        }
    }

    /// Reads a binary datum; with `single_object`, a payload starting with a single-object
    /// header is read as one.
    fn validate_binary(&self, payload: &[u8], single_object: bool) -> Result<(), Vec<Violation>> {
        let datum = match payload.strip_prefix(self.single_object_header.as_slice()) {
            Some(datum) if single_object => datum,
            None if single_object && payload.starts_with(&[0xC3, 0x01]) && payload.len() >= 10 => {
                return Err(vec![Violation::whole_message(format!(
                    "single-object encoding with fingerprint {}, which is no version of this schema (this version's is {})",
                    hex(&payload[2..10]),
                    hex(&self.single_object_header[2..])
                ))])
            }
            _ => payload,
        };
        if self.has_refs {
            self.check_nesting(datum)
                .map_err(|reason| vec![Violation::whole_message(reason)])?;
        }
        if self.has_refs {
            // apache-avro recurses once per nesting level with large frames; recursive schemas
            // get a stack sized for MAX_NESTING levels in any build.
            std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .name("sluice-avro-decode".into())
                    .stack_size(RECURSIVE_DECODE_STACK)
                    .spawn_scoped(scope, || self.decode_datum(datum))
                    .map_err(|e| vec![Violation::whole_message(format!("cannot decode now: {e}"))])?
                    .join()
                    .unwrap_or_else(|_| {
                        Err(vec![Violation::whole_message("the Avro decoder failed")])
                    })
            })
        } else {
            self.decode_datum(datum)
        }
    }

    /// Decodes one datum, then checks what the decoder does not.
    ///
    /// apache-avro reads end-of-input as null for booleans, strings and union indexes, which would
    /// let a truncated datum pass. The datum is therefore read followed by one sentinel byte: a
    /// complete datum never reaches it, an incomplete one always reads into it.
    fn decode_datum(&self, datum: &[u8]) -> Result<(), Vec<Violation>> {
        use std::io::Read as _;
        const SENTINEL: [u8; 1] = [0x80];
        let mut reader = datum.chain(&SENTINEL[..]);
        let decoded = apache_avro::from_avro_datum(&self.schema, &mut reader, None);
        let (rest, sentinel) = reader.into_inner();
        if sentinel.is_empty() {
            return Err(vec![Violation::whole_message(
                "not a valid Avro datum: the bytes end before the datum does",
            )]);
        }
        let value = decoded.map_err(|e| {
            vec![Violation::whole_message(format!(
                "not a valid Avro datum: {e}"
            ))]
        })?;
        if !rest.is_empty() {
            return Err(vec![Violation::whole_message(format!(
                "{} bytes left over after the Avro datum",
                rest.len()
            ))]);
        }
        if !self.has_bounded_logical_types {
            return Ok(());
        }
        let mut violations = Vec::new();
        self.check_decoded(&value, &self.schema, "", &mut violations);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// Walks a datum iteratively (an explicit stack, no recursion) and refuses it if records,
    /// arrays and maps nest deeper than [`MAX_NESTING`]. Anything else wrong with the bytes is left
    /// for the decoder to report.
    fn check_nesting(&self, mut bytes: &[u8]) -> Result<(), String> {
        enum Task<'a> {
            Value(&'a Schema, usize),
            /// `remaining` items of the current block, then the next block's count.
            Items {
                item: &'a Schema,
                remaining: i64,
                depth: usize,
                map: bool,
            },
        }
        let too_deep = || format!("the datum nests deeper than {MAX_NESTING} levels");
        let mut stack = vec![Task::Value(&self.schema, 0)];
        while let Some(task) = stack.pop() {
            let (schema, depth) = match task {
                Task::Value(schema, depth) => (self.resolve(schema), depth),
                Task::Items {
                    item,
                    remaining,
                    depth,
                    map,
                } => {
                    if remaining > 0 {
                        stack.push(Task::Items {
                            item,
                            remaining: remaining - 1,
                            depth,
                            map,
                        });
                        if map {
                            let Some(len) = read_zigzag(&mut bytes) else {
                                return Ok(());
                            };
                            let Some(rest) =
                                bytes.get(usize::try_from(len).unwrap_or(usize::MAX)..)
                            else {
                                return Ok(());
                            };
                            bytes = rest;
                        }
                        stack.push(Task::Value(item, depth));
                    } else {
                        let Some(count) = read_block_count(&mut bytes) else {
                            return Ok(());
                        };
                        if count > 0 {
                            stack.push(Task::Items {
                                item,
                                remaining: count,
                                depth,
                                map,
                            });
                        }
                    }
                    continue;
                }
            };
            if depth > MAX_NESTING {
                return Err(too_deep());
            }
            let skip = |bytes: &mut &[u8], n: usize| match bytes.get(n..) {
                Some(rest) => {
                    *bytes = rest;
                    true
                }
                None => false,
            };
            let ok = match schema {
                Schema::Record(record) => {
                    stack.extend(
                        record
                            .fields
                            .iter()
                            .rev()
                            .map(|f| Task::Value(&f.schema, depth + 1)),
                    );
                    true
                }
                Schema::Array(array) => {
                    stack.push(Task::Items {
                        item: &array.items,
                        remaining: 0,
                        depth: depth + 1,
                        map: false,
                    });
                    true
                }
                Schema::Map(map) => {
                    stack.push(Task::Items {
                        item: &map.types,
                        remaining: 0,
                        depth: depth + 1,
                        map: true,
                    });
                    true
                }
                Schema::Union(union) => match read_zigzag(&mut bytes)
                    .and_then(|i| union.variants().get(usize::try_from(i).ok()?))
                {
                    Some(branch) => {
                        stack.push(Task::Value(branch, depth));
                        true
                    }
                    None => false,
                },
                Schema::Null => true,
                Schema::Boolean => skip(&mut bytes, 1),
                Schema::Float => skip(&mut bytes, 4),
                Schema::Double => skip(&mut bytes, 8),
                Schema::Fixed(fixed) => skip(&mut bytes, fixed.size),
                Schema::Duration => skip(&mut bytes, 12),
                Schema::Decimal(decimal) => match &*decimal.inner {
                    Schema::Fixed(fixed) => skip(&mut bytes, fixed.size),
                    _ => read_zigzag(&mut bytes).is_some_and(|n| {
                        skip(&mut bytes, usize::try_from(n).unwrap_or(usize::MAX))
                    }),
                },
                Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => {
                    read_zigzag(&mut bytes)
                        .is_some_and(|n| skip(&mut bytes, usize::try_from(n).unwrap_or(usize::MAX)))
                }
                // int, long, enum and the logical types on them: one varint.
                _ => read_zigzag(&mut bytes).is_some(),
            };
            if !ok {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Checks the logical-type constraints the decoder does not.
    fn check_decoded(
        &self,
        value: &AvroValue,
        schema: &Schema,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        let schema = self.resolve(schema);
        match (value, schema) {
            (AvroValue::Union(index, inner), Schema::Union(union)) => {
                if let Some(branch) = union.variants().get(*index as usize) {
                    self.check_decoded(inner, branch, path, out);
                }
            }
            (AvroValue::Record(fields), Schema::Record(record)) => {
                for ((name, field_value), field) in fields.iter().zip(&record.fields) {
                    self.check_decoded(field_value, &field.schema, &format!("{path}/{name}"), out);
                }
            }
            (AvroValue::Array(items), Schema::Array(array)) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_decoded(item, &array.items, &format!("{path}/{index}"), out);
                }
            }
            (AvroValue::Map(entries), Schema::Map(map)) => {
                for (key, item) in entries {
                    self.check_decoded(item, &map.types, &format!("{path}/{key}"), out);
                }
            }
            (AvroValue::Decimal(decimal), Schema::Decimal(spec)) => {
                if let Ok(bytes) = Vec::<u8>::try_from(decimal) {
                    let digits = decimal_digits(&bytes);
                    if digits > spec.precision {
                        out.push(violation(
                            path,
                            format!(
                                "decimal has {digits} digits; its precision is {}",
                                spec.precision
                            ),
                        ));
                    }
                }
            }
            (AvroValue::TimeMillis(ms), _) => {
                check_time_of_day(i64::from(*ms), DAY_MILLIS, "time-millis", path, out)
            }
            (AvroValue::TimeMicros(us), _) => {
                check_time_of_day(*us, DAY_MILLIS * 1000, "time-micros", path, out)
            }
            _ => {}
        }
    }

    /// Judges a JSON value against `schema`; pushes violations and returns whether it matched.
    fn check_json(
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
        let mismatch = |out: &mut Vec<Violation>, expected: &str| {
            out.push(violation(
                path,
                format!("expected {expected}, found {}", preview(value)),
            ));
            false
        };
        match schema {
            Schema::Null => value.is_null() || mismatch(out, "null"),
            Schema::Boolean => value.is_boolean() || mismatch(out, "a boolean"),
            Schema::Int | Schema::Date => {
                value.as_i64().is_some_and(|n| i32::try_from(n).is_ok())
                    || mismatch(out, "an int (32-bit)")
            }
            Schema::TimeMillis => match value.as_i64() {
                Some(ms) if i32::try_from(ms).is_ok() => {
                    let before = out.len();
                    check_time_of_day(ms, DAY_MILLIS, "time-millis", path, out);
                    out.len() == before
                }
                _ => mismatch(out, "a time-millis int"),
            },
            Schema::TimeMicros => match value.as_i64() {
                Some(us) => {
                    let before = out.len();
                    check_time_of_day(us, DAY_MILLIS * 1000, "time-micros", path, out);
                    out.len() == before
                }
                None => mismatch(out, "a time-micros long"),
            },
            Schema::Long
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
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
            Schema::Array(array) => match value.as_array() {
                Some(items) => every(items.iter().enumerate().map(|(i, item)| {
                    self.check_json(item, &array.items, &format!("{path}/{i}"), out)
                })),
                None => mismatch(out, "an array"),
            },
            Schema::Map(map) => match value.as_object() {
                Some(entries) => every(entries.iter().map(|(key, item)| {
                    self.check_json(
                        item,
                        &map.types,
                        &format!("{path}/{}", pointer_escape(key)),
                        out,
                    )
                })),
                None => mismatch(out, "an object (map)"),
            },
            Schema::Record(record) => match value.as_object() {
                Some(object) => every(
                    record
                        .fields
                        .iter()
                        .map(|field| self.check_json_field(object, field, path, out)),
                ),
                None => mismatch(out, &format!("an object (record {})", record.name)),
            },
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
                    let names: Vec<String> = branches
                        .iter()
                        .map(|b| type_name(self.resolve(b)))
                        .collect();
                    out.push(violation(
                        path,
                        format!(
                            "{} matches no branch of the union [{}]",
                            preview(value),
                            names.join(", ")
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
                        let names: Vec<String> = branches
                            .iter()
                            .map(|b| type_name(self.resolve(b)))
                            .collect();
                        out.push(violation(
                            path,
                            format!(
                                "`{tag}` is not a branch of the union [{}]",
                                names.join(", ")
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
}

impl AvroSchema {
    /// Builds the Avro value of JSON that [`Self::check_json`] accepted, for normalization.
    fn avro_value(&self, value: &Json, schema: &Schema) -> AvroValue {
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
    fn to_binary(&self, value: &Json) -> Result<Vec<u8>, Violation> {
        let avro = self
            .avro_value(value, &self.schema)
            .resolve(&self.schema)
            .map_err(|e| {
                Violation::whole_message(format!("cannot be stored as binary Avro: {e}"))
            })?;
        apache_avro::to_avro_datum(&self.schema, avro)
            .map_err(|e| Violation::whole_message(format!("cannot be stored as binary Avro: {e}")))
    }
}

impl CompiledSchema for AvroSchema {
    fn validate(
        &self,
        payload: &Bytes,
        encoding: &PayloadEncoding,
        normalize: Normalize,
    ) -> Result<Valid, Vec<Violation>> {
        if encoding.is_json() {
            let value: Json = serde_json::from_slice(payload)
                .map_err(|e| vec![Violation::whole_message(format!("not valid JSON: {e}"))])?;
            let mut violations = Vec::new();
            if !self.check_json(&value, &self.schema, "", &mut violations) {
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
        Ok(Valid {
            value: payload.clone(),
            is_json: encoding.is_json(),
        })
    }

    fn written_with_this_version(&self, payload: &Bytes, encoding: &PayloadEncoding) -> bool {
        *encoding == PayloadEncoding::Avro && payload.starts_with(&self.single_object_header)
    }
}

/// Whether `schema` directly holds a decimal or time-of-day value (named types are checked one by
/// one by the caller).
fn has_bounded_logical_type(schema: &Schema) -> bool {
    match schema {
        Schema::Decimal(_) | Schema::TimeMillis | Schema::TimeMicros => true,
        Schema::Record(record) => record
            .fields
            .iter()
            .any(|f| has_bounded_logical_type(&f.schema)),
        Schema::Array(a) => has_bounded_logical_type(&a.items),
        Schema::Map(m) => has_bounded_logical_type(&m.types),
        Schema::Union(u) => u.variants().iter().any(has_bounded_logical_type),
        _ => false,
    }
}

/// Whether `schema` mentions a named type by reference anywhere.
fn contains_ref(schema: &Schema) -> bool {
    match schema {
        Schema::Ref { .. } => true,
        Schema::Record(record) => record.fields.iter().any(|f| contains_ref(&f.schema)),
        Schema::Array(a) => contains_ref(&a.items),
        Schema::Map(m) => contains_ref(&m.types),
        Schema::Union(u) => u.variants().iter().any(contains_ref),
        _ => false,
    }
}

/// Reads an array or map block count; a negative count is followed by the block's byte size.
fn read_block_count(bytes: &mut &[u8]) -> Option<i64> {
    let count = read_zigzag(bytes)?;
    if count < 0 {
        read_zigzag(bytes)?;
        return count.checked_neg();
    }
    Some(count)
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(full_name(&record.name), schema.clone());
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(full_name(&e.name), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(full_name(&f.name), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        Schema::Decimal(d) => collect_names(&d.inner, names),
        _ => {}
    }
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
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
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

/// Whether every check passed, running all of them so every violation is reported.
fn every(checks: impl Iterator<Item = bool>) -> bool {
    checks.fold(true, |all, ok| all & ok)
}

fn violation(path: &str, reason: impl Into<String>) -> Violation {
    Violation {
        path: path.to_owned(),
        schema_path: String::new(),
        reason: reason.into(),
    }
}

fn check_time_of_day(value: i64, per_day: i64, kind: &str, path: &str, out: &mut Vec<Violation>) {
    if !(0..per_day).contains(&value) {
        out.push(violation(
            path,
            format!("{kind} {value} is not a time of day (0 to {})", per_day - 1),
        ));
    }
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

/// `text` (a decimal numeral that fits its schema) as the big-endian two's-complement bytes of its
/// unscaled value at `scale`.
fn unscaled_bytes(text: &str, scale: usize) -> Vec<u8> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = format!("{whole}{fraction:0<scale$}");
    let magnitude: i128 = digits.trim_start_matches('0').parse().unwrap_or(0);
    let unscaled = if negative { -magnitude } else { magnitude };
    let bytes = unscaled.to_be_bytes();
    // Drop leading bytes that only repeat the sign.
    let mut start = 0;
    while start < 15
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xFF && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    bytes[start..].to_vec()
}

/// Decimal digits of a big-endian two's-complement integer's magnitude.
fn decimal_digits(bytes: &[u8]) -> usize {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = if negative {
        // Two's complement negation: invert and add one.
        let mut inverted: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for byte in inverted.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
        inverted
    } else {
        bytes.to_vec()
    };
    let mut digits = 0;
    while magnitude.iter().any(|b| *b != 0) {
        let mut remainder = 0u16;
        for byte in magnitude.iter_mut() {
            let current = (remainder << 8) | u16::from(*byte);
            *byte = (current / 10) as u8;
            remainder = current % 10;
        }
        digits += 1;
    }
    digits.max(1)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_count_the_magnitude() {
        assert_eq!(decimal_digits(&[0x00]), 1);
        assert_eq!(decimal_digits(&[0x7F]), 3); // 127
        assert_eq!(decimal_digits(&[0xFF]), 1); // -1
        assert_eq!(decimal_digits(&[0x80]), 3); // -128
        assert_eq!(decimal_digits(&[0x27, 0x10]), 5); // 10000
    }

    #[test]
    fn decimals_become_minimal_twos_complement_bytes() {
        assert_eq!(unscaled_bytes("1234.50", 2), vec![0x01, 0xE2, 0x3A]); // 123450
        assert_eq!(unscaled_bytes("1.5", 2), vec![0x00, 0x96]); // 150
        assert_eq!(unscaled_bytes("-1", 0), vec![0xFF]);
        assert_eq!(unscaled_bytes("0", 2), vec![0x00]);
    }

    #[test]
    fn uuids_are_recognized() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    }
}
