//! Running a plan on one message tree, compiled for each kind of tree: values borrowed from the
//! message and the plan, and wherever an answer might not be the interpreter's, [`Defer`].

use std::cmp::Ordering;

use super::{Arith, Comparison, Const, Fold, Quantifier, Quantify, Step, TextTest, SLOTS};
use crate::formats::rules::tree::{Fields, Node, Tree};

/// A value while a plan runs: borrowed from the message or from the plan's constants.
enum V<'a, T: Tree> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
    List(&'a [T]),
    Map(&'a T::Map),
    Consts(&'a [Const]),
}

impl<T: Tree> Clone for V<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Tree> Copy for V<'_, T> {}

/// The plan cannot answer this message: the interpreter does.
struct Defer;

type Got<'a, T> = Result<V<'a, T>, Defer>;

/// The verdict of `root` on `message`; `None` when the interpreter must give it.
pub(super) fn run<T: Tree>(root: &Step, message: &T) -> Option<bool> {
    let mut slots = [V::Null; SLOTS];
    slots[0] = of_node(message.node()).ok()?;
    match root.eval(&mut slots) {
        Ok(V::Bool(verdict)) => Some(verdict),
        _ => None,
    }
}

#[inline(always)]
fn of_node<T: Tree>(node: Node<'_, T>) -> Got<'_, T> {
    Ok(match node {
        Node::Null => V::Null,
        Node::Bool(b) => V::Bool(b),
        Node::Int(i) => V::Int(i),
        Node::UInt(u) => V::UInt(u),
        Node::Double(d) => V::Double(d),
        Node::Str(s) => V::Str(s),
        Node::List(items) => V::List(items),
        Node::Map(fields) => V::Map(fields),
        Node::Opaque => return Err(Defer),
    })
}

fn of_const<T: Tree>(constant: &Const) -> V<'_, T> {
    match constant {
        Const::Null => V::Null,
        Const::Bool(b) => V::Bool(*b),
        Const::Int(i) => V::Int(*i),
        Const::UInt(u) => V::UInt(*u),
        Const::Double(d) => V::Double(*d),
        Const::Str(s) => V::Str(s),
        Const::List(items) => V::Consts(items),
    }
}

fn bool<T: Tree>(value: V<'_, T>) -> Result<bool, Defer> {
    match value {
        V::Bool(b) => Ok(b),
        _ => Err(Defer),
    }
}

/// The value of `step` as an operand: constants, variables and a variable's fields (most
/// operands) without a call of their own.
#[inline(always)]
fn value_of<'a, T: Tree>(step: &'a Step, slots: &mut [V<'a, T>; SLOTS]) -> Got<'a, T> {
    match step {
        Step::Const(constant) => Ok(of_const(constant)),
        Step::Var(slot) => Ok(slots[*slot]),
        Step::Field(slot, field) => match slots[*slot] {
            V::Map(fields) => of_node(fields.field(field).ok_or(Defer)?.node()),
            _ => Err(Defer),
        },
        _ => step.eval(slots),
    }
}

impl Step {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [V<'a, T>; SLOTS]) -> Got<'a, T> {
        match self {
            Step::Const(constant) => Ok(of_const(constant)),
            Step::Var(slot) => Ok(slots[*slot]),
            Step::Field(slot, field) => match slots[*slot] {
                V::Map(fields) => of_node(fields.field(field).ok_or(Defer)?.node()),
                _ => Err(Defer),
            },
            Step::Select(operand, field) => match value_of(operand, slots)? {
                V::Map(fields) => of_node(fields.field(field).ok_or(Defer)?.node()),
                _ => Err(Defer),
            },
            Step::Has(operand, field) => match value_of(operand, slots)? {
                V::Map(fields) => Ok(V::Bool(fields.field(field).is_some())),
                _ => Err(Defer),
            },
            Step::Index(pair) => index(value_of(&pair[0], slots)?, value_of(&pair[1], slots)?),
            Step::Not(operand) => Ok(V::Bool(!bool(value_of(operand, slots)?)?)),
            Step::Negate(operand) => match value_of(operand, slots)? {
                V::Int(i) => i.checked_neg().map(V::Int).ok_or(Defer),
                V::Double(d) => Ok(V::Double(-d)),
                _ => Err(Defer),
            },
            Step::And(pair) => match bool(value_of(&pair[0], slots)?)? {
                false => Ok(V::Bool(false)),
                true => Ok(V::Bool(bool(value_of(&pair[1], slots)?)?)),
            },
            Step::Or(pair) => match bool(value_of(&pair[0], slots)?)? {
                true => Ok(V::Bool(true)),
                false => Ok(V::Bool(bool(value_of(&pair[1], slots)?)?)),
            },
            Step::Cond(parts) => match bool(value_of(&parts[0], slots)?)? {
                true => value_of(&parts[1], slots),
                false => value_of(&parts[2], slots),
            },
            Step::Compare(comparison, pair) => {
                let (a, b) = (value_of(&pair[0], slots)?, value_of(&pair[1], slots)?);
                compare(*comparison, a, b).map(V::Bool)
            }
            Step::Arith(op, pair) => {
                arith(*op, value_of(&pair[0], slots)?, value_of(&pair[1], slots)?)
            }
            Step::In(pair) => contains(value_of(&pair[1], slots)?, value_of(&pair[0], slots)?),
            Step::Size(operand) => size(value_of(operand, slots)?),
            Step::Text(test, pair) => {
                match (value_of(&pair[0], slots)?, value_of(&pair[1], slots)?) {
                    (V::Str(text), V::Str(part)) => Ok(V::Bool(match test {
                        TextTest::StartsWith => text.starts_with(part),
                        TextTest::EndsWith => text.ends_with(part),
                        TextTest::Contains => text.contains(part),
                    })),
                    _ => Err(Defer),
                }
            }
            Step::Matches(subject, pattern) => match value_of(subject, slots)? {
                V::Str(text) => Ok(V::Bool(pattern.is_match(text))),
                _ => Err(Defer),
            },
            Step::NotStrictlyFalse(operand) => match value_of(operand, slots)? {
                V::Bool(b) => Ok(V::Bool(b)),
                _ => Ok(V::Bool(true)),
            },
            Step::Fold(fold) => fold.eval(slots),
            Step::Quantify(quantify) => quantify.eval(slots),
        }
    }
}

impl Fold {
    fn eval<'a, T: Tree>(&'a self, slots: &mut [V<'a, T>; SLOTS]) -> Got<'a, T> {
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
    fn eval<'a, T: Tree>(&'a self, slots: &mut [V<'a, T>; SLOTS]) -> Got<'a, T> {
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
        Ok(V::Bool(answer.unwrap_or(match self.kind {
            Quantifier::All => true,
            Quantifier::Exists => false,
            Quantifier::ExistsOne => count == 1,
        })))
    }
}

/// Calls `visit` with each element of `range` (a map's keys) until it answers `false`.
fn each<'a, T: Tree>(
    range: V<'a, T>,
    mut visit: impl FnMut(V<'a, T>) -> Result<bool, Defer>,
) -> Result<(), Defer> {
    match range {
        V::List(items) => {
            for item in items {
                if !visit(of_node(item.node())?)? {
                    break;
                }
            }
        }
        V::Consts(items) => {
            for item in items {
                if !visit(of_const(item))? {
                    break;
                }
            }
        }
        V::Map(fields) => {
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

fn index<'a, T: Tree>(container: V<'a, T>, key: V<'a, T>) -> Got<'a, T> {
    match (container, key) {
        (V::List(items), V::Int(i)) => match usize::try_from(i) {
            Ok(i) if i < items.len() => of_node(items[i].node()),
            _ => Err(Defer),
        },
        (V::Consts(items), V::Int(i)) => usize::try_from(i)
            .ok()
            .and_then(|i| items.get(i))
            .map(of_const)
            .ok_or(Defer),
        (V::Map(fields), V::Str(name)) => of_node(fields.field(name).ok_or(Defer)?.node()),
        _ => Err(Defer),
    }
}

/// `item in container`.
fn contains<'a, T: Tree>(container: V<'a, T>, item: V<'a, T>) -> Got<'a, T> {
    let found = match container {
        V::List(items) => {
            let mut found = false;
            for element in items {
                if equal(item, of_node(element.node())?)? {
                    found = true;
                    break;
                }
            }
            found
        }
        V::Consts(items) => {
            let mut found = false;
            for constant in items {
                if equal(item, of_const(constant))? {
                    found = true;
                    break;
                }
            }
            found
        }
        V::Map(fields) => match item {
            V::Str(name) => fields.field(name).is_some(),
            _ => return Err(Defer),
        },
        _ => return Err(Defer),
    };
    Ok(V::Bool(found))
}

fn size<T: Tree>(value: V<'_, T>) -> Got<'_, T> {
    let size = match value {
        V::Str(text) => text.chars().count(),
        V::List(items) => items.len(),
        V::Map(fields) => fields.len(),
        V::Consts(items) => items.len(),
        _ => return Err(Defer),
    };
    i64::try_from(size).map(V::Int).map_err(|_| Defer)
}

fn compare<T: Tree>(comparison: Comparison, a: V<'_, T>, b: V<'_, T>) -> Result<bool, Defer> {
    let ordering = match comparison {
        Comparison::Eq => return equal(a, b),
        Comparison::Ne => return equal(a, b).map(|equal| !equal),
        _ => match (a, b) {
            (V::Str(a), V::Str(b)) => Some(a.cmp(b)),
            (V::Bool(a), V::Bool(b)) => Some(a.cmp(&b)),
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
fn equal<T: Tree>(a: V<'_, T>, b: V<'_, T>) -> Result<bool, Defer> {
    Ok(match (a, b) {
        (V::List(_) | V::Map(_) | V::Consts(_), _) | (_, V::List(_) | V::Map(_) | V::Consts(_)) => {
            return Err(Defer)
        }
        (V::Null, V::Null) => true,
        (V::Bool(a), V::Bool(b)) => a == b,
        (V::Str(a), V::Str(b)) => a == b,
        _ => match numeric_order(a, b) {
            Some(ordering) => ordering == Some(Ordering::Equal),
            None => false,
        },
    })
}

/// How two numbers order, as CEL orders `int`, `uint` and `double` against each other:
/// `None` when either is not a number; `Some(None)` when they do not order (NaN).
#[inline(always)]
fn numeric_order<T: Tree>(a: V<'_, T>, b: V<'_, T>) -> Option<Option<Ordering>> {
    Some(match (a, b) {
        (V::Int(a), V::Int(b)) => Some(a.cmp(&b)),
        (V::UInt(a), V::UInt(b)) => Some(a.cmp(&b)),
        (V::Int(a), V::UInt(b)) => Some(u64::try_from(a).map_or(Ordering::Less, |a| a.cmp(&b))),
        (V::UInt(a), V::Int(b)) => Some(i64::try_from(a).map_or(Ordering::Greater, |a| a.cmp(&b))),
        (V::Double(a), V::Double(b)) => a.partial_cmp(&b),
        (V::Int(a), V::Double(b)) => (a as f64).partial_cmp(&b),
        (V::UInt(a), V::Double(b)) => (a as f64).partial_cmp(&b),
        (V::Double(a), V::Int(b)) => a.partial_cmp(&(b as f64)),
        (V::Double(a), V::UInt(b)) => a.partial_cmp(&(b as f64)),
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

fn arith<'a, T: Tree>(op: Arith, a: V<'a, T>, b: V<'a, T>) -> Got<'a, T> {
    let value = match (a, b) {
        (V::Int(a), V::Int(b)) => V::Int(checked!(op, a, b).ok_or(Defer)?),
        (V::UInt(a), V::UInt(b)) => V::UInt(checked!(op, a, b).ok_or(Defer)?),
        (V::Double(a), V::Double(b)) => V::Double(match op {
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
