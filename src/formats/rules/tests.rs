use serde_json::json;

use super::*;

fn compile(text: &str) -> Result<RuleSet, CompileError> {
    RuleSet::compile("schemas/orders/v2.rules.toml", text, &RuleLimits::default())
}

fn failures(rules: &RuleSet, message: serde_json::Value) -> Vec<(String, String)> {
    rules
        .evaluate(
            &Message::from_value(from_json(&message)),
            &RuleLimits::default(),
        )
        .into_iter()
        .map(|f| (f.rule.name.clone(), f.reason))
        .collect()
}

const ORDER_RULES: &str = r#"
[[rule]]
name = "positive_total"
expr = "message.total_cents > 0"
doc = "an order's total must be positive"

[[rule]]
name = "items_have_quantities"
expr = "message.items.all(i, i.qty >= 1)"

[[rule]]
name = "email_looks_real"
expr = "!has(message.email) || message.email.matches('^[^@]+@[^@]+$')"
on_failure = "warn"
"#;

#[test]
fn a_good_message_passes_and_each_broken_rule_is_named_with_its_reason() {
    let rules = compile(ORDER_RULES).unwrap();
    let good = json!({"total_cents": 1200, "items": [{"qty": 1}, {"qty": 3}], "email": "a@b.c"});
    assert!(failures(&rules, good).is_empty());
    let bad = json!({"total_cents": 0, "items": [{"qty": 0}], "email": "nobody"});
    assert_eq!(
        failures(&rules, bad),
        vec![
            (
                "positive_total".into(),
                "an order's total must be positive".into()
            ),
            (
                "items_have_quantities".into(),
                "`message.items.all(i, i.qty >= 1)` is false".into()
            ),
            (
                "email_looks_real".into(),
                "`!has(message.email) || message.email.matches('^[^@]+@[^@]+$')` is false".into()
            ),
        ]
    );
    let warn = &rules.rules()[2];
    assert_eq!(warn.on_failure, OnFailure::Warn);
    assert_eq!(rules.rules()[0].path.as_deref(), Some("/total_cents"));
    assert_eq!(rules.rules()[1].path.as_deref(), Some("/items"));
    assert_eq!(rules.rules()[2].path.as_deref(), Some("/email"));
}

#[test]
fn a_failure_names_the_field_the_rule_reads_most_deeply() {
    let rules = compile(
        r#"
[[rule]]
name = "positive_total"
expr = "!has(message.total) || message.total.amount > 0"

[[rule]]
name = "ends_after_start"
expr = "message.end > message.start"

[[rule]]
name = "constant"
expr = "1 < 2"
"#,
    )
    .unwrap();
    let paths: Vec<_> = rules.rules().iter().map(|r| r.path.as_deref()).collect();
    assert_eq!(paths, [Some("/total/amount"), Some("/end"), None]);
}

#[test]
fn a_rule_that_errors_or_gives_no_bool_fails_with_that_reason() {
    let rules = compile(
        r#"
[[rule]]
name = "ratio"
expr = "message.a / message.b > 1"

[[rule]]
name = "missing"
expr = "message.nowhere == 1"

[[rule]]
name = "field_not_bool"
expr = "message.a"
"#,
    )
    .unwrap();
    let found = failures(&rules, json!({"a": 4, "b": 0}));
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].1.contains("could not be evaluated"),
        "{}",
        found[0].1
    );
    assert!(
        found[1].1.contains("could not be evaluated"),
        "{}",
        found[1].1
    );
    assert!(found[2].1.contains("not a bool"), "{}", found[2].1);
}

#[test]
fn rules_that_cannot_be_are_refused_naming_file_and_rule() {
    let refused = |text: &str| compile(text).unwrap_err().message;
    let message = refused("[[rule]]\nname = \"broken\"\nexpr = \"message.total >\"\n");
    assert!(
        message.starts_with("schemas/orders/v2.rules.toml: rule `broken` does not compile"),
        "{message}"
    );
    let message = refused("[[rule]]\nname = \"sum\"\nexpr = \"message.a + 1\"\n");
    assert!(
        message.contains("rule `sum` gives a number, string or list, not a bool"),
        "{message}"
    );
    let message = refused("[[rule]]\nname = \"Bad-Name\"\nexpr = \"true\"\n");
    assert!(message.contains("not [a-z0-9_]+"), "{message}");
    let twice =
        "[[rule]]\nname = \"a\"\nexpr = \"true\"\n[[rule]]\nname = \"a\"\nexpr = \"false\"\n";
    assert!(refused(twice).contains("rule `a` is named twice"));
    let message = refused("[[rule]]\nname = \"a\"\nexpr = \"true\"\nseverity = 3\n");
    assert!(message.contains("not a valid rules file"), "{message}");
    let deep = "[[rule]]\nname = \"deep\"\nexpr = \"message.a.all(x, message.a.all(y, message.a.all(z, x == y)))\"\n";
    assert!(refused(deep).contains("nests comprehensions 3 deep, more than 2"));
    let long = format!(
        "[[rule]]\nname = \"long\"\nexpr = \"{}true\"\n",
        "true && ".repeat(600)
    );
    assert!(refused(&long).contains("characters long"));
    let pattern = "[[rule]]\nname = \"sku\"\nexpr = \"message.sku.matches('(A-')\"\n";
    let message = refused(pattern);
    assert!(
        message.contains(
            "rule `sku` does not compile: matches `(A-`, which is not a regular expression"
        ),
        "{message}"
    );
}

#[test]
fn a_message_that_would_make_a_rule_run_away_is_stopped_before_it_runs() {
    let rules = compile(
        "[[rule]]\nname = \"pairs\"\nexpr = \"message.a.all(x, message.a.all(y, x <= y || x > y))\"\n",
    )
    .unwrap();
    assert!(failures(&rules, json!({"a": [1, 2, 3]})).is_empty());
    let many: Vec<u32> = (0..5_000).collect();
    let found = failures(&rules, json!({ "a": many }));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].1.contains("limits.max_rule_cost"),
        "{}",
        found[0].1
    );
}

#[test]
fn cel_standard_functions_and_macros_are_there() {
    let rules = compile(
        r#"
[[rule]]
name = "ends_after_it_starts"
expr = "timestamp(message.ends_at) > timestamp(message.starts_at)"

[[rule]]
name = "short_lived"
expr = "timestamp(message.ends_at) - timestamp(message.starts_at) < duration('48h')"

[[rule]]
name = "strings"
expr = "message.sku.startsWith('SKU-') && message.sku.contains('-') && size(message.sku) < 20"

[[rule]]
name = "one_primary"
expr = "message.tags.exists_one(t, t == 'primary') && message.tags.filter(t, t != '').size() == size(message.tags)"
"#,
    )
    .unwrap();
    let good = json!({"starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-02T09:00:00Z",
        "sku": "SKU-7", "tags": ["primary", "x"]});
    assert_eq!(failures(&rules, good), vec![]);
    let bad = json!({"starts_at": "2026-12-03T10:00:00Z", "ends_at": "2026-12-02T09:00:00Z",
        "sku": "7", "tags": ["primary", "primary"]});
    let names: Vec<String> = failures(&rules, bad).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["ends_after_it_starts", "strings", "one_primary"]);
}
