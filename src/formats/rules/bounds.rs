//! What a rule's expression tree says before it runs: its size and comprehension nesting (the
//! cost bound), whether its outermost operation can give a bool, and the message field it reads
//! most deeply (the path a failure reports).

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::IdedExpr;

/// A rule's size and how deeply its comprehensions nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub nodes: u64,
    pub nesting: u32,
}

impl Shape {
    pub fn of(expr: &IdedExpr) -> Self {
        let mut nodes = 0;
        let nesting = walk(expr, &mut nodes);
        Self { nodes, nesting }
    }

    /// An upper bound of the steps evaluating the rule takes on a message whose largest
    /// collection (list or map) has `largest` elements: every node may run once per
    /// element at each level of comprehension.
    pub fn cost(&self, largest: u64) -> u64 {
        (0..self.nesting).fold(self.nodes, |cost, _| cost.saturating_mul(largest.max(1)))
    }
}

/// Counts the nodes under `expr` into `nodes`; the comprehension nesting under it.
fn walk(expr: &IdedExpr, nodes: &mut u64) -> u32 {
    *nodes += 1;
    let deepest = |children: &mut dyn Iterator<Item = &IdedExpr>, nodes: &mut u64| {
        children.map(|child| walk(child, nodes)).max().unwrap_or(0)
    };
    match &expr.expr {
        Expr::Call(call) => deepest(
            &mut call.target.iter().map(|t| &**t).chain(&call.args),
            nodes,
        ),
        Expr::Comprehension(c) => {
            let parts = [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ];
            1 + deepest(&mut parts.into_iter(), nodes)
        }
        Expr::List(list) => deepest(&mut list.elements.iter(), nodes),
        Expr::Map(map) => deepest(&mut map.entries.iter().flat_map(|e| entry(&e.expr)), nodes),
        Expr::Struct(s) => deepest(&mut s.entries.iter().flat_map(|e| entry(&e.expr)), nodes),
        Expr::Select(select) => walk(&select.operand, nodes),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}

fn entry(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

/// What the expression gives when its outermost operation cannot give a bool: a literal,
/// list, map or arithmetic that is not one. `None` when it may (a comparison, a logical operator,
/// a function, a field read whose type only the message tells).
pub fn not_a_bool(expr: &IdedExpr) -> Option<&'static str> {
    match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::Null) => Some("null"),
        Expr::Literal(LiteralValue::String(_)) => Some("a string"),
        Expr::Literal(LiteralValue::Bytes(_)) => Some("bytes"),
        Expr::Literal(_) => Some("a number"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) => Some("a map"),
        Expr::Call(call) => match call.func_name.as_str() {
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_" => Some("a number, string or list"),
            "_?_:_" => call.args[1..].iter().find_map(not_a_bool),
            _ => None,
        },
        Expr::Comprehension(c) => match &c.result.expr {
            // `map` and `filter` build a list; `all`, `exists` and `exists_one` a bool.
            Expr::Ident(name) if name == &c.accu_var => match &c.accu_init.expr {
                Expr::List(_) => Some("a list"),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// Of the `message.a.b…` paths an expression reads ([`message_reads`]), the deepest, as a JSON pointer (`/a/b`): the
/// field a failure is about (`/total/amount` for `!has(message.total) || message.total.amount > 0`).
/// The first of equally deep ones.
pub fn message_path(reads: &[Vec<String>]) -> Option<String> {
    let deepest = reads.iter().map(Vec::len).max()?;
    let path = reads.iter().find(|path| path.len() == deepest)?;
    Some(
        path.iter()
            .map(|field| format!("/{}", escape(field)))
            .collect(),
    )
}

/// Every `message.a.b…` the expression reads, as its field names, in the order it writes them.
pub fn message_reads(expr: &IdedExpr) -> Vec<Vec<String>> {
    let mut reads = Vec::new();
    collect_reads(expr, &mut reads);
    reads
}

fn collect_reads(expr: &IdedExpr, reads: &mut Vec<Vec<String>>) {
    if let Some(path) = select_path(expr) {
        reads.push(path);
        return;
    }
    let children: Vec<&IdedExpr> = match &expr.expr {
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(&call.args).collect(),
        Expr::Comprehension(c) => vec![&c.iter_range, &c.loop_step, &c.result],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Select(select) => vec![&select.operand],
        _ => Vec::new(),
    };
    for child in children {
        collect_reads(child, reads);
    }
}

/// `message.a.b` as `["a", "b"]`; `None` for anything else.
fn select_path(expr: &IdedExpr) -> Option<Vec<String>> {
    match &expr.expr {
        Expr::Select(select) => match &select.operand.expr {
            Expr::Ident(root) if root == "message" => Some(vec![select.field.clone()]),
            _ => select_path(&select.operand).map(|mut path| {
                path.push(select.field.clone());
                path
            }),
        },
        _ => None,
    }
}

fn escape(field: &str) -> String {
    field.replace('~', "~0").replace('/', "~1")
}
