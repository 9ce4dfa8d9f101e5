//! The message the rules of a version read, and the reference mapping of JSON to CEL values
//! that every JSON message tree is tested against.

use std::fmt;

use cel::common::value::Val;

use super::plan::Plan;
use super::tree::Tree;

/// A JSON value as CEL sees it: integers that fit `int` as `int`, larger ones as `uint`, other
/// numbers as `double`, objects as maps keyed by their member names. The reference that
/// message trees of JSON are tested against.
#[cfg(test)]
pub(crate) fn from_json(value: &serde_json::Value) -> cel::Value {
    use cel::objects::{Key, Map};
    use serde_json::Value as Json;
    use std::collections::HashMap;
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

/// A message as a rule reads it: its tree, borrowed from what validated it or owned. Built once
/// per message and shared by every rule of the version.
pub struct Message<'p> {
    tree: Held<'p>,
    /// A bound on its largest collection known without walking it.
    pub(super) largest_at_most: Option<u64>,
}

enum Held<'p> {
    Borrowed(&'p (dyn Read + 'p)),
    Owned(Box<dyn Read + 'p>),
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("value", &self.tree().to_cel())
            .finish()
    }
}

impl<'p> Message<'p> {
    /// A message a format decoded into a CEL value.
    pub fn from_value(value: cel::Value) -> Self {
        Self::owned(value)
    }

    /// A message tree the rules read in place.
    pub fn borrowed<T: Tree>(tree: &'p T) -> Self {
        Self {
            tree: Held::Borrowed(tree),
            largest_at_most: None,
        }
    }

    /// A message tree built for the rules.
    pub fn owned<T: Tree + 'p>(tree: T) -> Self {
        Self {
            tree: Held::Owned(Box::new(tree)),
            largest_at_most: None,
        }
    }

    /// The same message, known to hold no list or map of more than `elements` elements (JSON
    /// text of n bytes holds none larger than n), so that rules whose cost bound that keeps
    /// within the limit need not count.
    pub fn with_largest_at_most(self, elements: u64) -> Self {
        Self {
            largest_at_most: Some(elements),
            ..self
        }
    }

    pub(super) fn tree(&self) -> &dyn Read {
        match &self.tree {
            Held::Borrowed(tree) => *tree,
            Held::Owned(tree) => tree.as_ref(),
        }
    }
}

/// A message tree of any kind, as [`super::Message`] holds it.
pub(super) trait Read {
    /// The plan's verdict on this message; `None` when the interpreter must give it.
    fn run(&self, plan: &Plan) -> Option<bool>;
    fn to_cel(&self) -> Box<dyn Val + '_>;
    fn largest_collection(&self) -> u64;
}

impl<T: Tree> Read for T {
    fn run(&self, plan: &Plan) -> Option<bool> {
        plan.run(self)
    }

    fn to_cel(&self) -> Box<dyn Val + '_> {
        Tree::to_cel(self)
    }

    fn largest_collection(&self) -> u64 {
        Tree::largest_collection(self)
    }
}
