//! Running a plan on one message tree, compiled for each kind of tree: every value a node of the
//! message or a constant of the plan. A value the plan cannot know is [`Node::Opaque`] (an opaque
//! value of the message, or one an operation cannot give: a missing field, an overflow); a test
//! that meets one [`Defer`]s to the interpreter. Values are never wrapped in a `Result`, so that
//! they stay in registers rather than being copied through memory at each step.

use std::cmp::Ordering;

use super::{Arith, Comparison, Const, Fold, Quantifier, Quantify, Step, TextTest, SLOTS};
use crate::formats::rules::tree::{Fields, Node, Tree};

/// The plan cannot answer this message: the interpreter does.
struct Defer;

/// The verdict of `root` on `message`; `None` when the interpreter must give it.
pub(super) fn run<T: Tree>(root: &Step, message: &T) -> Option<bool> {
    let mut slots = [Node::Null; SLOTS];
    slots[0] = message.node();
    root.test(&mut slots).ok()
}

/// The value under `field` of `map`, when it is a map that has one.
#[inline(always)]
fn field<'a, T: Tree>(map: Node<'a, T>, field: &str) -> Node<'a, T> {
    match map {
        Node::Map(fields) => fields.field(field).map_or(Node::Opaque, Tree::node),
        _ => Node::Opaque,
    }
}

fn of_const<T: Tree>(constant: &Const) -> Node<'_, T> {
    match constant {
        Const::Null => Node::Null,
        Const::Bool(b) => Node::Bool(*b),
        Const::Int(i) => Node::Int(*i),
        Const::UInt(u) => Node::UInt(*u),
        Const::Double(d) => Node::Double(*d),
        Const::Str(s) => Node::Str(s),
    }
}

fn bool<T: Tree>(value: Node<'_, T>) -> Result<bool, Defer> {
    match value {
        Node::Bool(b) => Ok(b),
        _ => Err(Defer),
    }
}

/// The value of `step` as an operand: constants, variables and a variable's fields (most
/// operands) without a call of their own.
#[inline(always)]
fn value_of<'a, T: Tree>(step: &'a Step, slots: &mut [Node<'a, T>; SLOTS]) -> Node<'a, T> {
    match step {
        Step::Const(constant) => of_const(constant),
        Step::Var(slot) => slots[*slot],
        Step::Field(slot, name) => field(slots[*slot], name),
        _ => step.eval(slots),
    }
}

impl Step {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Node<'a, T> {
        match self {
            Step::Const(constant) => of_const(constant),
            Step::Var(slot) => slots[*slot],
            Step::Field(..) => value_of(self, slots),
            Step::Select(operand, name) => field(value_of(operand, slots), name),
            Step::Index(pair) => index(value_of(&pair[0], slots), value_of(&pair[1], slots)),
            Step::Negate(operand) => match value_of(operand, slots) {
                Node::Int(i) => i.checked_neg().map_or(Node::Opaque, Node::Int),
                Node::Double(d) => Node::Double(-d),
                _ => Node::Opaque,
            },
            Step::Cond(parts) => match parts[0].test(slots) {
                Ok(true) => value_of(&parts[1], slots),
                Ok(false) => value_of(&parts[2], slots),
                Err(Defer) => Node::Opaque,
            },
            Step::Arith(op, pair) => {
                arith(*op, value_of(&pair[0], slots), value_of(&pair[1], slots))
            }
            Step::Size(operand) => size(value_of(operand, slots)),
            Step::Fold(fold) => fold.eval(slots),
            Step::Has(..)
            | Step::Not(_)
            | Step::And(_)
            | Step::Or(_)
            | Step::Compare(..)
            | Step::In(_)
            | Step::InList(..)
            | Step::Text(..)
            | Step::Matches(..)
            | Step::NotStrictlyFalse(_)
            | Step::Quantify(_) => self.test(slots).map_or(Node::Opaque, Node::Bool),
        }
    }

    /// The step's value where a bool is wanted (and the value of the steps that give one), kept
    /// out of memory: [`Defer`] when it is not a bool.
    fn test<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Result<bool, Defer> {
        match self {
            Step::Has(operand, field) => match value_of(operand, slots) {
                Node::Map(fields) => Ok(fields.field(field).is_some()),
                _ => Err(Defer),
            },
            Step::Not(operand) => Ok(!operand.test(slots)?),
            Step::And(pair) => Ok(pair[0].test(slots)? && pair[1].test(slots)?),
            Step::Or(pair) => Ok(pair[0].test(slots)? || pair[1].test(slots)?),
            Step::Compare(comparison, pair) => {
                let (a, b) = (value_of(&pair[0], slots), value_of(&pair[1], slots));
                compare(*comparison, a, b)
            }
            Step::In(pair) => contains(value_of(&pair[1], slots), value_of(&pair[0], slots)),
            Step::InList(item, list) => {
                let item = value_of(item, slots);
                for constant in list {
                    if equal(item, of_const(constant))? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Step::Text(test, pair) => {
                match (value_of(&pair[0], slots), value_of(&pair[1], slots)) {
                    (Node::Str(text), Node::Str(part)) => Ok(match test {
                        TextTest::StartsWith => text.starts_with(part),
                        TextTest::EndsWith => text.ends_with(part),
                        TextTest::Contains => text.contains(part),
                    }),
                    _ => Err(Defer),
                }
            }
            Step::Matches(subject, pattern) => match value_of(subject, slots) {
                Node::Str(text) => Ok(pattern.is_match(text)),
                _ => Err(Defer),
            },
            // `@not_strictly_false`: anything but `false` — yet an error is the interpreter's.
            Step::NotStrictlyFalse(operand) => match value_of(operand, slots) {
                Node::Bool(b) => Ok(b),
                Node::Opaque => Err(Defer),
                _ => Ok(true),
            },
            Step::Quantify(quantify) => quantify.test(slots),
            _ => bool(self.eval(slots)),
        }
    }
}

impl Fold {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Node<'a, T> {
        slots[self.accu] = self.init.eval(slots);
        let range = self.range.eval(slots);
        let folded = each(range, |item| {
            if !self.cond.test(slots)? {
                return Ok(false);
            }
            slots[self.iter] = item;
            slots[self.accu] = self.step.eval(slots);
            Ok(true)
        });
        match folded {
            Ok(()) => self.result.eval(slots),
            Err(Defer) => Node::Opaque,
        }
    }
}

impl Quantify {
    fn test<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Result<bool, Defer> {
        let range = self.range.eval(slots);
        let (mut answer, mut count) = (None, 0u64);
        each(range, |item| {
            slots[self.iter] = item;
            let holds = self.predicate.test(slots)?;
            match (self.kind, holds) {
                (Quantifier::All, false) => answer = Some(false),
                (Quantifier::Exists, true) => answer = Some(true),
                (Quantifier::ExistsOne, true) => count += 1,
                _ => {}
            }
            Ok(answer.is_none())
        })?;
        Ok(answer.unwrap_or(match self.kind {
            Quantifier::All => true,
            Quantifier::Exists => false,
            Quantifier::ExistsOne => count == 1,
        }))
    }
}

/// Calls `visit` with each element of `range` (a map's keys) until it answers `false`.
fn each<'a, T: Tree>(
    range: Node<'a, T>,
    mut visit: impl FnMut(Node<'a, T>) -> Result<bool, Defer>,
) -> Result<(), Defer> {
    match range {
        Node::List(items) => {
            for item in items {
                if !visit(item.node())? {
                    break;
                }
            }
        }
        Node::Map(fields) => {
            for key in fields.keys() {
                if !visit(key)? {
                    break;
                }
            }
        }
        _ => return Err(Defer),
    }
    Ok(())
}

fn index<'a, T: Tree>(container: Node<'a, T>, key: Node<'a, T>) -> Node<'a, T> {
    match (container, key) {
        (Node::List(items), Node::Int(i)) => usize::try_from(i)
            .ok()
            .and_then(|i| items.get(i))
            .map_or(Node::Opaque, Tree::node),
        (Node::Map(_), Node::Str(name)) => field(container, name),
        _ => Node::Opaque,
    }
}

/// `item in container`.
fn contains<'a, T: Tree>(container: Node<'a, T>, item: Node<'a, T>) -> Result<bool, Defer> {
    let found = match container {
        Node::List(items) => {
            let mut found = false;
            for element in items {
                if equal(item, element.node())? {
                    found = true;
                    break;
                }
            }
            found
        }
        Node::Map(fields) => match item {
            Node::Str(name) => fields.field(name).is_some(),
            _ => return Err(Defer),
        },
        _ => return Err(Defer),
    };
    Ok(found)
}

fn size<T: Tree>(value: Node<'_, T>) -> Node<'_, T> {
    let size = match value {
        Node::Str(text) => text.chars().count(),
        Node::List(items) => items.len(),
        Node::Map(fields) => fields.len(),
        _ => return Node::Opaque,
    };
    i64::try_from(size).map_or(Node::Opaque, Node::Int)
}

#[inline]
fn compare<T: Tree>(comparison: Comparison, a: Node<'_, T>, b: Node<'_, T>) -> Result<bool, Defer> {
    let ordering = match comparison {
        Comparison::Eq => return equal(a, b),
        Comparison::Ne => return equal(a, b).map(|equal| !equal),
        _ => match (a, b) {
            (Node::Str(a), Node::Str(b)) => Some(a.cmp(b)),
            (Node::Bool(a), Node::Bool(b)) => Some(a.cmp(&b)),
            _ => numeric_order(a, b).ok_or(Defer)?,
        },
    };
    let ordering = ordering.ok_or(Defer)?;
    Ok(match comparison {
        Comparison::Lt => ordering == Ordering::Less,
        Comparison::Le => ordering != Ordering::Greater,
        Comparison::Gt => ordering == Ordering::Greater,
        Comparison::Ge => ordering != Ordering::Less,
        Comparison::Eq | Comparison::Ne => unreachable!("answered above"),
    })
}

/// CEL equality of scalars: numbers by value across `int`, `uint` and `double`; values of other
/// differing kinds are unequal. Lists and maps are the interpreter's to compare.
fn equal<T: Tree>(a: Node<'_, T>, b: Node<'_, T>) -> Result<bool, Defer> {
    Ok(match (a, b) {
        (Node::List(_) | Node::Map(_) | Node::Opaque, _)
        | (_, Node::List(_) | Node::Map(_) | Node::Opaque) => return Err(Defer),
        (Node::Null, Node::Null) => true,
        (Node::Bool(a), Node::Bool(b)) => a == b,
        (Node::Str(a), Node::Str(b)) => a == b,
        _ => match numeric_order(a, b) {
            Some(ordering) => ordering == Some(Ordering::Equal),
            None => false,
        },
    })
}

/// How two numbers order, as CEL orders `int`, `uint` and `double` against each other:
/// `None` when either is not a number; `Some(None)` when they do not order (NaN).
#[inline(always)]
fn numeric_order<T: Tree>(a: Node<'_, T>, b: Node<'_, T>) -> Option<Option<Ordering>> {
    Some(match (a, b) {
        (Node::Int(a), Node::Int(b)) => Some(a.cmp(&b)),
        (Node::UInt(a), Node::UInt(b)) => Some(a.cmp(&b)),
        (Node::Int(a), Node::UInt(b)) => {
            Some(u64::try_from(a).map_or(Ordering::Less, |a| a.cmp(&b)))
        }
        (Node::UInt(a), Node::Int(b)) => {
            Some(i64::try_from(a).map_or(Ordering::Greater, |a| a.cmp(&b)))
        }
        (Node::Double(a), Node::Double(b)) => a.partial_cmp(&b),
        (Node::Int(a), Node::Double(b)) => (a as f64).partial_cmp(&b),
        (Node::UInt(a), Node::Double(b)) => (a as f64).partial_cmp(&b),
        (Node::Double(a), Node::Int(b)) => a.partial_cmp(&(b as f64)),
        (Node::Double(a), Node::UInt(b)) => a.partial_cmp(&(b as f64)),
        _ => return None,
    })
}

/// `a op b` for integers of one kind; `None` when it overflows or divides by zero.
macro_rules! checked {
    ($op:expr, $a:expr, $b:expr) => {
        match $op {
            Arith::Add => $a.checked_add($b),
            Arith::Sub => $a.checked_sub($b),
            Arith::Mul => $a.checked_mul($b),
            Arith::Div => $a.checked_div($b),
            Arith::Rem => $a.checked_rem($b),
        }
    };
}

fn arith<'a, T: Tree>(op: Arith, a: Node<'a, T>, b: Node<'a, T>) -> Node<'a, T> {
    match (a, b) {
        (Node::Int(a), Node::Int(b)) => checked!(op, a, b).map_or(Node::Opaque, Node::Int),
        (Node::UInt(a), Node::UInt(b)) => checked!(op, a, b).map_or(Node::Opaque, Node::UInt),
        (Node::Double(a), Node::Double(b)) => Node::Double(match op {
            Arith::Add => a + b,
            Arith::Sub => a - b,
            Arith::Mul => a * b,
            Arith::Div if b != 0.0 => a / b,
            Arith::Div | Arith::Rem => return Node::Opaque,
        }),
        _ => Node::Opaque,
    }
}
