//! The fast path for binary Protobuf: checks a payload against its message type by walking the
//! wire format once, without building a `DynamicMessage` (no allocation, no field map). It owns
//! the question "is this payload certainly valid?" and nothing else: a `false` sends the payload
//! to the decoding path in `mod.rs`, which is the authority and explains every violation.
//!
//! It answers `true` only where decoding would succeed and find nothing to refuse: every tag and
//! wire type well formed, each known field's wire type matching its kind (repeated numeric fields
//! packed or not), lengths inside the payload, `string`s valid UTF-8, nested messages no deeper
//! than the limit, every proto2 `required` field present in its own occurrence of the message,
//! and no unknown field unless the schema allows them. Types this walk does not model — proto2
//! groups, messages with extension ranges, more than 64 required fields in one message — get no
//! plan, and their payloads always take the decoding path.

use std::collections::HashMap;
use std::sync::Arc;

use prost::encoding::{decode_key, decode_varint, WireType};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

/// What the walk knows of every message type of one descriptor pool, shared by every version
/// compiled into that pool.
#[derive(Debug)]
pub struct PoolPlan {
    messages: Vec<MessagePlan>,
    /// Whether the walk models the type and every type reachable from it.
    modelled: Vec<bool>,
    index_of: HashMap<String, usize>,
}

/// The walk for one message type: its place in its pool's plan.
#[derive(Debug)]
pub struct WirePlan {
    pool: Arc<PoolPlan>,
    root: usize,
    allow_unknown_fields: bool,
}

#[derive(Debug, Default)]
struct MessagePlan {
    /// Field numbers, ascending; `fields[i]` belongs to `numbers[i]`.
    numbers: Box<[u32]>,
    fields: Box<[FieldPlan]>,
    /// One bit per `required` field, set in [`FieldPlan::required_bit`].
    required_mask: u64,
    /// A map field's synthetic entry: decoding skips unknown fields in it and it is not a level
    /// of nesting.
    is_map_entry: bool,
}

#[derive(Debug, Clone, Copy)]
struct FieldPlan {
    value: ValuePlan,
    /// A `repeated` scalar: numeric ones may also come packed.
    repeated: bool,
    required_bit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValuePlan {
    Varint,
    Fixed32,
    Fixed64,
    Utf8,
    Bytes,
    /// A nested message, by index in [`PoolPlan::messages`].
    Message(usize),
    /// A map field's entry, by index in [`PoolPlan::messages`].
    MapEntry(usize),
}

impl ValuePlan {
    fn is_packable(self) -> bool {
        matches!(self, Self::Varint | Self::Fixed32 | Self::Fixed64)
    }

    fn nested(self) -> Option<usize> {
        match self {
            Self::Message(index) | Self::MapEntry(index) => Some(index),
            _ => None,
        }
    }
}

impl PoolPlan {
    /// The plan of every message type of `pool`.
    pub fn build(pool: &DescriptorPool) -> Arc<Self> {
        let all: Vec<MessageDescriptor> = pool.all_messages().collect();
        let index_of: HashMap<String, usize> = all
            .iter()
            .enumerate()
            .map(|(index, message)| (message.full_name().to_owned(), index))
            .collect();
        let mut modelled = vec![true; all.len()];
        let messages: Vec<MessagePlan> = all
            .iter()
            .enumerate()
            .map(|(index, message)| {
                message_plan(message, &index_of).unwrap_or_else(|| {
                    modelled[index] = false;
                    MessagePlan::default()
                })
            })
            .collect();
        let mut plan = Self {
            messages,
            modelled,
            index_of,
        };
        plan.spread_unmodelled();
        Arc::new(plan)
    }

    /// Marks every type that reaches a type the walk does not model as not modelled either.
    fn spread_unmodelled(&mut self) {
        let mut referrers: Vec<Vec<usize>> = vec![Vec::new(); self.messages.len()];
        for (index, message) in self.messages.iter().enumerate() {
            for nested in message.fields.iter().filter_map(|f| f.value.nested()) {
                referrers[nested].push(index);
            }
        }
        let mut pending: Vec<usize> = (0..self.messages.len())
            .filter(|&index| !self.modelled[index])
            .collect();
        while let Some(index) = pending.pop() {
            for &referrer in &referrers[index] {
                if std::mem::replace(&mut self.modelled[referrer], false) {
                    pending.push(referrer);
                }
            }
        }
    }
}

/// What the walk knows of `message`, or `None` when it uses something the walk does not model.
fn message_plan(
    message: &MessageDescriptor,
    index_of: &HashMap<String, usize>,
) -> Option<MessagePlan> {
    if message.extension_ranges().len() > 0 {
        return None;
    }
    let mut fields: Vec<_> = message.fields().collect();
    fields.sort_by_key(|field| field.number());
    let mut required_mask = 0u64;
    let mut plans = Vec::with_capacity(fields.len());
    for field in &fields {
        let nested = |nested: &MessageDescriptor| index_of[nested.full_name()];
        let value = match field.kind() {
            Kind::Message(_) if field.is_group() => return None,
            Kind::Message(entry) if field.is_map() => ValuePlan::MapEntry(nested(&entry)),
            Kind::Message(message) => ValuePlan::Message(nested(&message)),
            Kind::String => ValuePlan::Utf8,
            Kind::Bytes => ValuePlan::Bytes,
            Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => ValuePlan::Fixed32,
            Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => ValuePlan::Fixed64,
            Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Bool
            | Kind::Enum(_) => ValuePlan::Varint,
        };
        let required_bit = if field.is_required() {
            let count = required_mask.count_ones();
            if count == u64::BITS {
                return None;
            }
            let bit = 1 << count;
            required_mask |= bit;
            bit
        } else {
            0
        };
        plans.push(FieldPlan {
            value,
            repeated: field.is_list(),
            required_bit,
        });
    }
    Some(MessagePlan {
        numbers: fields.iter().map(|field| field.number()).collect(),
        fields: plans.into(),
        required_mask,
        is_map_entry: message.is_map_entry(),
    })
}

impl WirePlan {
    /// The walk for `root`, a message type of the pool `pool` plans, or `None` when it or a type
    /// reachable from it uses something the walk does not model.
    pub fn new(
        pool: &Arc<PoolPlan>,
        root: &MessageDescriptor,
        allow_unknown_fields: bool,
    ) -> Option<Self> {
        let root = *pool.index_of.get(root.full_name())?;
        pool.modelled[root].then(|| Self {
            pool: pool.clone(),
            root,
            allow_unknown_fields,
        })
    }

    /// Whether `payload` is certainly a valid message nesting at most `max_depth` levels.
    pub fn accepts(&self, payload: &[u8], max_depth: usize) -> bool {
        self.message_accepts(self.root, payload, max_depth)
    }

    /// `levels_left` counts this message; 0 means it is one level too deep.
    fn message_accepts(&self, index: usize, mut buf: &[u8], levels_left: usize) -> bool {
        if levels_left == 0 {
            return false;
        }
        let plan = &self.pool.messages[index];
        let mut required_seen = 0u64;
        while !buf.is_empty() {
            let Ok((number, wire_type)) = decode_key(&mut buf) else {
                return false;
            };
            let Ok(position) = plan.numbers.binary_search(&number) else {
                let skippable = self.allow_unknown_fields || plan.is_map_entry;
                if !skippable || !skip_unknown(wire_type, &mut buf) {
                    return false;
                }
                continue;
            };
            let field = plan.fields[position];
            required_seen |= field.required_bit;
            let accepted = if field.repeated
                && field.value.is_packable()
                && wire_type == WireType::LengthDelimited
            {
                match take_length_delimited(&mut buf) {
                    Some(mut packed) => {
                        let mut all = true;
                        while all && !packed.is_empty() {
                            all = scalar_accepts(field.value, &mut packed);
                        }
                        all
                    }
                    None => false,
                }
            } else {
                self.value_accepts(field.value, wire_type, &mut buf, levels_left)
            };
            if !accepted {
                return false;
            }
        }
        required_seen & plan.required_mask == plan.required_mask
    }

    fn value_accepts(
        &self,
        value: ValuePlan,
        wire_type: WireType,
        buf: &mut &[u8],
        levels_left: usize,
    ) -> bool {
        match value {
            ValuePlan::Message(index) => {
                wire_type == WireType::LengthDelimited
                    && take_length_delimited(buf)
                        .is_some_and(|body| self.message_accepts(index, body, levels_left - 1))
            }
            // Decoding reads a map entry as length-delimited whatever its key's wire type says
            // (prost-reflect 0.16); the walk does the same so the two agree.
            ValuePlan::MapEntry(index) => take_length_delimited(buf)
                .is_some_and(|body| self.message_accepts(index, body, levels_left)),
            scalar => wire_type == scalar_wire_type(scalar) && scalar_accepts(scalar, buf),
        }
    }
}

fn scalar_wire_type(value: ValuePlan) -> WireType {
    match value {
        ValuePlan::Varint => WireType::Varint,
        ValuePlan::Fixed32 => WireType::ThirtyTwoBit,
        ValuePlan::Fixed64 => WireType::SixtyFourBit,
        _ => WireType::LengthDelimited,
    }
}

/// Consumes one scalar of `value`'s kind (its key already read).
fn scalar_accepts(value: ValuePlan, buf: &mut &[u8]) -> bool {
    match value {
        ValuePlan::Varint => decode_varint(buf).is_ok(),
        ValuePlan::Fixed32 => take(buf, 4).is_some(),
        ValuePlan::Fixed64 => take(buf, 8).is_some(),
        ValuePlan::Utf8 => {
            take_length_delimited(buf).is_some_and(|s| std::str::from_utf8(s).is_ok())
        }
        ValuePlan::Bytes => take_length_delimited(buf).is_some(),
        ValuePlan::Message(_) | ValuePlan::MapEntry(_) => false,
    }
}

/// Skips an unknown field's value; groups are left to the decoding path.
fn skip_unknown(wire_type: WireType, buf: &mut &[u8]) -> bool {
    match wire_type {
        WireType::Varint => decode_varint(buf).is_ok(),
        WireType::ThirtyTwoBit => take(buf, 4).is_some(),
        WireType::SixtyFourBit => take(buf, 8).is_some(),
        WireType::LengthDelimited => take_length_delimited(buf).is_some(),
        WireType::StartGroup | WireType::EndGroup => false,
    }
}

fn take_length_delimited<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = decode_varint(buf).ok()?;
    take(buf, usize::try_from(length).ok()?)
}

fn take<'a>(buf: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
    if buf.len() < count {
        return None;
    }
    let (head, rest) = buf.split_at(count);
    *buf = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message as _;
    use prost_reflect::DynamicMessage;

    use super::super::{compile, ProtobufSchema};
    use crate::formats::SchemaSettings;
    use crate::formats::{MessageLimits, Normalize, PayloadEncoding};

    const ORDERS: &str = r#"syntax = "proto3"; package t;
        enum Color { RED = 0; BLUE = 1; }
        message Item { string sku = 1; int32 qty = 2; repeated fixed32 codes = 3; }
        message Order {
          string id = 1; repeated Item items = 2; repeated int64 counts = 3; double price = 4;
          bytes blob = 5; Color color = 6; sint32 delta = 7; fixed64 stamp = 8; Order parent = 9;
          bool flag = 10; float ratio = 11; map<string, Item> by_sku = 12; map<int32, string> names = 13;
        }"#;

    const LEGACY: &str = r#"syntax = "proto2"; package t;
        message Inner { required string name = 1; optional int32 n = 2; }
        message Outer { required int32 id = 1; repeated Inner inner = 2; optional Inner single = 3; }"#;

    fn schema(source: &str, message: &str, allow_unknown_fields: bool) -> ProtobufSchema {
        let settings = SchemaSettings {
            message: Some(message.into()),
            allow_unknown_fields,
            ..SchemaSettings::default()
        };
        compile(&[("s/v1.proto", source)], settings).unwrap()
    }

    fn encode(schema: &ProtobufSchema, json: &str) -> Vec<u8> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        DynamicMessage::deserialize(schema.message.clone(), &mut deserializer)
            .unwrap()
            .encode_to_vec()
    }

    /// Every truncation, byte replacement and byte insertion of `payload`.
    fn mutations(payload: &[u8]) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = (0..payload.len()).map(|i| payload[..i].to_vec()).collect();
        for i in 0..payload.len() {
            let b = payload[i];
            for replacement in [
                0x00,
                0x01,
                0x7F,
                0x80,
                0xFF,
                b ^ 0x01,
                b ^ 0x02,
                b ^ 0x04,
                b ^ 0x07,
                b ^ 0x08,
                b.wrapping_add(1),
                b.wrapping_sub(1),
            ] {
                let mut changed = payload.to_vec();
                changed[i] = replacement;
                all.push(changed);
            }
            for inserted in [0x00, 0x08, 0x0B, 0x0C, 0x80, 0xFF, 0xC8, 0x01] {
                let mut changed = payload.to_vec();
                changed.insert(i, inserted);
                all.push(changed);
            }
        }
        all
    }

    /// Asserts the walk and decoding agree on every mutation of every payload, and returns how
    /// many mutations decoding accepted.
    fn assert_agrees(
        schema: &ProtobufSchema,
        payloads: &[Vec<u8>],
        limits: &MessageLimits,
    ) -> usize {
        let plan = schema.wire_plan.as_ref().expect("the type has a plan");
        let mut accepted = 0;
        for original in payloads {
            assert!(
                plan.accepts(original, limits.protobuf_depth),
                "{original:?}"
            );
            for payload in mutations(original) {
                let bytes = Bytes::from(payload.clone());
                let decoded = schema
                    .judge_decoded(
                        &bytes,
                        &PayloadEncoding::Protobuf,
                        Normalize::AsSent,
                        limits,
                    )
                    .is_ok();
                let walked = plan.accepts(&payload, limits.protobuf_depth);
                assert_eq!(
                    walked, decoded,
                    "walk {walked}, decoding {decoded}: {payload:02x?}"
                );
                accepted += usize::from(decoded);
            }
        }
        accepted
    }

    #[test]
    fn the_walk_agrees_with_decoding_on_mutated_proto3_messages() {
        let limits = MessageLimits {
            protobuf_depth: 3,
            ..MessageLimits::default()
        };
        for allow_unknown_fields in [false, true] {
            let orders = schema(ORDERS, "t.Order", allow_unknown_fields);
            let payloads = vec![
                encode(
                    &orders,
                    r#"{"id":"o-1","items":[{"sku":"a","qty":2,"codes":[1,2]},{"sku":"é","qty":-1}],
                        "counts":[1,300,-5],"price":1.5,"blob":"AAEC","color":"BLUE","delta":-3,
                        "stamp":"7","parent":{"id":"p","parent":{"id":"pp"}},"flag":true,"ratio":0.5}"#,
                ),
                encode(
                    &orders,
                    r#"{"byS ku":{"a":{"sku":"a","qty":1}},"names":{"7":"seven","-1":"x"}}"#
                        .replace("byS ku", "bySku")
                        .as_str(),
                ),
                // `counts` unpacked: field 3, varint, twice.
                vec![0x18, 0x01, 0x18, 0x96, 0x01],
            ];
            let accepted = assert_agrees(&orders, &payloads, &limits);
            assert!(accepted > 100, "only {accepted} mutations decoded");
        }
    }

    #[test]
    fn the_walk_agrees_with_decoding_on_required_fields() {
        let legacy = schema(LEGACY, "t.Outer", false);
        let payloads = vec![encode(
            &legacy,
            r#"{"id":5,"inner":[{"name":"a"},{"name":"b","n":2}],"single":{"name":"s"}}"#,
        )];
        let accepted = assert_agrees(&legacy, &payloads, &MessageLimits::default());
        assert!(accepted > 50, "only {accepted} mutations decoded");
    }

    #[test]
    fn too_deep_missing_required_and_unknown_fields_are_not_accepted() {
        let orders = schema(ORDERS, "t.Order", false);
        let plan = orders.wire_plan.as_ref().unwrap();
        let deep = encode(&orders, r#"{"parent":{"parent":{"parent":{"id":"x"}}}}"#);
        assert!(plan.accepts(&deep, 4));
        assert!(!plan.accepts(&deep, 3));
        // field 99, varint 1
        assert!(!plan.accepts(&[0x98, 0x06, 0x01], 64));
        let legacy = schema(LEGACY, "t.Outer", false);
        let without_name = encode(&legacy, r#"{"id":1,"inner":[{"n":1}]}"#);
        assert!(!legacy
            .wire_plan
            .as_ref()
            .unwrap()
            .accepts(&without_name, 64));
    }

    #[test]
    fn groups_and_extension_ranges_get_no_plan() {
        let groups = r#"syntax = "proto2"; package t;
            message G { optional group Part = 1 { optional int32 a = 2; } }"#;
        assert!(schema(groups, "t.G", false).wire_plan.is_none());
        let extensible = r#"syntax = "proto2"; package t; message E { extensions 100 to 200; }"#;
        assert!(schema(extensible, "t.E", false).wire_plan.is_none());
    }

    #[test]
    fn a_type_reaching_an_unmodelled_one_gets_no_plan_and_its_neighbours_do() {
        let text = r#"syntax = "proto2"; package t;
            message E { extensions 100 to 200; }
            message Holder { optional Middle m = 1; }
            message Middle { optional E e = 1; }
            message Plain { optional string s = 1; }"#;
        assert!(schema(text, "t.Holder", false).wire_plan.is_none());
        assert!(schema(text, "t.Middle", false).wire_plan.is_none());
        let plain = schema(text, "t.Plain", false);
        let plan = plain
            .wire_plan
            .as_ref()
            .expect("Plain reaches nothing unmodelled");
        assert!(plan.accepts(&[0x0A, 0x01, b'x'], 64));
    }
}
