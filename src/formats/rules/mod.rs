//! Data-contract rules: what a version's messages must satisfy beyond its schema, written in
//! `vN.rules.toml` beside the version as CEL expressions over `message`, the decoded message.
//! A rule set is compiled once per version — parsed, bounded in size and in how deeply its
//! comprehensions (`all`, `exists`, `map`, `filter`) nest, and refused when its shape says it
//! cannot give a bool — and evaluated per message. Before a message is evaluated its cost is
//! bounded from the rule's size and the message's largest collection, so that no message makes a
//! rule run away; a rule that errors (a missing field read without `has`, a division by zero)
//! or gives something other than a bool fails, with that as its reason.

mod bounds;
mod plan;
mod tree;
mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::CompileError;
pub use tree::{Fields, Node, Tree};
#[cfg(test)]
pub(crate) use value::from_json;
pub use value::Message;

/// A version's rules, in the order the file writes them.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub expr: String,
    /// What a producer is told when the rule fails (Confluent calls it `doc` too).
    pub doc: Option<String>,
    pub on_failure: OnFailure,
    /// The field the rule is about: the `message.…` path it reads most deeply, as a JSON pointer.
    pub path: Option<String>,
    program: cel::Program,
    /// The rule as a plan on the message tree, when the plan covers it; else, and wherever the
    /// plan cannot answer, the interpreter runs `program`.
    plan: Option<plan::Plan>,
    shape: bounds::Shape,
    /// Messages this rule has failed since the version was compiled, in this process.
    failures: AtomicU64,
    /// Every `message.a.b…` the rule reads, as field names.
    reads: Vec<Vec<String>>,
}

/// What a failed rule does to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Refused (`422 rule_violation`) and dead-lettered.
    #[default]
    Dlq,
    /// Stored, with the rule named in a header, and counted.
    Warn,
}

/// How large a rule may be and how much one evaluation may cost (`limits.max_rule_cost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleLimits {
    /// Characters in one expression.
    pub max_expression_length: usize,
    /// Comprehensions inside comprehensions (`a.all(x, b.exists(y, …))` is 2).
    pub max_nesting: u32,
    /// Steps one evaluation may take, estimated before it runs: the rule's nodes times the
    /// message's largest collection for each level of comprehension.
    pub max_cost: u64,
}

impl Default for RuleLimits {
    fn default() -> Self {
        Self {
            max_expression_length: 4096,
            max_nesting: 2,
            max_cost: 1_000_000,
        }
    }
}

/// A rule a message did not satisfy, and why.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub rule: &'a Rule,
    pub reason: String,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    expr: String,
    doc: Option<String>,
    #[serde(default)]
    on_failure: OnFailure,
}

impl RuleSet {
    /// Compiles the rules file `file` (its text `text`): every rule or the first reason one of
    /// them cannot be, naming the rule.
    pub fn compile(file: &str, text: &str, limits: &RuleLimits) -> Result<Self, CompileError> {
        let parsed: RulesFile = toml::from_str(text)
            .map_err(|e| CompileError::new(format!("{file} is not a valid rules file: {e}")))?;
        let mut rules: Vec<Rule> = Vec::with_capacity(parsed.rule.len());
        for entry in parsed.rule {
            let refuse =
                |why: String| CompileError::new(format!("{file}: rule `{}` {why}", entry.name));
            if !is_rule_name(&entry.name) {
                return Err(refuse("has a name that is not [a-z0-9_]+".into()));
            }
            if rules.iter().any(|rule| rule.name == entry.name) {
                return Err(refuse("is named twice".into()));
            }
            if entry.expr.len() > limits.max_expression_length {
                return Err(refuse(format!(
                    "is {} characters long, more than {}",
                    entry.expr.len(),
                    limits.max_expression_length
                )));
            }
            let program = cel::Program::compile(&entry.expr)
                .map_err(|e| refuse(format!("does not compile: {}", one_line(&e.to_string()))))?;
            let shape = bounds::Shape::of(program.expression());
            if shape.nesting > limits.max_nesting {
                return Err(refuse(format!(
                    "nests comprehensions {} deep, more than {}",
                    shape.nesting, limits.max_nesting
                )));
            }
            if let Some(kind) = bounds::not_a_bool(program.expression()) {
                return Err(refuse(format!("gives {kind}, not a bool")));
            }
            let plan = match plan::Plan::compile(program.expression()) {
                Ok(plan) => Some(plan),
                Err(plan::Miss::Uncovered) => None,
                Err(plan::Miss::Invalid(why)) => {
                    return Err(refuse(format!("does not compile: {why}")))
                }
            };
            let reads = bounds::message_reads(program.expression());
            rules.push(Rule {
                path: bounds::message_path(&reads),
                reads,
                name: entry.name,
                expr: entry.expr,
                doc: entry.doc,
                on_failure: entry.on_failure,
                program,
                plan,
                shape,
                failures: AtomicU64::new(0),
            });
        }
        Ok(Self { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first field a rule reads that `missing` (the schema's [`missing_field`], given every
    /// field the rules read) says no message has, as a refusal naming the rule and the field.
    ///
    /// [`missing_field`]: crate::formats::CompiledSchema::missing_field
    pub fn unknown_field(
        &self,
        file: &str,
        missing: impl FnOnce(&[&[String]]) -> Option<usize>,
    ) -> Option<CompileError> {
        let reads: Vec<(&Rule, &[String])> = self
            .rules
            .iter()
            .flat_map(|rule| rule.reads.iter().map(move |path| (rule, path.as_slice())))
            .collect();
        let paths: Vec<&[String]> = reads.iter().map(|(_, path)| *path).collect();
        let (rule, path) = reads[missing(&paths)?];
        Some(CompileError::new(format!(
            "{file}: rule `{}` reads `message.{}`, a field the schema does not have",
            rule.name,
            path.join(".")
        )))
    }

    /// The rules `message` does not satisfy.
    pub fn evaluate(&self, message: &Message<'_>, limits: &RuleLimits) -> Vec<Failure<'_>> {
        self.evaluate_with(message, limits, true)
    }

    /// The same judgment by the CEL interpreter alone: the reference the plans are checked
    /// against.
    pub fn evaluate_interpreted(
        &self,
        message: &Message<'_>,
        limits: &RuleLimits,
    ) -> Vec<Failure<'_>> {
        self.evaluate_with(message, limits, false)
    }

    fn evaluate_with(
        &self,
        message: &Message<'_>,
        limits: &RuleLimits,
        plans: bool,
    ) -> Vec<Failure<'_>> {
        let mut reading = Reading {
            message,
            largest: None,
            interpreter: None,
        };
        self.rules
            .iter()
            .filter_map(|rule| {
                let reason = rule.judge(&mut reading, limits, plans)?;
                rule.failures.fetch_add(1, Ordering::Relaxed);
                Some(Failure { rule, reason })
            })
            .collect()
    }
}

/// One message as the rules of a version read it, with what is built from it on first need.
struct Reading<'t> {
    message: &'t Message<'t>,
    /// Its largest collection, once a rule with a comprehension needs its cost bound.
    largest: Option<u64>,
    /// The interpreter's context holding it as `message`, once a rule needs the interpreter.
    interpreter: Option<cel::Context<'t, 't>>,
}

impl Rule {
    /// Whether the rule has a plan (which answers for it wherever it can); a rule without one is
    /// always evaluated by the interpreter.
    pub fn planned(&self) -> bool {
        self.plan.is_some()
    }

    /// Messages this rule has failed since its version was compiled, in this process.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Why the message being read fails this rule; `None` when it passes. The plan answers
    /// where it can (with `plans`), the interpreter otherwise.
    fn judge(&self, reading: &mut Reading<'_>, limits: &RuleLimits, plans: bool) -> Option<String> {
        let within = |largest| self.shape.cost(largest) <= limits.max_cost;
        let cost = match (self.shape.nesting, reading.message.largest_at_most) {
            (0, _) => self.shape.nodes,
            (_, Some(bound)) if within(bound) => self.shape.cost(bound),
            _ => self.shape.cost(
                *reading
                    .largest
                    .get_or_insert_with(|| reading.message.tree().largest_collection()),
            ),
        };
        if cost > limits.max_cost {
            return Some(format!(
                "not evaluated: on this message `{}` could take about {cost} steps, more than limits.max_rule_cost ({})",
                self.expr, limits.max_cost
            ));
        }
        let planned = self.plan.as_ref().filter(|_| plans);
        if let Some(verdict) = planned.and_then(|plan| reading.message.tree().run(plan)) {
            return (!verdict).then(|| self.is_false());
        }
        let tree = reading.message.tree();
        let context = reading.interpreter.get_or_insert_with(|| {
            let mut context = cel::Context::with_env(standard_env());
            context.add_variable_as_val("message", tree.to_cel());
            context
        });
        match self.program.execute(context) {
            Ok(cel::Value::Bool(true)) => None,
            Ok(cel::Value::Bool(false)) => Some(self.is_false()),
            Ok(other) => Some(format!(
                "`{}` gives {}, not a bool",
                self.expr,
                other.type_of()
            )),
            Err(error) => Some(format!("`{}` could not be evaluated: {error}", self.expr)),
        }
    }

    /// What a producer is told when the rule gives `false`.
    fn is_false(&self) -> String {
        self.doc
            .clone()
            .unwrap_or_else(|| format!("`{}` is false", self.expr))
    }
}

/// CEL's standard environment (its functions and macros), built once: building it is most of
/// what a context costs.
fn standard_env() -> Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib())).clone()
}

fn is_rule_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
