//! Avro binary payloads: single-object headers, then the one-pass walk (`walk.rs`) that accepts
//! valid datums without decoding them; anything it does not accept is decoded here — after the
//! nesting pre-pass for recursive schemas, with the truncation sentinel — and the logical-type
//! bounds the decoder leaves unchecked are judged on the value.

use apache_avro::types::Value as AvroValue;
use apache_avro::Schema;

use super::{violation, AvroSchema, DAY_MILLIS, MAX_NESTING, RECURSIVE_DECODE_STACK};
use crate::formats::confluent::read_zigzag;
use crate::formats::{Violation, MAX_VIOLATIONS};

impl AvroSchema {
    /// Reads a binary datum; with `single_object`, a payload starting with a single-object
    /// header is read as one.
    pub(super) fn validate_binary(
        &self,
        payload: &[u8],
        single_object: bool,
    ) -> Result<(), Vec<Violation>> {
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
        if self.datum_is_certainly_valid(datum) {
            debug_assert!(
                self.judge_decoded(datum).is_ok(),
                "the walk accepted a datum decoding refuses: {datum:?}"
            );
            return Ok(());
        }
        self.judge_decoded(datum)
    }

    /// Decodes `datum` and judges the value: the authority on what is valid, and the path that
    /// explains every violation.
    pub(super) fn judge_decoded(&self, datum: &[u8]) -> Result<(), Vec<Violation>> {
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

pub(super) fn check_time_of_day(
    value: i64,
    per_day: i64,
    kind: &str,
    path: &str,
    out: &mut Vec<Violation>,
) {
    if !(0..per_day).contains(&value) {
        out.push(violation(
            path,
            format!("{kind} {value} is not a time of day (0 to {})", per_day - 1),
        ));
    }
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
}
