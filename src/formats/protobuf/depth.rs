//! How deep Protobuf messages nest: the deepest a message type allows (known at compile time,
//! unbounded for recursive types) and the depth of one decoded message, for
//! `limits.max_protobuf_depth`. Only types that can nest past the limit are measured per message.

use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};

/// The deepest nesting `message` allows, counting itself as 1; `None` when a type reaches itself
/// (recursive types nest as deep as a payload makes them).
pub fn type_depth(message: &MessageDescriptor) -> Option<usize> {
    type_depth_within(message, &mut Vec::new())
}

fn type_depth_within(message: &MessageDescriptor, path: &mut Vec<String>) -> Option<usize> {
    if path.iter().any(|name| name == message.full_name()) {
        return None;
    }
    path.push(message.full_name().to_owned());
    let mut deepest = 0;
    for field in message.fields() {
        let nested = match field.kind() {
            // A map field's entry is a synthetic message; its value is what nests.
            Kind::Message(entry) if field.is_map() => match entry.map_entry_value_field().kind() {
                Kind::Message(value) => Some(value),
                _ => None,
            },
            Kind::Message(nested) => Some(nested),
            _ => None,
        };
        if let Some(nested) = nested {
            match type_depth_within(&nested, path) {
                Some(depth) => deepest = deepest.max(depth),
                None => {
                    path.pop();
                    return None;
                }
            }
        }
    }
    path.pop();
    Some(deepest + 1)
}

/// Whether `message` nests deeper than `max` levels (itself being 1).
pub fn deeper_than(message: &DynamicMessage, max: usize) -> bool {
    if max == 0 {
        return true;
    }
    message
        .fields()
        .any(|(_, value)| value_deeper_than(value, max - 1))
}

fn value_deeper_than(value: &Value, max: usize) -> bool {
    match value {
        Value::Message(nested) => deeper_than(nested, max),
        Value::List(items) => items.iter().any(|item| value_deeper_than(item, max)),
        Value::Map(entries) => entries.values().any(|item| value_deeper_than(item, max)),
        _ => false,
    }
}
