//! The message as the validator reads it: a JSON tree parsed by `serde_json` that borrows its
//! strings and member names from the payload, handed to `jsonschema` through its representation
//! traits ([`jsonschema::json::Json`]).
//!
//! Judging a message through `serde_json::Value` allocates a `String` per string and member name
//! and a `BTreeMap` node per few members, then frees them all: most of the cost of validating a
//! small message. Here an unescaped string is a slice of the payload, an object is one vector of
//! members, and nothing else is allocated. Meaning is `Value`'s exactly: numbers are
//! `serde_json::Number`s parsed by the same deserializer, and when a name repeats in an object the
//! last member wins. A `Value` is built only to explain a failure ([`Node::to_value`]).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use jsonschema::json::{cmp, Array, Json, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Objects with more members than this are looked up through a name-ordered index; smaller ones
/// are scanned, which is quicker than any index at their size.
const SCANNED_MEMBERS: usize = 16;

/// One JSON value of a message, borrowing from the payload where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Instance<'p> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'p, str>),
    Array(Vec<Instance<'p>>),
    Object(Members<'p>),
}

/// An object's members in the order they were written, each name once.
#[derive(Debug, Clone, PartialEq)]
pub struct Members<'p> {
    entries: Vec<(Cow<'p, str>, Instance<'p>)>,
    /// Positions in `entries` ordered by name; empty for objects of at most [`SCANNED_MEMBERS`].
    by_name: Vec<u32>,
}

impl<'p> Instance<'p> {
    /// Parses JSON text nested at most `max_depth` arrays and objects deep, borrowing from it.
    /// Text nested deeper costs no more than `max_depth` levels of parsing to refuse.
    pub fn parse(text: &'p [u8], max_depth: usize) -> Result<Self, ParseError> {
        let too_deep = Cell::new(false);
        let seed = Nested {
            depth_left: max_depth,
            too_deep: &too_deep,
        };
        // One UTF-8 check of the whole text instead of one per string; text that fails it is
        // parsed as bytes, for serde_json's account of where and why.
        let parsed = match std::str::from_utf8(text) {
            Ok(text) => parse_whole(seed, &mut serde_json::Deserializer::from_str(text)),
            Err(_) => parse_whole(seed, &mut serde_json::Deserializer::from_slice(text)),
        };
        parsed.map_err(|e| match too_deep.get() {
            true => ParseError::TooDeep,
            false => ParseError::NotJson(e),
        })
    }

    /// The same value as a `serde_json::Value`, for error reports.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.as_ref().to_owned()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Object(members) => Value::Object(
                members
                    .entries
                    .iter()
                    .map(|(name, value)| (name.as_ref().to_owned(), value.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }

    /// JSON equality with `expected` (numbers compare by value, `1` equals `1.0`), as `const`
    /// and `enum` need it, without building a `Value`.
    fn equals(&self, expected: &Value) -> bool {
        match (self, expected) {
            (Self::Null, Value::Null) => true,
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Number(a), Value::Number(b)) => cmp::equal_numbers(a, b),
            (Self::String(a), Value::String(b)) => a == b,
            (Self::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.equals(b))
            }
            (Self::Object(a), Value::Object(b)) => {
                a.entries.len() == b.len()
                    && a.entries.iter().all(|(name, value)| {
                        b.get(name.as_ref())
                            .is_some_and(|expected| value.equals(expected))
                    })
            }
            _ => false,
        }
    }
}

impl<'p> Members<'p> {
    /// Keeps the last member of each name, in the position of its first, as a map would; indexes
    /// objects too large to scan.
    fn from_entries(mut entries: Vec<(Cow<'p, str>, Instance<'p>)>) -> Self {
        if entries.len() <= SCANNED_MEMBERS {
            let mut i = 1;
            while i < entries.len() {
                let name = &entries[i].0;
                if let Some(first) = entries[..i].iter().position(|(n, _)| n == name) {
                    let (_, later) = entries.remove(i);
                    entries[first].1 = later;
                } else {
                    i += 1;
                }
            }
            return Self {
                entries,
                by_name: Vec::new(),
            };
        }
        let mut by_name = Self::order_by_name(&entries);
        let repeated = by_name
            .windows(2)
            .any(|pair| entries[pair[0] as usize].0 == entries[pair[1] as usize].0);
        if repeated {
            entries = Self::keep_last_of_each_name(entries);
            by_name = Self::order_by_name(&entries);
        }
        Self { entries, by_name }
    }

    /// The members, each name once, in the order they were written.
    pub(super) fn entries(&self) -> &[(Cow<'p, str>, Instance<'p>)] {
        &self.entries
    }

    /// Positions of `entries` ordered by name.
    fn order_by_name(entries: &[(Cow<'p, str>, Instance<'p>)]) -> Vec<u32> {
        let mut by_name: Vec<u32> = (0..entries.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| entries[a as usize].0.cmp(&entries[b as usize].0));
        by_name
    }

    /// The rare path of [`Self::from_entries`]: a large object that repeats a name.
    fn keep_last_of_each_name(
        entries: Vec<(Cow<'p, str>, Instance<'p>)>,
    ) -> Vec<(Cow<'p, str>, Instance<'p>)> {
        let mut kept: Vec<(Cow<'p, str>, Instance<'p>)> = Vec::with_capacity(entries.len());
        let mut position_of: HashMap<Cow<'p, str>, usize> = HashMap::new();
        for (name, value) in entries {
            match position_of.get(&name) {
                Some(&position) => kept[position].1 = value,
                None => {
                    position_of.insert(name.clone(), kept.len());
                    kept.push((name, value));
                }
            }
        }
        kept
    }

    /// The value of member `name`.
    pub(super) fn get(&self, name: &str) -> Option<&Instance<'p>> {
        if self.by_name.is_empty() {
            return self
                .entries
                .iter()
                .find(|(n, _)| same_name(n.as_bytes(), name.as_bytes()))
                .map(|(_, value)| value);
        }
        self.by_name
            .binary_search_by(|&i| self.entries[i as usize].0.as_ref().cmp(name))
            .ok()
            .map(|i| &self.entries[self.by_name[i] as usize].1)
    }
}

/// Whether two member names are the same, compared eight bytes at a time: names are mostly a
/// few bytes long, shorter than a call into the C library's `memcmp` is worth.
#[inline]
fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |chunk: &[u8]| u64::from_ne_bytes(chunk.try_into().expect("eight bytes"));
    (&mut a).zip(&mut b).all(|(x, y)| word(x) == word(y))
        && a.remainder().iter().zip(b.remainder()).all(|(x, y)| x == y)
}

/// Why a payload is not a message tree.
#[derive(Debug)]
pub enum ParseError {
    /// Nested deeper than allowed.
    TooDeep,
    NotJson(serde_json::Error),
}

/// One JSON text, with nothing but whitespace after it.
fn parse_whole<'de, R: serde_json::de::Read<'de>>(
    seed: Nested<'_>,
    deserializer: &mut serde_json::Deserializer<R>,
) -> serde_json::Result<Instance<'de>> {
    let instance = seed.deserialize(&mut *deserializer)?;
    deserializer.end()?;
    Ok(instance)
}

/// Deserializes a value with `depth_left` more levels of arrays and objects allowed, flagging
/// `too_deep` when the text nests further.
#[derive(Clone, Copy)]
struct Nested<'a> {
    depth_left: usize,
    too_deep: &'a Cell<bool>,
}

impl Nested<'_> {
    /// The seed for the members or elements of a container this seed is about to read.
    fn inside<E: de::Error>(self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Self { depth_left, ..self }),
            None => {
                self.too_deep.set(true);
                Err(E::custom("nested too deep"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Nested<'_> {
    type Value = Instance<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested<'_> {
    type Value = Instance<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Instance::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Instance::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Instance::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // As `Value` does: a float JSON cannot write is null.
        Ok(Number::from_f64(n).map_or(Instance::Null, Instance::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Instance::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Instance::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Instance::String(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Instance::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Instance::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let inside = self.inside()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(inside)? {
            items.push(item);
        }
        Ok(Instance::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let inside = self.inside()?;
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(MemberName(name)) = map.next_key()? {
            entries.push((name, map.next_value_seed(inside)?));
        }
        Ok(Instance::Object(Members::from_entries(entries)))
    }
}

/// A member name, borrowed from the payload when it has no escapes.
struct MemberName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(s)))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The representation marker `jsonschema` validators are built for.
pub struct Borrowed;

impl Json for Borrowed {
    type Node<'a> = &'a Instance<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = ();

    // A lookup in a small object is a scan itself, so a members pass beats lookups early.
    const KEYS_PER_LOOKUP: usize = 4;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(Self::Node<'_>) -> T) -> T {
        f(&Instance::String(Cow::Borrowed(string)))
    }
}

impl<'a> Node<'a, Borrowed> for &'a Instance<'a> {
    type Object = &'a Members<'a>;
    type Array = &'a [Instance<'a>];
    type Number = &'a Number;

    fn as_object(&self) -> Option<Self::Object> {
        match self {
            Instance::Object(members) => Some(members),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<Self::Array> {
        match self {
            Instance::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self {
            Instance::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<Self::Number> {
        match self {
            Instance::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self {
            Instance::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Instance::Null)
    }

    fn json_type(&self) -> JsonType {
        match self {
            Instance::Null => JsonType::Null,
            Instance::Bool(_) => JsonType::Boolean,
            Instance::Number(_) => JsonType::Number,
            Instance::String(_) => JsonType::String,
            Instance::Array(_) => JsonType::Array,
            Instance::Object(_) => JsonType::Object,
        }
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        let Instance::String(s) = self else {
            return None;
        };
        // A code point takes one to four bytes, so the count lies in `ceil(bytes / 4)..=bytes`.
        let bytes = s.len() as u64;
        let fewest = bytes.div_ceil(4);
        if bytes < min || fewest > max {
            return Some(false);
        }
        if min <= fewest && bytes <= max {
            return Some(true);
        }
        Some((min..=max).contains(&(s.chars().count() as u64)))
    }

    fn equals_value(&self, expected: &Value) -> bool {
        self.equals(expected)
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(Instance::to_value(self))
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Instance<'_>>(*self) as usize
        ))
    }
}

/// Member names and values in written order.
pub struct MembersIter<'a>(std::slice::Iter<'a, (Cow<'a, str>, Instance<'a>)>);

impl<'a> Iterator for MembersIter<'a> {
    type Item = (&'a str, &'a Instance<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, value)| (name.as_ref(), value))
    }
}

impl<'a> Object<'a, Borrowed> for &'a Members<'a> {
    type Node = &'a Instance<'a>;
    type MemberName = &'a str;
    type MembersIter = MembersIter<'a>;

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, key: &Box<str>) -> Option<Self::Node> {
        Members::get(self, key)
    }

    fn members(&self) -> MembersIter<'a> {
        MembersIter(self.entries.iter())
    }
}

impl<'a> Array<'a, Borrowed> for &'a [Instance<'a>] {
    type Node = &'a Instance<'a>;
    type ElementsIter = std::slice::Iter<'a, Instance<'a>>;

    fn len(&self) -> usize {
        <[Instance<'a>]>::len(self)
    }

    fn elements(&self) -> Self::ElementsIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Instance<'_> {
        Instance::parse(text.as_bytes(), 64).unwrap()
    }

    #[test]
    fn meets_the_validators_contract() {
        let text = jsonschema::json::conformance::document().to_string();
        let root = parse(&text);
        jsonschema::json::conformance::assert_conformance::<Borrowed>(&&root);
    }

    #[test]
    fn unescaped_strings_and_names_borrow_from_the_payload() {
        let root = parse(r#"{"plain":"text","esc\"aped":"a\nb"}"#);
        let Instance::Object(members) = &root else {
            panic!("object")
        };
        assert!(matches!(members.entries[0].0, Cow::Borrowed("plain")));
        assert!(matches!(
            members.entries[0].1,
            Instance::String(Cow::Borrowed("text"))
        ));
        assert!(matches!(&members.entries[1].0, Cow::Owned(n) if n == "esc\"aped"));
        assert!(matches!(&members.entries[1].1, Instance::String(Cow::Owned(s)) if s == "a\nb"));
    }

    /// Whatever the text, the tree means what `serde_json::Value` makes of it: repeated names
    /// (last wins), large objects, numbers of every kind, escapes.
    #[test]
    fn reads_every_text_as_value_does() {
        let many: String = (0..40)
            .map(|i| format!("\"k{}\":{i}", i % 25))
            .collect::<Vec<_>>()
            .join(",");
        for text in [
            r#"{"a":1,"b":2,"a":3}"#.to_owned(),
            r#"{"a":{"x":1},"a":{"y":2},"b":[1,2.5,-3,1e400]}"#.to_owned(),
            format!("{{{many}}}"),
            r#"[18446744073709551615,-9223372036854775808,0.1,1E2,-0.0]"#.to_owned(),
            r#""\u00e9\ud83e\udd80\t""#.to_owned(),
            "null".to_owned(),
        ] {
            let expected: serde_json::Result<Value> = serde_json::from_str(&text);
            match (Instance::parse(text.as_bytes(), 64), expected) {
                (Ok(instance), Ok(expected)) => assert_eq!(instance.to_value(), expected, "{text}"),
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!("{text}: {ours:?} vs {theirs:?}"),
            }
        }
    }

    /// Depth counts arrays and objects, as `limits.max_json_depth` means it; brackets in strings
    /// do not count, and hostile nesting is refused without parsing it all.
    #[test]
    fn nesting_past_the_limit_is_too_deep_and_anything_else_malformed_is_not_json() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert!(Instance::parse(nested(3).as_bytes(), 3).is_ok());
        assert!(matches!(
            Instance::parse(nested(4).as_bytes(), 3),
            Err(ParseError::TooDeep)
        ));
        assert!(Instance::parse(br#"{"a":{"b":"[[[[{{{{"}}"#, 2).is_ok());
        assert!(matches!(
            Instance::parse(br#"{"a":{"b":{}}}"#, 2),
            Err(ParseError::TooDeep)
        ));
        let hostile = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
        assert!(matches!(
            Instance::parse(hostile.as_bytes(), 64),
            Err(ParseError::TooDeep)
        ));
        for malformed in [&b"{nope"[..], b"[1] [2]", b"\"\xff\"", b""] {
            assert!(
                matches!(Instance::parse(malformed, 64), Err(ParseError::NotJson(_))),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn names_compare_as_strings_whatever_their_length() {
        let names = [
            "",
            "a",
            "qty",
            "order_i",
            "order_id",
            "order_ids",
            "a_name_of_seventeen",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
            }
            let mut changed = a.as_bytes().to_vec();
            if let Some(last) = changed.last_mut() {
                *last ^= 1;
                assert!(!same_name(a.as_bytes(), &changed), "{a:?}");
            }
        }
    }

    #[test]
    fn large_objects_are_looked_up_by_name_and_keep_the_last_of_a_repeated_name() {
        let text = (0..40)
            .map(|i| format!("\"k{}\":{i}", i % 30))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!("{{{text}}}");
        let root = parse(&text);
        let Instance::Object(members) = &root else {
            panic!("object")
        };
        assert_eq!(members.entries.len(), 30);
        assert_eq!(members.get("k3"), Some(&Instance::Number(33.into())));
        assert_eq!(members.get("k29"), Some(&Instance::Number(29.into())));
        assert_eq!(members.get("k30"), None);
        // Written order is kept: k0 first, k29 last.
        assert_eq!(members.entries[0].0, "k0");
        assert_eq!(members.entries[29].0, "k29");
    }

    #[test]
    fn equality_with_values_is_by_json_meaning() {
        let root = parse(r#"{"a":[1,{"b":1.0}],"c":"x"}"#);
        assert!(root.equals(&json!({"c":"x","a":[1.0,{"b":1}]})));
        assert!(!root.equals(&json!({"c":"x","a":[1,{"b":2}]})));
        assert!(!root.equals(&json!({"c":"x"})));
        assert!(!parse("true").equals(&json!(1)));
    }
}
