//! A decoded message as rules read it, in the form its format decoded it: JSON's borrowing tree
//! for JSON messages, CEL values for Protobuf and Avro. A rule's plan (the `plan` module) reads the
//! tree where it lies, compiled for each kind of tree so that a field read is a direct lookup;
//! only a rule the plan hands over to the interpreter needs the message as the interpreter's own
//! values ([`Tree::to_cel`]), built once per message when one does.

use cel::common::value::Val;
use cel::objects::KeyRef;

/// One value of a message.
pub trait Tree: Sized {
    /// How the tree holds a map.
    type Map: Fields<Self> + ?Sized;

    /// What the value is, as CEL types it.
    fn node(&self) -> Node<'_, Self>;

    /// The value as the CEL interpreter holds it, borrowing from the tree where it can.
    fn to_cel(&self) -> Box<dyn Val + '_>;

    /// The number of elements of the largest list or map anywhere in the value (what a
    /// comprehension iterates; strings are not iterated): what bounds a rule's cost on it.
    fn largest_collection(&self) -> u64;
}

/// A message value as CEL types it: JSON integers that fit `int` are `int`, larger ones `uint`,
/// other numbers `double`.
pub enum Node<'t, T: Tree> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'t str),
    List(&'t [T]),
    Map(&'t T::Map),
    /// A value only the interpreter reads: bytes, a timestamp, a duration.
    Opaque,
}

impl<T: Tree> Clone for Node<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Tree> Copy for Node<'_, T> {}

/// A map's entries (an object's members, a record's fields).
pub trait Fields<T: Tree> {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value under the string key `name`.
    fn field(&self, name: &str) -> Option<&T>;

    /// Every key, in no particular order (what a comprehension over a map iterates).
    fn keys(&self) -> Vec<Node<'_, T>>;
}

impl Tree for cel::Value {
    type Map = cel::objects::Map;

    fn node(&self) -> Node<'_, Self> {
        match self {
            cel::Value::Null => Node::Null,
            cel::Value::Bool(b) => Node::Bool(*b),
            cel::Value::Int(i) => Node::Int(*i),
            cel::Value::UInt(u) => Node::UInt(*u),
            cel::Value::Float(f) => Node::Double(*f),
            cel::Value::String(s) => Node::Str(s),
            cel::Value::List(items) => Node::List(items),
            cel::Value::Map(map) => Node::Map(map),
            _ => Node::Opaque,
        }
    }

    fn to_cel(&self) -> Box<dyn Val + '_> {
        Box::<dyn Val>::try_from(self.clone())
            .expect("every decoded message value is a CEL value the interpreter represents")
    }

    fn largest_collection(&self) -> u64 {
        match self {
            cel::Value::List(items) => items
                .iter()
                .map(Tree::largest_collection)
                .fold(items.len() as u64, u64::max),
            cel::Value::Map(map) => map
                .map
                .values()
                .map(Tree::largest_collection)
                .fold(map.map.len() as u64, u64::max),
            _ => 0,
        }
    }
}

impl Fields<cel::Value> for cel::objects::Map {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn field(&self, name: &str) -> Option<&cel::Value> {
        self.get(&KeyRef::String(name))
    }

    fn keys(&self) -> Vec<Node<'_, cel::Value>> {
        self.map
            .keys()
            .map(|key| match key {
                cel::objects::Key::Int(i) => Node::Int(*i),
                cel::objects::Key::Uint(u) => Node::UInt(*u),
                cel::objects::Key::Bool(b) => Node::Bool(*b),
                cel::objects::Key::String(s) => Node::Str(s),
            })
            .collect()
    }
}
