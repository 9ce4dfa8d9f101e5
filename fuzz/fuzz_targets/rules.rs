//! Data-contract rules on hostile messages: arbitrary bytes read as a JSON message (the tree the
//! schema validated) and judged by a set of rules that walk, index, compare, match and divide;
//! and, when the bytes hold a newline, the text before it compiled as a rule of its own (within
//! the default bounds) and judged on the JSON after it. Neither may panic, nor run past the cost
//! bound, and every verdict — the plans' where they answer — must be the CEL interpreter's
//! alone, reason for reason.

#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::formats::json::rules_message;
use sluice::formats::rules::{Failure, RuleLimits, RuleSet};
use sluice::formats::MessageLimits;

const RULES: &str = r#"
[[rule]]
name = "positive_total"
expr = "message.total > 0"

[[rule]]
name = "items"
expr = "message.items.all(i, i.qty >= 1 && i.sku.matches('^[a-z]+$'))"

[[rule]]
name = "unique"
expr = "message.items.all(i, message.items.exists_one(j, j.sku == i.sku))"

[[rule]]
name = "ratio"
expr = "message.total / size(message.items) < 1000"

[[rule]]
name = "keys"
expr = "message.all(k, size(k) < 64) && has(message.customer) && message.customer.endsWith('.org')"

[[rule]]
name = "times"
expr = "timestamp(message.at) < timestamp('2030-01-01T00:00:00Z') + duration(message.ttl)"
"#;

static FIXED: LazyLock<RuleSet> = LazyLock::new(|| {
    RuleSet::compile("fuzz.rules.toml", RULES, &RuleLimits::default()).expect("the rules compile")
});

fuzz_target!(|data: &[u8]| {
    let limits = RuleLimits::default();
    agree(&FIXED, &Bytes::copy_from_slice(data), &limits);
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (expr, json) = (&data[..newline], &data[newline + 1..]);
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    let file = format!("[[rule]]\nname = \"fuzzed\"\nexpr = {}\n", toml_string(expr));
    if let Ok(rules) = RuleSet::compile("fuzz.rules.toml", &file, &limits) {
        agree(&rules, &Bytes::copy_from_slice(json), &limits);
    }
});

/// Judges `json` with `rules` through their plans and through the interpreter alone, and
/// panics when the two disagree.
fn agree(rules: &RuleSet, json: &Bytes, limits: &RuleLimits) {
    let Ok(message) = rules_message(json, &MessageLimits::default()) else {
        return;
    };
    let planned = verdicts(rules.evaluate(&message, limits));
    let interpreted = verdicts(rules.evaluate_interpreted(&message, limits));
    assert_eq!(planned, interpreted, "on {json:?}");
}

fn verdicts(failures: Vec<Failure<'_>>) -> Vec<(String, String)> {
    failures
        .into_iter()
        .map(|failure| (failure.rule.name.clone(), failure.reason))
        .collect()
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
