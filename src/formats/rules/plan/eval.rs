//! Running a plan on one message tree, compiled for each kind of tree: every value a node of the
//! message or a constant of the plan, and wherever an answer might not be the interpreter's,
//! [`Defer`].

use std::cmp::Ordering;

use super::{Arith, Comparison, Const, Fold, Quantifier, Quantify, Step, TextTest, SLOTS};
use crate::formats::rules::tree::{Fields, Node, Tree};

/// The plan cannot answer this message: the interpreter does.
struct Defer;

type Got<'a, T> = Result<Node<'a, T>, Defer>;

/// The verdict of `root` on `message`; `None` when the interpreter must give it.
pub(super) fn run<T: Tree>(root: &Step, message: &T) -> Option<bool> {
    let mut slots = [Node::Null; SLOTS];
    slots[0] = of_node(message.node()).ok()?;
    match root.eval(&mut slots) {
        Ok(Node::Bool(verdict)) => Some(verdict),
        _ => None,
    }
}

/// A node the plan can read: not an opaque value.
#[inline(always)]
fn of_node<T: Tree>(node: Node<'_, T>) -> Got<'_, T> {
    match node {
        Node::Opaque => Err(Defer),
        node => Ok(node),
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
fn value_of<'a, T: Tree>(step: &'a Step, slots: &mut [Node<'a, T>; SLOTS]) -> Got<'a, T> {
    match step {
        Step::Const(constant) => Ok(of_const(constant)),
        Step::Var(slot) => Ok(slots[*slot]),
        Step::Field(slot, field) => match slots[*slot] {
            Node::Map(fields) => of_node(fields.field(field).ok_or(Defer)?.node()),
            _ => Err(Defer),
        },
        _ => step.eval(slots),
    }
}

impl Step {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Got<'a, T> {
        match self {
            Step::Const(constant) => Ok(of_const(constant)),
            Step::Var(slot) => Ok(slots[*slot]),
            Step::Field(slot, field) => match slots[*slot] {
                Node::Map(fields) => of_node(fields.field(field).ok_or(Defer)?.node()),
                _ => Err(Defer),
            },
            Step::Select(operand, field) => match value_of(operand, slots)? {
                Node::Map(fields) => of_node(fields.field(field).ok_or(Defer)?.node()),
                _ => Err(Defer),
            },
            Step::Has(operand, field) => match value_of(operand, slots)? {
                Node::Map(fields) => Ok(Node::Bool(fields.field(field).is_some())),
                _ => Err(Defer),
            },
            Step::Index(pair) => index(value_of(&pair[0], slots)?, value_of(&pair[1], slots)?),
            Step::Not(operand) => Ok(Node::Bool(!bool(value_of(operand, slots)?)?)),
            Step::Negate(operand) => match value_of(operand, slots)? {
                Node::Int(i) => i.checked_neg().map(Node::Int).ok_or(Defer),
                Node::Double(d) => Ok(Node::Double(-d)),
                _ => Err(Defer),
            },
            Step::And(pair) => match bool(value_of(&pair[0], slots)?)? {
                false => Ok(Node::Bool(false)),
                true => Ok(Node::Bool(bool(value_of(&pair[1], slots)?)?)),
            },
            Step::Or(pair) => match bool(value_of(&pair[0], slots)?)? {
                true => Ok(Node::Bool(true)),
                false => Ok(Node::Bool(bool(value_of(&pair[1], slots)?)?)),
            },
            Step::Cond(parts) => match bool(value_of(&parts[0], slots)?)? {
                true => value_of(&parts[1], slots),
                false => value_of(&parts[2], slots),
            },
            Step::Compare(comparison, pair) => {
                let (a, b) = (value_of(&pair[0], slots)?, value_of(&pair[1], slots)?);
                compare(*comparison, a, b).map(Node::Bool)
            }
            Step::Arith(op, pair) => {
                arith(*op, value_of(&pair[0], slots)?, value_of(&pair[1], slots)?)
            }
            Step::In(pair) => contains(value_of(&pair[1], slots)?, value_of(&pair[0], slots)?),
            Step::InList(item, list) => {
                let item = value_of(item, slots)?;
                let mut found = false;
                for constant in list {
                    if equal(item, of_const(constant))? {
                        found = true;
                        break;
                    }
                }
                Ok(Node::Bool(found))
            }
            Step::Size(operand) => size(value_of(operand, slots)?),
            Step::Text(test, pair) => {
                match (value_of(&pair[0], slots)?, value_of(&pair[1], slots)?) {
                    (Node::Str(text), Node::Str(part)) => Ok(Node::Bool(match test {
                        TextTest::StartsWith => text.starts_with(part),
                        TextTest::EndsWith => text.ends_with(part),
                        TextTest::Contains => text.contains(part),
                    })),
                    _ => Err(Defer),
                }
            }
            Step::Matches(subject, pattern) => match value_of(subject, slots)? {
                Node::Str(text) => Ok(Node::Bool(pattern.is_match(text))),
                _ => Err(Defer),
            },
            Step::NotStrictlyFalse(operand) => match value_of(operand, slots)? {
                Node::Bool(b) => Ok(Node::Bool(b)),
                _ => Ok(Node::Bool(true)),
            },
            Step::Fold(fold) => fold.eval(slots),
            Step::Quantify(quantify) => quantify.eval(slots),
        }
    }
}

impl Fold {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Got<'a, T> {
        slots[self.accu] = self.init.eval(slots)?;
        let range = self.range.eval(slots)?;
        each(range, |item| {
            if !bool(self.cond.eval(slots)?)? {
                return Ok(false);
            }
            slots[self.iter] = item;
            slots[self.accu] = self.step.eval(slots)?;
            Ok(true)
        })?;
        self.result.eval(slots)
    }
}

impl Quantify {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [Node<'a, T>; SLOTS]) -> Got<'a, T> {
        let range = self.range.eval(slots)?;
        let (mut answer, mut count) = (None, 0u64);
        each(range, |item| {
            slots[self.iter] = item;
            let holds = bool(value_of(&self.predicate, slots)?)?;
            match (self.kind, holds) {
                (Quantifier::All, false) => answer = Some(false),
                (Quantifier::Exists, true) => answer = Some(true),
                (Quantifier::ExistsOne, true) => count += 1,
                _ => {}
            }
            Ok(answer.is_none())
        })?;
        Ok(Node::Bool(answer.unwrap_or(match self.kind {
            Quantifier::All => true,
            Quantifier::Exists => false,
            Quantifier::ExistsOne => count == 1,
        })))
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
                if !visit(of_node(item.node())?)? {
                    break;
                }
            }
        }
        Node::Map(fields) => {
            for key in fields.keys() {
                if !visit(of_node(key)?)? {
                    break;
                }
            }
        }
        _ => return Err(Defer),
    }
    Ok(())
}

fn index<'a, T: Tree>(container: Node<'a, T>, key: Node<'a, T>) -> Got<'a, T> {
    match (container, key) {
        (Node::List(items), Node::Int(i)) => match usize::try_from(i) {
            Ok(i) if i < items.len() => of_node(items[i].node()),
            _ => Err(Defer),
        },
        (Node::Map(fields), Node::Str(name)) => of_node(fields.field(name).ok_or(Defer)?.node()),
        _ => Err(Defer),
    }
}

/// `item in container`.
fn contains<'a, T: Tree>(container: Node<'a, T>, item: Node<'a, T>) -> Got<'a, T> {
    let found = match container {
        Node::List(items) => {
            let mut found = false;
            for element in items {
                if equal(item, of_node(element.node())?)? {
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
    Ok(Node::Bool(found))
}

fn size<T: Tree>(value: Node<'_, T>) -> Got<'_, T> {
    let size = match value {
        Node::Str(text) => text.chars().count(),
        Node::List(items) => items.len(),
        Node::Map(fields) => fields.len(),
        _ => return Err(Defer),
    };
    i64::try_from(size).map(Node::Int).map_err(|_| Defer)
}

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

fn arith<'a, T: Tree>(op: Arith, a: Node<'a, T>, b: Node<'a, T>) -> Got<'a, T> {
    let value = match (a, b) {
        (Node::Int(a), Node::Int(b)) => Node::Int(checked!(op, a, b).ok_or(Defer)?),
        (Node::UInt(a), Node::UInt(b)) => Node::UInt(checked!(op, a, b).ok_or(Defer)?),
        (Node::Double(a), Node::Double(b)) => Node::Double(match op {
            Arith::Add => a + b,
            Arith::Sub => a - b,
            Arith::Mul => a * b,
            Arith::Div if b != 0.0 => a / b,
            Arith::Div | Arith::Rem => return Err(Defer),
        }),
        _ => return Err(Defer),
    };
    Ok(value)
}
