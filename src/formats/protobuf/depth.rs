//! How deep Protobuf messages nest: the deepest a message type allows (known at compile time,
//! unbounded for recursive types) and the depth of one decoded message, for
//! `limits.max_protobuf_depth`. Only types that can nest past the limit are measured per message.

use std::collections::HashMap;

use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};

/// The deepest nesting `message` allows, counting itself as 1; `None` when a type reaches itself
/// (recursive types nest as deep as a payload makes them). Each type is measured once, so types
/// that many paths reach (a deep import tree) cost no more than types one path reaches.
pub fn type_depth(message: &MessageDescriptor) -> Option<usize> {
    type_depth_within(message, &mut HashMap::new())
}

/// A type being measured (`Visiting`: it is on the current path) or measured.
enum Measure {
    Visiting,
    Done(Option<usize>),
}

fn type_depth_within(
    message: &MessageDescriptor,
    measured: &mut HashMap<String, Measure>,
) -> Option<usize> {
    match measured.get(message.full_name()) {
        // Reached again from inside itself: recursive. A type that reaches a recursive one nests
        // as deep as a payload makes it too.
        Some(Measure::Visiting) => return None,
        Some(Measure::Done(depth)) => return *depth,
        None => {}
    }
    measured.insert(message.full_name().to_owned(), Measure::Visiting);
    let mut deepest = Some(0);
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
            let depth = type_depth_within(&nested, measured);
            deepest = deepest
                .zip(depth)
                .map(|(deepest, depth)| deepest.max(depth));
        }
    }
    let depth = deepest.map(|deepest| deepest + 1);
    measured.insert(message.full_name().to_owned(), Measure::Done(depth));
    depth
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
