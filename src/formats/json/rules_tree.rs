//! JSON messages as data-contract rules read them: the validator's own tree
//! ([`Instance`]), read in place, so that a message is parsed once for its schema and its rules.

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;

use super::instance::{Instance, Members};
use crate::formats::rules::{Fields, Node, Tree};

impl<'p> Tree for Instance<'p> {
    type Map = Members<'p>;

    fn node(&self) -> Node<'_, Self> {
        match self {
            Instance::Null => Node::Null,
            Instance::Bool(b) => Node::Bool(*b),
            Instance::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Node::Int(i),
                (None, Some(u)) => Node::UInt(u),
                (None, None) => Node::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Instance::String(s) => Node::Str(s),
            Instance::Array(items) => Node::List(items),
            Instance::Object(members) => Node::Map(members),
        }
    }

    fn to_cel(&self) -> Box<dyn Val + '_> {
        match self.node() {
            Node::Null | Node::Opaque => Box::new(CelNull),
            Node::Bool(b) => Box::new(CelBool::from(b)),
            Node::Int(i) => Box::new(CelInt::from(i)),
            Node::UInt(u) => Box::new(CelUInt::from(u)),
            Node::Double(d) => Box::new(CelDouble::from(d)),
            Node::Str(s) => Box::new(CelString::from(s)),
            Node::List(items) => Box::new(CelList::from(
                items.iter().map(Tree::to_cel).collect::<Vec<_>>(),
            )),
            Node::Map(members) => {
                let map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = members
                    .entries()
                    .iter()
                    .map(|(name, value)| (CelMapKey::from(name.as_ref()), value.to_cel()))
                    .collect();
                Box::new(CelMap::from(map))
            }
        }
    }

    fn largest_collection(&self) -> u64 {
        match self {
            Instance::Array(items) => items
                .iter()
                .map(Tree::largest_collection)
                .fold(items.len() as u64, u64::max),
            Instance::Object(members) => members
                .entries()
                .iter()
                .map(|(_, value)| value.largest_collection())
                .fold(members.entries().len() as u64, u64::max),
            _ => 0,
        }
    }
}

impl<'p> Fields<Instance<'p>> for Members<'p> {
    fn len(&self) -> usize {
        self.entries().len()
    }

    fn field(&self, name: &str) -> Option<&Instance<'p>> {
        self.get(name)
    }

    fn keys(&self) -> Vec<Node<'_, Instance<'p>>> {
        self.entries()
            .iter()
            .map(|(name, _)| Node::Str(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::rules::{from_json, Message, RuleLimits, RuleSet};

    /// Expressions that exercise every step of a plan, the edges where it hands over to the
    /// interpreter (errors, mixed kinds, overflow, uncovered functions) and the CEL semantics it
    /// must match (cross-kind numbers, error absorption by `&&` and `||`, comprehensions).
    const EXPRESSIONS: &[&str] = &[
        "message.a > 1",
        "message.a >= 1.0",
        "message.a == 1u",
        "message.a == 1.0",
        "message.a != 'x'",
        "message.a < message.b",
        "message.b <= message.a",
        "message.a <= 1",
        "message.a >= 1",
        "message.s < 'b'",
        "message.b > false",
        "message.s.startsWith('ab')",
        "message.s.endsWith('z')",
        "message.s.contains('b')",
        "message.s.matches('^a.*$')",
        "matches(message.s, '[0-9]+')",
        "size(message.s) == 3",
        "message.s.size() > 1",
        "size(message.l) > 1",
        "size(message.m) == 2",
        "has(message.a)",
        "!has(message.m.k)",
        "has(message.l.x)",
        "message.l.all(x, x > 0)",
        "message.l.exists(x, x == 2)",
        "message.l.exists_one(x, x == 2)",
        "message.m.all(k, k.startsWith('k'))",
        "message.m.exists(k, k == 'k2')",
        "[1, 2, 3].all(x, x < message.a)",
        "message.l[0] == 1",
        "message.l[5] == 1",
        "message.l[-1] == 1",
        "message.m['k'] == 1",
        "'k' in message.m",
        "1 in message.m",
        "message.a in [1, 2, 3]",
        "message.s in ['a', 'abc']",
        "message.a in message.l",
        "message.a + 1 > 2",
        "message.a - 1 < 0",
        "message.a * 2 == 4",
        "message.a * 9223372036854775807 > 0",
        "message.a / 0 == 1",
        "message.a / 2 == 0",
        "message.a % 2 == 0",
        "message.a % 0 == 0",
        "message.d / 2.0 > 1.0",
        "message.d / 0.0 > 1.0",
        "message.d % 2.0 > 1.0",
        "message.big + 1u > 0u",
        "message.big - 1u > 0u",
        "-message.a < 0",
        "-message.d < 0.0",
        "message.a > 0 ? message.s == 'abc' : true",
        "message.a > 0 && message.b > 0",
        "message.a > 0 || message.b > 0",
        "message.missing > 0 || true",
        "message.missing > 0 && false",
        "false && message.missing > 0",
        "true || message.missing > 0",
        "message.a",
        "message.s == null",
        "message.n == null",
        "message.n != null",
        "message.l.all(x, message.l.exists_one(y, y == x))",
        "message.items.all(i, i.qty <= 100)",
        "message.items.exists(i, has(i.qty) && i.qty > 5)",
        "message.big > 1",
        "message.big == 18446744073709551615u",
        "message.big < 1.0",
        "message.l.map(x, x * 2).size() > 0",
        "message.l.filter(x, x > 1).size() == 2",
        "message.a + message.d > 0",
        "message.s + 'x' == 'abcx'",
        "int(message.d) > 0",
        "message.l == [1, 2, 3]",
        "message.m == {'k': 1, 'k2': 2}",
        "message.s == message.a",
        "message.n == 0",
        "message.b == true",
        "!message.b",
        "message.l.all(x, x)",
        "message.l.exists(x, x)",
        "message.a > 1 == true",
        "message.d > 1.0 ? message.b : message.s",
        "message.m.k2 > message.m.k",
        "message.items[0].qty == 1",
        "message.s.matches('é')",
        "size(message.n) == 0",
    ];

    /// Messages of every kind of value, and of values where rules expect others.
    const MESSAGES: &[&str] = &[
        r#"{"a": 1, "b": 2, "d": 2.5, "s": "abc", "l": [1, 2, 3], "m": {"k": 1, "k2": 2}, "n": null, "big": 18446744073709551615, "items": [{"qty": 1}]}"#,
        r#"{"a": -5, "b": 0, "d": -0.5, "s": "", "l": [], "m": {}, "n": 1, "big": 0, "items": []}"#,
        r#"{"a": 2.0, "b": 1.5, "d": 3, "s": 5, "l": [2, 2, "x", null], "m": [1], "items": [{"qty": "7"}, {}]}"#,
        r#"{"a": 9223372036854775807, "b": 1, "l": [0, -1], "d": 0.0, "s": "k1", "big": 1}"#,
        r#"{"a": -9223372036854775808, "b": true, "s": "abéz", "l": [[1], {"x": 1}], "m": {"k": null}}"#,
        r#"{"a": 2, "b": false, "d": 1e308, "l": [true, false], "m": {"k2": 1, "k": 0}, "items": [{"qty": 101}, {"qty": 6}]}"#,
        r#"{"a": 0, "l": [true, true], "s": "a\nb", "m": {"k": {"deep": [1]}}}"#,
        r#"{}"#,
        r#"[]"#,
        r#""root""#,
    ];

    /// Failures as (rule, reason) pairs.
    fn verdicts(failures: Vec<crate::formats::rules::Failure<'_>>) -> Vec<(String, String)> {
        failures
            .into_iter()
            .map(|failure| (failure.rule.name.clone(), failure.reason))
            .collect()
    }

    #[test]
    fn plans_on_the_json_tree_and_on_cel_values_agree_with_the_interpreter() {
        let file: String = EXPRESSIONS
            .iter()
            .enumerate()
            .map(|(i, expr)| format!("[[rule]]\nname = \"r{i}\"\nexpr = {expr:?}\n"))
            .collect();
        let rules = RuleSet::compile("t.rules.toml", &file, &RuleLimits::default()).unwrap();
        let unplanned: Vec<&str> = rules
            .rules()
            .iter()
            .filter(|rule| !rule.planned())
            .map(|rule| rule.expr.as_str())
            .collect();
        assert_eq!(
            unplanned,
            [
                "[1, 2, 3].all(x, x < message.a)",
                "message.l.map(x, x * 2).size() > 0",
                "message.l.filter(x, x > 1).size() == 2",
                "int(message.d) > 0",
                "message.l == [1, 2, 3]",
                "message.m == {'k': 1, 'k2': 2}",
            ]
        );
        let limits = RuleLimits::default();
        for text in MESSAGES {
            let instance = Instance::parse(text.as_bytes(), 64).unwrap();
            let value = from_json(&serde_json::from_str(text).unwrap());
            let value = Message::from_value(value);
            let interpreted = verdicts(rules.evaluate_interpreted(&value, &limits));
            let on_values = verdicts(rules.evaluate(&value, &limits));
            let on_tree = verdicts(rules.evaluate(&Message::borrowed(&instance), &limits));
            assert_eq!(on_values, interpreted, "on CEL values of {text}");
            assert_eq!(on_tree, interpreted, "on the JSON tree of {text}");
        }
    }

    #[test]
    fn the_tree_as_cel_values_is_what_the_reference_mapping_gives() {
        let text = r#"{"a": [1, -2, 18446744073709551615, 1.5, "x\u00e9", null, true], "b": {"c": {}}, "a": [[], {}]}"#;
        let instance = Instance::parse(text.as_bytes(), 64).unwrap();
        let reference: cel::Value = from_json(&serde_json::from_str(text).unwrap());
        let reference = Box::<dyn Val>::try_from(reference).unwrap();
        assert!(instance.to_cel().equals(reference.as_ref()));
        let first =
            r#"{"a": [1, -2, 18446744073709551615, 1.5, "x\u00e9", null, true], "b": {"c": {}}}"#;
        assert_eq!(
            Instance::parse(first.as_bytes(), 64)
                .unwrap()
                .largest_collection(),
            7
        );
        assert_eq!(instance.largest_collection(), 2);
    }
}
