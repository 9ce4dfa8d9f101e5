//! Protobuf messages as data-contract rules read them: fields by their proto names with their
//! proto types — signed integers and enums as `int`, unsigned as `uint`, `bytes` as bytes, maps
//! and repeated fields as maps and lists, `google.protobuf.Timestamp` and `Duration` as CEL
//! timestamps and durations, wrapper types as the value they wrap. A field with presence (a
//! message, a proto2 or proto3 `optional` field, a oneof member) appears only when set, so `has()`
//! tells whether it was sent; other fields read their default when unset, as in Protobuf.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value};

/// `message` as a CEL map.
pub fn message_value(message: &DynamicMessage) -> cel::Value {
    let descriptor = message.descriptor();
    match descriptor.full_name() {
        "google.protobuf.Timestamp" => return timestamp(message),
        "google.protobuf.Duration" => return duration(message),
        name if is_wrapper(name) => {
            if let Some(field) = descriptor.get_field_by_name("value") {
                return value(&message.get_field(&field));
            }
        }
        _ => {}
    }
    let fields: HashMap<cel::objects::Key, cel::Value> = descriptor
        .fields()
        .filter(|field| !field.supports_presence() || message.has_field(field))
        .map(|field| {
            let name = cel::objects::Key::from(field.name().to_owned());
            (name, value(&message.get_field(&field)))
        })
        .collect();
    cel::Value::Map(cel::objects::Map::from(fields))
}

fn value(value: &Value) -> cel::Value {
    match value {
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::I32(i) => cel::Value::Int(i64::from(*i)),
        Value::I64(i) => cel::Value::Int(*i),
        Value::U32(u) => cel::Value::UInt(u64::from(*u)),
        Value::U64(u) => cel::Value::UInt(*u),
        Value::F32(f) => cel::Value::Float(f64::from(*f)),
        Value::F64(f) => cel::Value::Float(*f),
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Bytes(b) => cel::Value::Bytes(Arc::new(b.to_vec())),
        Value::EnumNumber(n) => cel::Value::Int(i64::from(*n)),
        Value::Message(m) => message_value(m),
        Value::List(items) => cel::Value::List(Arc::new(items.iter().map(self::value).collect())),
        Value::Map(entries) => {
            let map: HashMap<cel::objects::Key, cel::Value> = entries
                .iter()
                .map(|(k, v)| (key(k), self::value(v)))
                .collect();
            cel::Value::Map(cel::objects::Map::from(map))
        }
    }
}

fn key(key: &MapKey) -> cel::objects::Key {
    use cel::objects::Key;
    match key {
        MapKey::Bool(b) => Key::Bool(*b),
        MapKey::I32(i) => Key::Int(i64::from(*i)),
        MapKey::I64(i) => Key::Int(*i),
        MapKey::U32(u) => Key::Uint(u64::from(*u)),
        MapKey::U64(u) => Key::Uint(*u),
        MapKey::String(s) => Key::String(Arc::new(s.clone())),
    }
}

fn is_wrapper(name: &str) -> bool {
    matches!(
        name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// The `seconds` and `nanos` of a `Timestamp` or `Duration`.
fn seconds_and_nanos(message: &DynamicMessage) -> (i64, i32) {
    let read = |name: &str| {
        message
            .descriptor()
            .get_field_by_name(name)
            .map(|field| message.get_field(&field).into_owned())
    };
    let seconds = read("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
    let nanos = read("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
    (seconds, nanos)
}

fn timestamp(message: &DynamicMessage) -> cel::Value {
    let (seconds, nanos) = seconds_and_nanos(message);
    match chrono::DateTime::from_timestamp(seconds, nanos.max(0) as u32) {
        Some(at) => cel::Value::Timestamp(at.fixed_offset()),
        None => cel::Value::Null,
    }
}

fn duration(message: &DynamicMessage) -> cel::Value {
    let (seconds, nanos) = seconds_and_nanos(message);
    let duration =
        chrono::Duration::seconds(seconds) + chrono::Duration::nanoseconds(i64::from(nanos));
    cel::Value::Duration(duration)
}
