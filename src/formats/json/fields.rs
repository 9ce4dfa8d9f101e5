//! Which properties a JSON Schema lets an object have, where the schema says so plainly: an
//! object schema with `properties` and `additionalProperties: false`, and nothing that could let
//! in more (`patternProperties`, `$ref`, combinators, conditionals). What data-contract rules may
//! read is checked against it.

use serde_json::Value;

/// Keywords under which a schema may admit properties its `properties` do not list.
const OPENING: &[&str] = &[
    "patternProperties",
    "$ref",
    "$dynamicRef",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "dependentSchemas",
    "unevaluatedProperties",
];

/// Whether an instance of `schema` may have the property at `path`: `Some(false)` when a closed
/// object schema along the way does not list it, `Some(true)` when every step is listed, `None`
/// when the schema does not say plainly.
pub fn known(schema: &Value, path: &[String]) -> Option<bool> {
    let mut schema = schema;
    for name in path {
        let object = schema.as_object()?;
        if object.get("additionalProperties") != Some(&Value::Bool(false))
            || OPENING.iter().any(|keyword| object.contains_key(*keyword))
        {
            return None;
        }
        match object.get("properties").and_then(|p| p.get(name)) {
            Some(property) => schema = property,
            None => return Some(false),
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_closed_object_knows_its_properties_and_an_open_one_does_not_say() {
        let schema = json!({
            "type": "object", "additionalProperties": false,
            "properties": {
                "total": {"type": "object", "additionalProperties": false,
                          "properties": {"amount": {"type": "number"}}},
                "customer": {"$ref": "customer.json"},
                "note": {"type": "object"}
            }
        });
        assert_eq!(known(&schema, &path(&["total"])), Some(true));
        assert_eq!(known(&schema, &path(&["total", "amount"])), Some(true));
        assert_eq!(known(&schema, &path(&["totl"])), Some(false));
        assert_eq!(known(&schema, &path(&["total", "amonut"])), Some(false));
        assert_eq!(known(&schema, &path(&["customer", "email"])), None);
        assert_eq!(known(&schema, &path(&["note", "anything"])), None);
        let open = json!({"type": "object", "properties": {"a": {}}});
        assert_eq!(known(&open, &path(&["b"])), None);
        let patterned = json!({"additionalProperties": false, "patternProperties": {"^x": {}}});
        assert_eq!(known(&patterned, &path(&["x1"])), None);
    }
}
