//! The fast path for binary Avro datums: one pass over the bytes against the schema, building no
//! value and allocating nothing, that answers "is this datum certainly valid?". A `false` sends
//! the datum to the decoding path in `binary.rs`, which is the authority and explains every
//! violation.
//!
//! It answers `true` only where decoding would succeed and find nothing to refuse: the datum ends
//! exactly where the bytes do; varints of at most ten bytes, `int`s within 32 bits; booleans 0 or
//! 1; lengths and block counts non-negative, inside the bytes and within apache-avro's allocation
//! limit; strings and map keys valid UTF-8; enum and union indexes in range; `time-millis` and
//! `time-micros` within a day; records, arrays and maps nested at most [`MAX_NESTING`] deep.
//! Values of `decimal`, `big-decimal`, `uuid` and `duration` are not modelled: meeting one sends
//! the datum to the decoding path. Recursion is bounded by the nesting limit, so no datum needs a
//! large stack here.

use apache_avro::util::{max_allocation_bytes, DEFAULT_MAX_ALLOCATION_BYTES};
use apache_avro::Schema;

use super::{AvroSchema, DAY_MILLIS, MAX_NESTING};

impl AvroSchema {
    /// Whether `datum` is certainly a valid datum of this version.
    pub(super) fn datum_is_certainly_valid(&self, datum: &[u8]) -> bool {
        let mut walk = Walk {
            schema: self,
            bytes: datum,
            // The same limit apache-avro's decoder applies to every length and block count.
            max_length: max_allocation_bytes(DEFAULT_MAX_ALLOCATION_BYTES),
        };
        walk.value(&self.schema, 0) && walk.bytes.is_empty()
    }
}

struct Walk<'a> {
    schema: &'a AvroSchema,
    bytes: &'a [u8],
    max_length: usize,
}

impl<'a> Walk<'a> {
    fn value(&mut self, schema: &'a Schema, depth: usize) -> bool {
        if depth > MAX_NESTING {
            return false;
        }
        match self.schema.resolve(schema) {
            Schema::Null => true,
            Schema::Boolean => matches!(self.take(1), Some([0 | 1])),
            Schema::Int | Schema::Date => self.int().is_some(),
            Schema::TimeMillis => self
                .int()
                .is_some_and(|ms| (0..DAY_MILLIS).contains(&i64::from(ms))),
            Schema::TimeMicros => self
                .long()
                .is_some_and(|us| (0..DAY_MILLIS * 1000).contains(&us)),
            Schema::Long
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.long().is_some(),
            Schema::Float => self.take(4).is_some(),
            Schema::Double => self.take(8).is_some(),
            Schema::Bytes => self.length_prefixed().is_some(),
            Schema::String => self.string(),
            Schema::Fixed(fixed) => self.take(fixed.size).is_some(),
            Schema::Enum(enumeration) => self
                .int()
                .and_then(|index| usize::try_from(index).ok())
                .is_some_and(|index| index < enumeration.symbols.len()),
            Schema::Union(union) => {
                let branch = self
                    .long()
                    .and_then(|index| usize::try_from(index).ok())
                    .and_then(|index| union.variants().get(index));
                branch.is_some_and(|branch| self.value(branch, depth))
            }
            Schema::Record(record) => record
                .fields
                .iter()
                .all(|field| self.value(&field.schema, depth + 1)),
            Schema::Array(array) => self.blocks(|walk| walk.value(&array.items, depth + 1)),
            Schema::Map(map) => {
                self.blocks(|walk| walk.string() && walk.value(&map.types, depth + 1))
            }
            // decimal, big-decimal, uuid, duration, and a reference that does not resolve.
            _ => false,
        }
    }

    /// Array or map blocks: a count (negative: followed by the block's byte size), that many
    /// items, until a zero count.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> bool) -> bool {
        loop {
            let Some(mut count) = self.long() else {
                return false;
            };
            if count == 0 {
                return true;
            }
            if count < 0 {
                if self.long().is_none() {
                    return false;
                }
                let Some(positive) = count.checked_neg() else {
                    return false;
                };
                count = positive;
            }
            if usize::try_from(count).map_or(true, |n| n > self.max_length) {
                return false;
            }
            for _ in 0..count {
                if !item(self) {
                    return false;
                }
            }
        }
    }

    fn string(&mut self) -> bool {
        self.length_prefixed()
            .is_some_and(|text| std::str::from_utf8(text).is_ok())
    }

    fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let length = usize::try_from(self.long()?).ok()?;
        if length > self.max_length {
            return None;
        }
        self.take(length)
    }

    fn int(&mut self) -> Option<i32> {
        i32::try_from(self.long()?).ok()
    }

    /// A zig-zag varint as apache-avro reads it: at most ten bytes.
    fn long(&mut self) -> Option<i64> {
        let mut raw = 0u64;
        for (position, byte) in self.bytes.iter().take(10).enumerate() {
            raw |= u64::from(byte & 0x7F) << (position * 7);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[position + 1..];
                let value = (raw >> 1) as i64;
                return Some(if raw & 1 == 0 { value } else { !value });
            }
        }
        None
    }

    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < count {
            return None;
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;

    use super::super::{compile_for_test as compile, AvroSchema};

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

    /// Asserts the walk and decoding agree on every mutation of every datum; returns how many
    /// mutations decoding accepted.
    fn assert_agrees(schema: &AvroSchema, data: &[Vec<u8>]) -> usize {
        let mut accepted = 0;
        for original in data {
            assert!(schema.datum_is_certainly_valid(original), "{original:02x?}");
            for datum in mutations(original) {
                let decoded = schema.judge_decoded(&datum).is_ok();
                let walked = schema.datum_is_certainly_valid(&datum);
                assert_eq!(
                    walked, decoded,
                    "walk {walked}, decoding {decoded}: {datum:02x?}"
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
                apache_avro::to_avro_datum(&schema.schema, everything(kind, branch)).unwrap()
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
        assert!(schema.datum_is_certainly_valid(&deep));
        let too_deep = tree(101);
        assert!(!schema.datum_is_certainly_valid(&too_deep));
        assert!(schema.judge_decoded(&too_deep).is_err());
    }

    #[test]
    fn unmodelled_logical_types_go_to_the_decoder() {
        let schema = compile(
            r#"{"type":"record","name":"P","fields":[{"name":"id","type":{"type":"string","logicalType":"uuid"}}]}"#,
        );
        let uuid = "00000000-0000-0000-0000-000000000000";
        let mut datum = vec![72]; // zig-zag 36, the string's length
        datum.extend_from_slice(uuid.as_bytes());
        assert!(!schema.datum_is_certainly_valid(&datum));
        assert!(schema.judge_decoded(&datum).is_ok());
    }
}
