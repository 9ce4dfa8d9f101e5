//! The walk held to apache-avro's decoder, on every mutation of valid datums.

use apache_avro::types::Value;
use apache_avro::Schema;

use super::super::{compile_for_test as compile, AvroSchema, DAY_MILLIS, MAX_NESTING};
use crate::formats::avro::decimal::check_precision;

const EVERYTHING: &str = r#"{"type": "record", "name": "E", "namespace": "t", "fields": [
    {"name": "flag", "type": "boolean"},
    {"name": "n", "type": "int"},
    {"name": "big", "type": "long"},
    {"name": "ratio", "type": "float"},
    {"name": "price", "type": "double"},
    {"name": "blob", "type": "bytes"},
    {"name": "name", "type": "string"},
    {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 4}},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}},
    {"name": "maybe", "type": ["null", "string", {"type": "record", "name": "Inner",
        "fields": [{"name": "x", "type": "int"}]}]},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "counts", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "at_us", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "stamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "again", "type": "Inner"}
]}"#;

const TREE: &str =
    r#"{"type":"record","name":"Node","fields":[{"name":"child","type":["null","Node"]}]}"#;

fn everything(kind: u32, branch: u32) -> Value {
    let maybe = match branch {
        0 => Value::Null,
        1 => Value::String("why".into()),
        _ => Value::Record(vec![("x".into(), Value::Int(-7))]),
    };
    Value::Record(vec![
        ("flag".into(), Value::Boolean(true)),
        ("n".into(), Value::Int(-300)),
        ("big".into(), Value::Long(1 << 40)),
        ("ratio".into(), Value::Float(0.5)),
        ("price".into(), Value::Double(12.25)),
        ("blob".into(), Value::Bytes(vec![0, 1, 0xFF])),
        ("name".into(), Value::String("né".into())),
        ("id".into(), Value::Fixed(4, vec![1, 2, 3, 4])),
        (
            "kind".into(),
            Value::Enum(kind, ["A", "B", "C"][kind as usize].into()),
        ),
        ("maybe".into(), Value::Union(branch, Box::new(maybe))),
        (
            "tags".into(),
            Value::Array(vec![Value::String("a".into()), Value::String("".into())]),
        ),
        (
            "counts".into(),
            Value::Map(
                [(
                    "k".to_owned(),
                    Value::Array(vec![Value::Long(5), Value::Long(-1)]),
                )]
                .into_iter()
                .collect(),
            ),
        ),
        ("day".into(), Value::Date(19_000)),
        ("at".into(), Value::TimeMillis(86_399_999)),
        ("at_us".into(), Value::TimeMicros(1)),
        ("stamp".into(), Value::TimestampMillis(1_700_000_000_000)),
        (
            "again".into(),
            Value::Record(vec![("x".into(), Value::Int(1))]),
        ),
    ])
}

/// The datum of a chain of `records` nodes, each the child of the one before: union branch 1
/// (zig-zag 2) for every child, then branch 0 (null).
fn tree(records: usize) -> Vec<u8> {
    let mut datum = vec![0x02; records - 1];
    datum.push(0x00);
    datum
}

/// Every truncation, byte replacement and byte insertion of `datum`.
fn mutations(datum: &[u8]) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = (0..datum.len()).map(|i| datum[..i].to_vec()).collect();
    for i in 0..=datum.len() {
        if let Some(&b) = datum.get(i) {
            for replacement in [
                0x00,
                0x01,
                0x02,
                0x7F,
                0x80,
                0xFF,
                b ^ 0x01,
                b ^ 0x80,
                b.wrapping_add(2),
            ] {
                let mut changed = datum.to_vec();
                changed[i] = replacement;
                all.push(changed);
            }
        }
        for inserted in [0x00, 0x01, 0x02, 0x80, 0xFF] {
            let mut changed = datum.to_vec();
            changed.insert(i, inserted);
            all.push(changed);
        }
    }
    all
}

/// Whether apache-avro decodes `datum` as a value of `schema` that the logical-type bounds and
/// the nesting limit allow: the reference the walk is held to. Run on a thread with a stack for
/// the decoder's deep recursion.
fn decodes(schema: &AvroSchema, datum: &[u8]) -> bool {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(64 * 1024 * 1024)
            .spawn_scoped(scope, || reference(schema, datum))
            .unwrap()
            .join()
            .unwrap()
    })
}

fn reference(schema: &AvroSchema, datum: &[u8]) -> bool {
    use std::io::Read as _;
    // apache-avro reads end-of-input as null for booleans, strings and union indexes: a sentinel
    // byte after the datum is reached only by a datum that is incomplete.
    const SENTINEL: [u8; 1] = [0x80];
    let mut reader = datum.chain(&SENTINEL[..]);
    let decoded = apache_avro::from_avro_datum(schema.schema(), &mut reader, None);
    let (rest, sentinel) = reader.into_inner();
    match decoded {
        Ok(value) if !sentinel.is_empty() && rest.is_empty() => {
            within_bounds(schema, &value, schema.schema(), 0)
        }
        _ => false,
    }
}

/// Whether a decoded value nests at most `MAX_NESTING` deep and its decimals and times of day
/// are within their bounds.
fn within_bounds(schema: &AvroSchema, value: &Value, of: &Schema, depth: usize) -> bool {
    match (value, schema.resolve(of)) {
        (Value::Union(index, inner), Schema::Union(union)) => {
            within_bounds(schema, inner, &union.variants()[*index as usize], depth)
        }
        (Value::Record(fields), Schema::Record(record)) => {
            depth < MAX_NESTING
                && fields
                    .iter()
                    .zip(&record.fields)
                    .all(|((_, v), f)| within_bounds(schema, v, &f.schema, depth + 1))
        }
        (Value::Array(items), Schema::Array(array)) => {
            depth < MAX_NESTING
                && items
                    .iter()
                    .all(|item| within_bounds(schema, item, &array.items, depth + 1))
        }
        (Value::Map(entries), Schema::Map(map)) => {
            depth < MAX_NESTING
                && entries
                    .values()
                    .all(|item| within_bounds(schema, item, &map.types, depth + 1))
        }
        (Value::Decimal(decimal), Schema::Decimal(spec)) => {
            let bytes = Vec::<u8>::try_from(decimal).unwrap();
            check_precision(&bytes, spec.precision).is_ok()
        }
        (Value::TimeMillis(ms), _) => (0..DAY_MILLIS).contains(&i64::from(*ms)),
        (Value::TimeMicros(us), _) => (0..DAY_MILLIS * 1000).contains(us),
        _ => true,
    }
}

/// Asserts the walk and the reference agree on every datum and every mutation of it; returns how
/// many mutations decode.
fn assert_agrees(schema: &AvroSchema, data: &[Vec<u8>]) -> usize {
    let mut accepted = 0;
    for original in data {
        assert!(schema.judge_datum(original).is_ok(), "{original:02x?}");
        for datum in mutations(original) {
            let decoded = decodes(schema, &datum);
            let walked = schema.judge_datum(&datum);
            assert_eq!(
                walked.is_ok(),
                decoded,
                "walk {walked:?}, decoding {decoded}: {datum:02x?}"
            );
            accepted += usize::from(decoded);
        }
    }
    accepted
}

#[test]
fn the_walk_agrees_with_decoding_on_mutated_datums() {
    let schema = compile(EVERYTHING);
    let data: Vec<Vec<u8>> = [(0, 0), (1, 1), (2, 2)]
        .into_iter()
        .map(|(kind, branch)| {
            apache_avro::to_avro_datum(schema.schema(), everything(kind, branch)).unwrap()
        })
        .collect();
    let accepted = assert_agrees(&schema, &data);
    assert!(accepted > 200, "only {accepted} mutations decoded");
}

#[test]
fn the_walk_agrees_with_decoding_on_recursive_datums_and_stops_at_the_nesting_limit() {
    let schema = compile(TREE);
    let data: Vec<Vec<u8>> = [1, 2, 5].into_iter().map(tree).collect();
    assert_agrees(&schema, &data);
    let deep = tree(100);
    assert!(schema.judge_datum(&deep).is_ok());
    assert!(decodes(&schema, &deep));
    let too_deep = schema.judge_datum(&tree(101)).unwrap_err();
    assert_eq!(too_deep.reason, "the datum nests deeper than 100 levels");
    assert!(!decodes(&schema, &tree(101)));
}

const LOGICAL: &str = r#"{"type": "record", "name": "L", "fields": [
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}},
    {"name": "cents", "type": {"type": "fixed", "name": "C", "size": 2, "logicalType": "decimal", "precision": 3}},
    {"name": "big", "type": {"type": "bytes", "logicalType": "big-decimal"}},
    {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "took", "type": {"type": "fixed", "name": "D", "size": 12, "logicalType": "duration"}}
]}"#;

#[test]
fn logical_types_are_judged_as_the_decoder_and_the_bounds_judge_them() {
    let schema = compile(LOGICAL);
    let uuid = "6f1b3c1e-8a2d-4c55-9d3e-2f6a7b8c9d0e";
    let mut datum = vec![0x04, 0x03, 0xE7]; // bytes of length 2: 999
    datum.extend([0x00, 0x64]); // fixed: 100
    datum.extend([0x06, 0x02, 0x7B, 0x04]); // big-decimal: 3 bytes (length 1, 123, scale 2)
    datum.push(72); // a 36-byte string
    datum.extend_from_slice(uuid.as_bytes());
    datum.extend([0u8; 12]);
    assert!(decodes(&schema, &datum), "the reference takes it");
    let accepted = assert_agrees(&schema, &[datum.clone()]);
    assert!(accepted > 20, "only {accepted} mutations decoded");

    let mut too_precise = datum.clone();
    too_precise[1..3].copy_from_slice(&[0x27, 0x10]); // 10000: five digits of four
    let violation = schema.judge_datum(&too_precise).unwrap_err();
    assert_eq!(violation.path, "/price");
    assert_eq!(violation.reason, "decimal has 5 digits; its precision is 4");
    let mut not_a_uuid = datum;
    not_a_uuid[12] = b'x';
    let violation = schema.judge_datum(&not_a_uuid).unwrap_err();
    assert_eq!(violation.path, "/id");
    assert!(violation.reason.contains("is not a uuid"), "{violation:?}");
}

#[test]
fn a_violation_names_where_in_the_datum_it_is() {
    let schema = compile(EVERYTHING);
    let mut datum = apache_avro::to_avro_datum(schema.schema(), everything(0, 0)).unwrap();
    // The enum `kind` sits after the boolean, the varints, the floats, bytes, string and fixed.
    let kind_at = 1 + 2 + 6 + 4 + 8 + 4 + 4 + 4;
    assert_eq!(datum[kind_at], 0x00, "kind A, as written");
    datum[kind_at] = 0x06; // index 3 of three symbols
    let violation = schema.judge_datum(&datum).unwrap_err();
    assert_eq!(violation.path, "/kind");
    assert_eq!(
        violation.reason,
        "not a valid Avro datum: enum index 3 is not one of the 3 symbols of t.Kind"
    );
    let truncated = schema.judge_datum(&[0x01]).unwrap_err();
    assert_eq!(truncated.path, "/n");
    assert_eq!(
        truncated.reason,
        "not a valid Avro datum: the bytes end before the datum does"
    );
}
