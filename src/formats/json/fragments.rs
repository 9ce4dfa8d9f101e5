//! `$ref` fragments as other validators read them. Schema generators write JSON Pointers holding
//! characters a URI may not (`#/definitions/TopLevel<FacetedUnitSpec>`,
//! `#/definitions/vector_common::id::Inputs<alloc::string::String>`, spaces), and validators such
//! as ajv and python-jsonschema resolve them as written. Before a document is compiled, each such
//! character in a `$ref`'s fragment is percent-encoded — the form RFC 6901 §6 gives a pointer in a
//! URI fragment — and the resolver decodes it again, so the pointer means what its author wrote.
//! Percent-encodings already written stay as they are.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::Value;

/// What a URI fragment may not hold (RFC 3986 allows unreserved characters, sub-delimiters, `:`,
/// `@`, `/`, `?` and percent-encodings); non-ASCII characters are encoded too.
const NOT_IN_FRAGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Encodes the fragment of every `$ref` in `document` that a URI could not hold as written.
pub fn encode_ref_fragments(document: &mut Value) {
    let mut pending = vec![document];
    while let Some(node) = pending.pop() {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get_mut("$ref") {
                    if let Some(encoded) = encoded(reference) {
                        *reference = encoded;
                    }
                }
                pending.extend(map.values_mut());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
}

/// `reference` with its fragment encoded, when it needs to be.
fn encoded(reference: &str) -> Option<String> {
    let (base, fragment) = reference.split_once('#')?;
    let bytes = fragment.as_bytes();
    let lone_percent = |at: usize| {
        bytes
            .get(at + 1..at + 3)
            .is_none_or(|hex| !hex.iter().all(u8::is_ascii_hexdigit))
    };
    let encodes = |text: &str| {
        let encoded: std::borrow::Cow<'_, str> = utf8_percent_encode(text, NOT_IN_FRAGMENT).into();
        matches!(encoded, std::borrow::Cow::Owned(_))
    };
    let needs = encodes(fragment)
        || bytes
            .iter()
            .enumerate()
            .any(|(at, b)| *b == b'%' && lone_percent(at));
    if !needs {
        return None;
    }
    let mut out = String::with_capacity(reference.len() + 16);
    out.push_str(base);
    out.push('#');
    for (at, piece) in fragment.split('%').enumerate() {
        if at > 0 {
            // The `%` before `piece`: kept when it starts an encoding, itself encoded when not.
            let starts_encoding =
                piece.len() >= 2 && piece.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit);
            out.push_str(if starts_encoding { "%" } else { "%25" });
        }
        out.extend(utf8_percent_encode(piece, NOT_IN_FRAGMENT));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_a_uri_cannot_hold_is_encoded() {
        assert_eq!(
            encoded("#/definitions/TopLevel<FacetedUnitSpec>").as_deref(),
            Some("#/definitions/TopLevel%3CFacetedUnitSpec%3E")
        );
        assert_eq!(
            encoded("other.json#/$defs/Parameter Node|x").as_deref(),
            Some("other.json#/$defs/Parameter%20Node%7Cx")
        );
        assert_eq!(encoded("#/definitions/a::b%20c"), None);
        assert_eq!(
            encoded("#/definitions/100%").as_deref(),
            Some("#/definitions/100%25")
        );
        assert_eq!(encoded("#/definitions/plain"), None);
        assert_eq!(encoded("common.json"), None);
        let mut document = json!({"$ref": "#/d/a b", "properties": {"$ref": {"type": "string"}}});
        encode_ref_fragments(&mut document);
        assert_eq!(document["$ref"], "#/d/a%20b");
        assert_eq!(document["properties"]["$ref"]["type"], "string");
    }
}
