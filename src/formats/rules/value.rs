//! Decoded messages as CEL values.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cel::objects::{Key, Map};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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
            let map: HashMap<Key, cel::Value> = members
                .iter()
                .map(|(name, value)| (Key::from(name.clone()), from_json(value)))
                .collect();
            cel::Value::Map(Map::from(map))
        }
    }
}

/// JSON text as CEL sees it (as [`from_json`] maps it), parsed straight into CEL values.
pub fn parse_json(text: &[u8]) -> Result<cel::Value, serde_json::Error> {
    serde_json::from_slice::<CelJson>(text).map(|parsed| parsed.0)
}

struct CelJson(cel::Value);

impl<'de> Deserialize<'de> for CelJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CelVisitor).map(CelJson)
    }
}

struct CelVisitor;

impl<'de> Visitor<'de> for CelVisitor {
    type Value = cel::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<cel::Value, E> {
        Ok(cel::Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<cel::Value, E> {
        Ok(cel::Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<cel::Value, E> {
        Ok(cel::Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<cel::Value, E> {
        Ok(i64::try_from(u).map_or(cel::Value::UInt(u), cel::Value::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<cel::Value, E> {
        Ok(cel::Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<cel::Value, E> {
        Ok(cel::Value::String(Arc::new(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<cel::Value, E> {
        Ok(cel::Value::String(Arc::new(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<cel::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(CelJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(cel::Value::List(Arc::new(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<cel::Value, A::Error> {
        let mut map = HashMap::with_capacity(members.size_hint().unwrap_or(0));
        while let Some((name, CelJson(value))) = members.next_entry::<String, CelJson>()? {
            map.insert(Key::from(name), value);
        }
        Ok(cel::Value::Map(Map::from(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_straight_into_cel_values_agrees_with_converting_a_json_value() {
        let text =
            r#"{"a": [1, -2, 18446744073709551615, 1.5, "x\u00e9", null, true], "b": {"c": {}}}"#;
        let through_json = from_json(&serde_json::from_str(text).unwrap());
        assert_eq!(parse_json(text.as_bytes()).unwrap(), through_json);
        assert!(parse_json(b"{\"a\": ").is_err());
    }
}
