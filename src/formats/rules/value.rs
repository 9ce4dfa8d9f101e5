//! Decoded messages as CEL values.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value as CEL sees it: integers that fit `int` as `int`, larger ones as `uint`, other
/// numbers as `double`, objects as maps keyed by their member names. The reference that
/// [`Message::parse_json`] is tested against.
#[cfg(test)]
pub(super) fn from_json(value: &serde_json::Value) -> cel::Value {
    use cel::objects::{Key, Map};
    use serde_json::Value as Json;
    use std::sync::Arc;
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

/// A message as a rule reads it: its CEL value and the size of its largest collection (what
/// bounds a rule's cost on it). Built once per message and shared by every rule of the version.
pub struct Message<'p> {
    pub(super) value: Box<dyn Val + 'p>,
    pub(super) largest: u64,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("value", &self.value)
            .field("largest", &self.largest)
            .finish()
    }
}

impl<'p> Message<'p> {
    /// A message a format decoded into a CEL value.
    pub fn from_value(value: cel::Value) -> Self {
        let largest = super::bounds::largest_collection(&value);
        let value = Box::<dyn Val>::try_from(value)
            .expect("every decoded message value is a CEL value the interpreter represents");
        Self { value, largest }
    }

    /// JSON text as [`from_json`] maps it, parsed straight into the interpreter's values,
    /// borrowing every string and member name written without escapes from `text`.
    pub fn parse_json(text: &'p [u8]) -> Result<Self, serde_json::Error> {
        let largest = Cell::new(0);
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let value = Parse { largest: &largest }.deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(Self {
            value,
            largest: largest.get(),
        })
    }
}

/// One JSON value, as a seed that notes the largest collection it meets.
#[derive(Clone, Copy)]
struct Parse<'c> {
    largest: &'c Cell<u64>,
}

impl Parse<'_> {
    fn note(&self, size: usize) {
        self.largest.set(self.largest.get().max(size as u64));
    }
}

impl<'de> DeserializeSeed<'de> for Parse<'_> {
    type Value = Box<dyn Val + 'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Parse<'_> {
    type Value = Box<dyn Val + 'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Box::new(CelNull))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Box::new(CelBool::from(b)))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Box::new(CelInt::from(i)))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => Box::new(CelInt::from(i)),
            Err(_) => Box::new(CelUInt::from(u)),
        })
    }

    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Box::new(CelDouble::from(f)))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Box::new(CelString::from(s.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        self.note(items.len());
        Ok(Box::new(CelList::from(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        let mut map = HashMap::with_capacity(members.size_hint().unwrap_or(0));
        while let Some(name) = members.next_key::<Cow<'de, str>>()? {
            let key = match name {
                Cow::Borrowed(name) => CelMapKey::from(name),
                Cow::Owned(name) => CelMapKey::from(name),
            };
            map.insert(key, members.next_value_seed(self)?);
        }
        self.note(map.len());
        Ok(Box::new(CelMap::from(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_straight_into_cel_values_agrees_with_converting_a_json_value() {
        let text =
            r#"{"a": [1, -2, 18446744073709551615, 1.5, "x\u00e9", null, true], "b": {"c": {}}}"#;
        let through_json = Message::from_value(from_json(&serde_json::from_str(text).unwrap()));
        let parsed = Message::parse_json(text.as_bytes()).unwrap();
        assert!(parsed.value.equals(through_json.value.as_ref()));
        assert_eq!((parsed.largest, through_json.largest), (7, 7));
        assert!(Message::parse_json(b"{\"a\": ").is_err());
        assert!(Message::parse_json(b"{} x").is_err());
    }
}
