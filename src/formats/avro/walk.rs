//! The judge of binary Avro datums: one pass over the bytes against the schema, building no value
//! and allocating nothing for a valid datum, that accepts exactly what apache-avro's decoder
//! decodes (and this module's logical-type bounds allow) and, for anything else, says what is
//! wrong and where.
//!
//! A valid datum ends exactly where the bytes do; its varints have at most ten bytes and its
//! `int`s fit 32 bits; booleans are 0 or 1; lengths and block counts are non-negative, inside the
//! bytes and within apache-avro's allocation limit; strings and map keys are UTF-8; enum and union
//! indexes are in range; `uuid`s parse as apache-avro parses them; `decimal`s have at most their
//! precision's digits and `time-millis` / `time-micros` are times of day; records, arrays and maps
//! nest at most [`MAX_NESTING`] deep. The walk's recursion is bounded by that limit, with small
//! frames, so no datum needs a large stack (apache-avro's own decoder recurses with frames of tens
//! of kilobytes per level; it is only the reference the tests hold the walk to).

use apache_avro::schema::{DecimalSchema, EnumSchema, UnionSchema};
use apache_avro::util::{max_allocation_bytes, DEFAULT_MAX_ALLOCATION_BYTES};
use apache_avro::Schema;

use super::decimal::check_precision;
use super::{not_a_time_of_day, timestamps, violation, AvroSchema, DAY_MILLIS, MAX_NESTING};
use crate::formats::confluent::read_zigzag;
use crate::formats::{pointer_escape, Violation};

impl AvroSchema {
    /// Judges a binary datum of this version: `Ok` for a valid one, else what is wrong and where.
    pub(super) fn judge_datum(&self, datum: &[u8]) -> Result<(), Violation> {
        let mut walk = Walk {
            schema: self,
            bytes: datum,
            // The same limit apache-avro's decoder applies to every length and block count.
            max_length: max_allocation_bytes(DEFAULT_MAX_ALLOCATION_BYTES),
        };
        walk.value(self.schema(), 0)
            .map_err(|failure| failure.into_violation())?;
        match walk.bytes.len() {
            0 => Ok(()),
            left => Err(violation(
                "",
                format!("{left} bytes left over after the Avro datum"),
            )),
        }
    }
}

/// Why a datum is invalid, and the path to where, built from the inside out as the walk unwinds
/// (only for an invalid datum: a valid one allocates nothing).
#[derive(Debug)]
struct Failure {
    reason: String,
    /// Segments innermost first.
    path: Vec<String>,
}

type Walked<T = ()> = Result<T, Box<Failure>>;

impl Failure {
    /// A datum whose bytes do not decode.
    fn malformed(reason: impl std::fmt::Display) -> Box<Self> {
        Box::new(Self {
            reason: format!("not a valid Avro datum: {reason}"),
            path: Vec::new(),
        })
    }

    /// A datum that decodes to a value this version refuses.
    fn refused(reason: String) -> Box<Self> {
        Box::new(Self {
            reason,
            path: Vec::new(),
        })
    }

    fn into_violation(self) -> Violation {
        let path: String = self
            .path
            .iter()
            .rev()
            .map(|segment| format!("/{}", pointer_escape(segment)))
            .collect();
        violation(&path, self.reason)
    }
}

/// Adds `segment` to the path of a failure met inside it.
fn inside<T>(walked: Walked<T>, segment: impl FnOnce() -> String) -> Walked<T> {
    walked.map_err(|mut failure| {
        failure.path.push(segment());
        failure
    })
}

struct Walk<'a> {
    schema: &'a AvroSchema,
    bytes: &'a [u8],
    max_length: usize,
}

impl<'a> Walk<'a> {
    fn value(&mut self, schema: &'a Schema, depth: usize) -> Walked {
        if depth > MAX_NESTING {
            return Err(Failure::refused(format!(
                "the datum nests deeper than {MAX_NESTING} levels"
            )));
        }
        match self.schema.resolve(schema) {
            Schema::Null => Ok(()),
            Schema::Boolean => match self.take(1)? {
                [0 | 1] => Ok(()),
                [other] => Err(Failure::malformed(format!(
                    "a boolean is 0 or 1, not {other}"
                ))),
                _ => unreachable!("took one byte"),
            },
            Schema::Int | Schema::Date => self.int().map(drop),
            Schema::TimeMillis => time_of_day(i64::from(self.int()?), DAY_MILLIS, "time-millis"),
            Schema::TimeMicros => time_of_day(self.long()?, DAY_MILLIS * 1000, "time-micros"),
            Schema::Long | timestamps!() => self.long().map(drop),
            Schema::Float => self.take(4).map(drop),
            Schema::Double => self.take(8).map(drop),
            Schema::Bytes => self.length_prefixed().map(drop),
            Schema::String => self.string().map(drop),
            Schema::Fixed(fixed) => self.take(fixed.size).map(drop),
            Schema::Duration => self.take(12).map(drop),
            Schema::Enum(enumeration) => self.enum_index(enumeration),
            Schema::Union(union) => self.union_value(union, depth),
            Schema::Record(record) => record.fields.iter().try_for_each(|field| {
                inside(self.value(&field.schema, depth + 1), || field.name.clone())
            }),
            Schema::Array(array) => self.blocks(|walk, index| {
                inside(walk.value(&array.items, depth + 1), || index.to_string())
            }),
            Schema::Map(map) => self.blocks(|walk, _| {
                let key = walk.string()?;
                inside(walk.value(&map.types, depth + 1), || key.to_owned())
            }),
            Schema::Decimal(decimal) => self.decimal(decimal),
            Schema::BigDecimal => self.big_decimal(),
            Schema::Uuid => self.uuid(),
            Schema::Ref { name } => Err(Failure::malformed(format!(
                "the schema names `{name}`, which it does not define"
            ))),
        }
    }

    /// An enum's symbol index, which must name one of its symbols.
    #[inline]
    fn enum_index(&mut self, enumeration: &EnumSchema) -> Walked {
        let index = self.int()?;
        match usize::try_from(index) {
            Ok(i) if i < enumeration.symbols.len() => Ok(()),
            _ => Err(Failure::malformed(format!(
                "enum index {index} is not one of the {} symbols of {}",
                enumeration.symbols.len(),
                enumeration.name
            ))),
        }
    }

    /// A union's branch index, then the value of that branch (at the union's own depth: a union
    /// adds no nesting).
    #[inline]
    fn union_value(&mut self, union: &'a UnionSchema, depth: usize) -> Walked {
        let index = self.long()?;
        match usize::try_from(index)
            .ok()
            .and_then(|i| union.variants().get(i))
        {
            Some(branch) => self.value(branch, depth),
            None => Err(Failure::malformed(format!(
                "union branch {index} is not one of its {} branches",
                union.variants().len()
            ))),
        }
    }

    /// A decimal's unscaled bytes (fixed-size or length-prefixed, as its inner type says), which
    /// must have no more digits than its precision.
    #[inline]
    fn decimal(&mut self, decimal: &DecimalSchema) -> Walked {
        let unscaled = match &*decimal.inner {
            Schema::Fixed(fixed) => self.take(fixed.size)?,
            _ => self.length_prefixed()?,
        };
        check_precision(unscaled, decimal.precision).map_err(|digits| {
            Failure::refused(format!(
                "decimal has {digits}; its precision is {}",
                decimal.precision
            ))
        })
    }

    /// A big-decimal: a length-prefixed big-endian integer, then the scale as a long, all inside
    /// one length-prefixed run of bytes.
    #[inline]
    fn big_decimal(&mut self) -> Walked {
        let mut inner = Walk {
            schema: self.schema,
            bytes: self.length_prefixed()?,
            max_length: self.max_length,
        };
        inner.length_prefixed()?;
        inner.long().map(drop)
    }

    /// A uuid: 16 raw bytes, or text that parses as a uuid.
    #[inline]
    fn uuid(&mut self) -> Walked {
        let bytes = self.length_prefixed()?;
        if bytes.len() == 16 {
            return Ok(());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Failure::malformed(format!("a uuid is not UTF-8: {e}")))?;
        uuid::Uuid::parse_str(text)
            .map(drop)
            .map_err(|e| Failure::malformed(format!("`{text}` is not a uuid: {e}")))
    }

    /// Array or map blocks: a count (negative: followed by the block's byte size), that many
    /// items, until a zero count. `item` is told each item's index.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self, u64) -> Walked) -> Walked {
        let mut index = 0u64;
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
                count = count
                    .checked_neg()
                    .ok_or_else(|| Failure::malformed("a block count out of range"))?;
            }
            match usize::try_from(count) {
                Ok(count) => self.within_limit(count)?,
                Err(_) => return Err(Failure::malformed("a block count out of range")),
            }
            for _ in 0..count {
                item(self, index)?;
                index += 1;
            }
        }
    }

    fn string(&mut self) -> Walked<&'a str> {
        let bytes = self.length_prefixed()?;
        std::str::from_utf8(bytes)
            .map_err(|e| Failure::malformed(format!("a string is not UTF-8: {e}")))
    }

    fn length_prefixed(&mut self) -> Walked<&'a [u8]> {
        let length = self.long()?;
        let length = usize::try_from(length)
            .map_err(|_| Failure::malformed(format!("a negative length ({length})")))?;
        self.within_limit(length)?;
        self.take(length)
    }

    /// Refuses a length or block count past the decoder's allocation limit, in its words.
    fn within_limit(&self, length: usize) -> Walked {
        if length > self.max_length {
            return Err(Failure::malformed(format!(
                "Unable to allocate {length} bytes (maximum allowed: {})",
                self.max_length
            )));
        }
        Ok(())
    }

    fn int(&mut self) -> Walked<i32> {
        let long = self.long()?;
        i32::try_from(long).map_err(|_| Failure::malformed(format!("{long} does not fit an int")))
    }

    /// A zig-zag varint as apache-avro reads it: at most ten bytes.
    fn long(&mut self) -> Walked<i64> {
        let mut rest = self.bytes;
        match read_zigzag(&mut rest) {
            Some(value) => {
                self.bytes = rest;
                Ok(value)
            }
            None if self.bytes.len() >= 10 => {
                Err(Failure::malformed("a varint longer than ten bytes"))
            }
            None => Err(ended()),
        }
    }

    fn take(&mut self, count: usize) -> Walked<&'a [u8]> {
        if self.bytes.len() < count {
            return Err(ended());
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }
}

fn ended() -> Box<Failure> {
    Failure::malformed("the bytes end before the datum does")
}

fn time_of_day(value: i64, per_day: i64, kind: &str) -> Walked {
    match not_a_time_of_day(value, per_day, kind) {
        None => Ok(()),
        Some(reason) => Err(Failure::refused(reason)),
    }
}

#[cfg(test)]
mod tests;
