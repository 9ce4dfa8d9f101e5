//! Avro data as data-contract rules read it: records as maps by field name, with Avro's types —
//! `int` and `long` as `int`, `float` and `double` as `double`, enums as their symbol, a union as
//! its branch's value, `timestamp-*` logical types as CEL timestamps, `date` as an `int` of days,
//! `uuid` as a string, `decimal` as its unscaled bytes.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;

use super::AvroSchema;

impl AvroSchema {
    /// The datum `datum` (binary, without any header) as a CEL value.
    pub(super) fn rules_value_of_datum(&self, datum: &[u8]) -> Result<cel::Value, String> {
        let mut reader = datum;
        let value = apache_avro::from_avro_datum(self.schema(), &mut reader, None)
            .map_err(|e| format!("not a datum of this schema: {e}"))?;
        Ok(value_of(&value))
    }

    /// An accepted JSON message as a CEL value: through the Avro value it stands for, so that
    /// both JSON encodings read alike.
    pub(super) fn rules_value_of_json(
        &self,
        json: &serde_json::Value,
    ) -> Result<cel::Value, String> {
        let value = self
            .avro_value(json, self.schema())
            .resolve(self.schema())
            .map_err(|e| format!("not a value of this schema: {e}"))?;
        Ok(value_of(&value))
    }
}

fn value_of(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Boolean(b) => cel::Value::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => cel::Value::Int(i64::from(*i)),
        Value::Long(i) | Value::TimeMicros(i) => cel::Value::Int(*i),
        Value::Float(f) => cel::Value::Float(f64::from(*f)),
        Value::Double(f) => cel::Value::Float(*f),
        Value::Bytes(b) | Value::Fixed(_, b) => cel::Value::Bytes(Arc::new(b.clone())),
        Value::String(s) | Value::Enum(_, s) => cel::Value::String(Arc::new(s.clone())),
        Value::Uuid(u) => cel::Value::String(Arc::new(u.to_string())),
        Value::Union(_, inner) => value_of(inner),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(value_of).collect())),
        Value::Map(entries) => map(entries.iter().map(|(k, v)| (k.clone(), value_of(v)))),
        Value::Record(fields) => map(fields.iter().map(|(k, v)| (k.clone(), value_of(v)))),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => timestamp(*ms, 1_000_000),
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => timestamp(*us, 1_000),
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => timestamp(*ns, 1),
        Value::Decimal(d) => {
            cel::Value::Bytes(Arc::new(Vec::<u8>::try_from(d).unwrap_or_default()))
        }
        other => cel::Value::String(Arc::new(format!("{other:?}"))),
    }
}

fn map(entries: impl Iterator<Item = (String, cel::Value)>) -> cel::Value {
    let map: HashMap<cel::objects::Key, cel::Value> = entries
        .map(|(k, v)| (cel::objects::Key::from(k), v))
        .collect();
    cel::Value::Map(cel::objects::Map::from(map))
}

/// `count` units of `nanos_per_unit` nanoseconds since the epoch.
fn timestamp(count: i64, nanos_per_unit: i64) -> cel::Value {
    let nanos = i128::from(count) * i128::from(nanos_per_unit);
    let seconds = nanos.div_euclid(1_000_000_000) as i64;
    let rest = nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(seconds, rest) {
        Some(at) => cel::Value::Timestamp(at.fixed_offset()),
        None => cel::Value::Null,
    }
}
