//! Decoded messages as CEL values.

use std::collections::HashMap;
use std::sync::Arc;

/// A JSON value as CEL sees it: integers that fit `int` as `int`, larger ones as `uint`, other
/// numbers as `double`, objects as maps keyed by their member names.
pub fn from_json(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as Json;
    match value {
        Json::Null => cel::Value::Null,
        Json::Bool(b) => cel::Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => cel::Value::String(Arc::new(s.clone())),
        Json::Array(items) => cel::Value::List(Arc::new(items.iter().map(from_json).collect())),
        Json::Object(members) => {
            let map: HashMap<cel::objects::Key, cel::Value> = members
                .iter()
                .map(|(name, value)| (cel::objects::Key::from(name.clone()), from_json(value)))
                .collect();
            cel::Value::Map(cel::objects::Map::from(map))
        }
    }
}
