//! A rule compiled into a plan that reads the message tree where it lies ([`super::tree`]),
//! without converting the message into the interpreter's values or resolving names per message.
//!
//! The plan covers what typical rules are written with: field reads and `has`, indexing,
//! literals (a list of them after `in`), `!`, `&&`, `||`, `?:`, comparisons, arithmetic, `in`, `size`,
//! `startsWith`, `endsWith`, `contains`, `matches` with a literal pattern (compiled once, here)
//! and the macros whose accumulator is a bool or a count (`all`, `exists`, `exists_one`). It
//! answers only where its answer is certainly the interpreter's: an expression it does not cover,
//! or at run time an error, values of kinds it does not compare, an overflow, hands the rule to
//! the CEL interpreter, whose answer (and error text) is then the rule's.

use cel::common::ast::{operators, CallExpr, ComprehensionExpr, Expr, ListExpr, LiteralValue};
use cel::IdedExpr;
use regex::Regex;

use super::tree::Tree;

mod eval;

/// Variables a plan may bind at once: `message` and two per comprehension.
pub(super) const SLOTS: usize = 8;

/// A rule's expression as the plan evaluates it.
#[derive(Debug)]
pub struct Plan(Step);

/// Why an expression has no plan.
#[derive(Debug)]
pub enum Miss {
    /// It uses something the plan does not cover: the interpreter evaluates it.
    Uncovered,
    /// It can never evaluate (a `matches` pattern that is not a regular expression).
    Invalid(String),
}

#[derive(Debug)]
enum Step {
    Const(Const),
    Var(usize),
    /// A field of a variable (`message.total`, `i.qty`): the commonest read, in one step.
    Field(usize, String),
    Select(Box<Step>, String),
    Has(Box<Step>, String),
    Index(Box<[Step; 2]>),
    Not(Box<Step>),
    Negate(Box<Step>),
    And(Box<[Step; 2]>),
    Or(Box<[Step; 2]>),
    Cond(Box<[Step; 3]>),
    Compare(Comparison, Box<[Step; 2]>),
    Arith(Arith, Box<[Step; 2]>),
    In(Box<[Step; 2]>),
    /// `x in [a, b, …]`, a list of literals: the only place a list literal is covered.
    InList(Box<Step>, Vec<Const>),
    Size(Box<Step>),
    Text(TextTest, Box<[Step; 2]>),
    Matches(Box<Step>, Box<Regex>),
    NotStrictlyFalse(Box<Step>),
    Fold(Box<Fold>),
    Quantify(Box<Quantify>),
}

/// A comprehension (what the macros expand into).
#[derive(Debug)]
struct Fold {
    range: Step,
    iter: usize,
    accu: usize,
    init: Step,
    cond: Step,
    step: Step,
    result: Step,
}

/// `all`, `exists` or `exists_one`: the predicate once per element, and no accumulator.
#[derive(Debug)]
struct Quantify {
    kind: Quantifier,
    range: Step,
    iter: usize,
    predicate: Step,
}

#[derive(Debug, Clone, Copy)]
enum Quantifier {
    All,
    Exists,
    ExistsOne,
}

#[derive(Debug)]
enum Const {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy)]
enum TextTest {
    StartsWith,
    EndsWith,
    Contains,
}

impl Plan {
    /// The plan of `expr`, whose only variable is `message`.
    pub fn compile(expr: &IdedExpr) -> Result<Self, Miss> {
        let mut scope = vec!["message".to_owned()];
        Ok(Self(compile(expr, &mut scope)?))
    }

    /// The rule's verdict on `message`; `None` when the interpreter must give it.
    pub fn run<T: Tree>(&self, message: &T) -> Option<bool> {
        eval::run(&self.0, message)
    }
}

fn compile(expr: &IdedExpr, scope: &mut Vec<String>) -> Result<Step, Miss> {
    let boxed = |step: Step| Box::new(step);
    Ok(match &expr.expr {
        Expr::Literal(literal) => Step::Const(constant(literal)?),
        Expr::Ident(name) => Step::Var(
            scope
                .iter()
                .rposition(|bound| bound == name)
                .ok_or(Miss::Uncovered)?,
        ),
        Expr::Select(select) => {
            let field = select.field.clone();
            match (compile(&select.operand, scope)?, select.test) {
                (operand, true) => Step::Has(boxed(operand), field),
                (Step::Var(slot), false) => Step::Field(slot, field),
                (operand, false) => Step::Select(boxed(operand), field),
            }
        }
        Expr::Comprehension(fold) => compile_fold(fold, scope)?.into_step(),
        Expr::Call(call) => compile_call(call, scope)?,
        _ => return Err(Miss::Uncovered),
    })
}

/// A list of literals, as `in` reads it.
fn literals(list: &ListExpr) -> Result<Vec<Const>, Miss> {
    if !list.optional_indices.is_empty() {
        return Err(Miss::Uncovered);
    }
    let elements = list.elements.iter().map(|element| match &element.expr {
        Expr::Literal(literal) => constant(literal),
        _ => Err(Miss::Uncovered),
    });
    elements.collect()
}

fn constant(literal: &LiteralValue) -> Result<Const, Miss> {
    Ok(match literal {
        LiteralValue::Null => Const::Null,
        LiteralValue::Boolean(b) => Const::Bool(*b.inner()),
        LiteralValue::Int(i) => Const::Int(*i.inner()),
        LiteralValue::UInt(u) => Const::UInt(*u.inner()),
        LiteralValue::Double(d) => Const::Double(*d.inner()),
        LiteralValue::String(s) => Const::Str(s.inner().to_owned()),
        LiteralValue::Bytes(_) => return Err(Miss::Uncovered),
    })
}

fn compile_fold(fold: &ComprehensionExpr, scope: &mut Vec<String>) -> Result<Fold, Miss> {
    if fold.iter_var2.is_some() || scope.len() + 2 > SLOTS {
        return Err(Miss::Uncovered);
    }
    let range = compile(&fold.iter_range, scope)?;
    let init = compile(&fold.accu_init, scope)?;
    let (iter, accu) = (scope.len(), scope.len() + 1);
    scope.push(fold.iter_var.clone());
    scope.push(fold.accu_var.clone());
    let body = (|| {
        Ok(Fold {
            range,
            iter,
            accu,
            init,
            cond: compile(&fold.loop_cond, scope)?,
            step: compile(&fold.loop_step, scope)?,
            result: compile(&fold.result, scope)?,
        })
    })();
    scope.truncate(iter);
    body
}

fn compile_call(call: &CallExpr, scope: &mut Vec<String>) -> Result<Step, Miss> {
    if let (operators::IN, None, [item, list]) =
        (call.func_name.as_str(), &call.target, call.args.as_slice())
    {
        if let Expr::List(list) = &list.expr {
            return Ok(Step::InList(
                Box::new(compile(item, scope)?),
                literals(list)?,
            ));
        }
    }
    let mut operands = Vec::with_capacity(call.args.len() + 1);
    if let Some(target) = &call.target {
        operands.push(compile(target, scope)?);
    }
    let pattern = match (call.func_name.as_str(), call.args.last()) {
        ("matches", Some(last)) => Some(regex(last)?),
        _ => None,
    };
    for arg in &call.args {
        operands.push(compile(arg, scope)?);
    }
    let member = call.target.is_some();
    let name = call.func_name.as_str();
    let comparison = match name {
        operators::EQUALS => Some(Comparison::Eq),
        operators::NOT_EQUALS => Some(Comparison::Ne),
        operators::LESS => Some(Comparison::Lt),
        operators::LESS_EQUALS => Some(Comparison::Le),
        operators::GREATER => Some(Comparison::Gt),
        operators::GREATER_EQUALS => Some(Comparison::Ge),
        _ => None,
    };
    let arith = match name {
        operators::ADD => Some(Arith::Add),
        operators::SUBSTRACT => Some(Arith::Sub),
        operators::MULTIPLY => Some(Arith::Mul),
        operators::DIVIDE => Some(Arith::Div),
        operators::MODULO => Some(Arith::Rem),
        _ => None,
    };
    let text = match name {
        "startsWith" => Some(TextTest::StartsWith),
        "endsWith" => Some(TextTest::EndsWith),
        "contains" => Some(TextTest::Contains),
        _ => None,
    };
    let step = match (operands.len(), member) {
        (1, _) if name == "size" => Step::Size(one(operands)),
        (1, false) if name == operators::LOGICAL_NOT => Step::Not(one(operands)),
        (1, false) if name == operators::NEGATE => Step::Negate(one(operands)),
        (1, false) if name == operators::NOT_STRICTLY_FALSE => {
            Step::NotStrictlyFalse(one(operands))
        }
        (2, false) if name == operators::LOGICAL_AND => Step::And(two(operands)),
        (2, false) if name == operators::LOGICAL_OR => Step::Or(two(operands)),
        (2, false) if name == operators::IN => Step::In(two(operands)),
        (2, false) if name == operators::INDEX => Step::Index(two(operands)),
        (2, false) if comparison.is_some() => Step::Compare(comparison.unwrap(), two(operands)),
        (2, false) if arith.is_some() => Step::Arith(arith.unwrap(), two(operands)),
        (2, true) if text.is_some() => Step::Text(text.unwrap(), two(operands)),
        (2, _) if pattern.is_some() => {
            let subject = operands.into_iter().next().ok_or(Miss::Uncovered)?;
            Step::Matches(Box::new(subject), Box::new(pattern.unwrap()))
        }
        (3, false) if name == operators::CONDITIONAL => {
            let [cond, then, otherwise]: [Step; 3] =
                operands.try_into().map_err(|_| Miss::Uncovered)?;
            Step::Cond(Box::new([cond, then, otherwise]))
        }
        _ => return Err(Miss::Uncovered),
    };
    Ok(step)
}

/// The compiled pattern of `matches`, when it is a literal.
fn regex(pattern: &IdedExpr) -> Result<Regex, Miss> {
    let Expr::Literal(LiteralValue::String(pattern)) = &pattern.expr else {
        return Err(Miss::Uncovered);
    };
    Regex::new(pattern.inner()).map_err(|e| {
        let why = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Miss::Invalid(format!(
            "matches `{}`, which is not a regular expression: {why}",
            pattern.inner()
        ))
    })
}

fn one(operands: Vec<Step>) -> Box<Step> {
    Box::new(operands.into_iter().next().expect("one operand"))
}

fn two(operands: Vec<Step>) -> Box<[Step; 2]> {
    let [a, b]: [Step; 2] = operands.try_into().expect("two operands");
    Box::new([a, b])
}

impl Fold {
    /// The fold as one step: [`Quantify`] when it is the expansion of `all`, `exists` or
    /// `exists_one`.
    fn into_step(self) -> Step {
        let Some(kind) = self.quantifier() else {
            return Step::Fold(Box::new(self));
        };
        let predicate = match (kind, self.step) {
            (Quantifier::All, Step::And(pair)) | (Quantifier::Exists, Step::Or(pair)) => {
                let [_, predicate] = *pair;
                predicate
            }
            (Quantifier::ExistsOne, Step::Cond(parts)) => {
                let [predicate, _, _] = *parts;
                predicate
            }
            _ => unreachable!("the quantifier was read from this step"),
        };
        Step::Quantify(Box::new(Quantify {
            kind,
            range: self.range,
            iter: self.iter,
            predicate,
        }))
    }

    /// Which macro expanded into this fold, when it is one whose accumulator the plan need not
    /// keep: `all` (`true`, `@not_strictly_false(@result)`, `@result && p`, `@result`),
    /// `exists` (`false`, `@not_strictly_false(!@result)`, `@result || p`, `@result`) or
    /// `exists_one` (`0`, `true`, `p ? @result + 1 : @result`, `@result == 1`).
    fn quantifier(&self) -> Option<Quantifier> {
        let accu = |step: &Step| matches!(step, Step::Var(slot) if *slot == self.accu);
        let int = |step: &Step, n: i64| matches!(step, Step::Const(Const::Int(i)) if *i == n);
        match (&self.init, &self.cond, &self.step, &self.result) {
            (
                Step::Const(Const::Bool(true)),
                Step::NotStrictlyFalse(cond),
                Step::And(step),
                result,
            ) if accu(cond) && accu(&step[0]) && accu(result) => Some(Quantifier::All),
            (
                Step::Const(Const::Bool(false)),
                Step::NotStrictlyFalse(cond),
                Step::Or(step),
                result,
            ) if matches!(&**cond, Step::Not(not) if accu(not))
                && accu(&step[0])
                && accu(result) =>
            {
                Some(Quantifier::Exists)
            }
            (
                init,
                Step::Const(Const::Bool(true)),
                Step::Cond(step),
                Step::Compare(Comparison::Eq, result),
            ) if int(init, 0)
                && matches!(&step[1], Step::Arith(Arith::Add, add) if accu(&add[0]) && int(&add[1], 1))
                && accu(&step[2])
                && accu(&result[0])
                && int(&result[1], 1) =>
            {
                Some(Quantifier::ExistsOne)
            }
            _ => None,
        }
    }
}
