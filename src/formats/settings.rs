//! A schema's settings, from its folder's optional `schema.toml`: which compatibility rule its
//! versions follow, and the per-format keys that change how a version compiles (the Protobuf
//! message type, Avro's JSON encoding, GraphQL's root type and bounds). Plain data: the formats
//! read the keys that concern them, the registry the compatibility mode.

use serde::{Deserialize, Serialize};

/// Settings of a schema from its folder's optional `schema.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaSettings {
    pub compatibility: Compatibility,
    /// Protobuf: the message type that judges payloads (fully qualified, e.g. `acme.Order`);
    /// defaults to the file's only top-level message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Protobuf: accept fields the schema does not know (a violation by default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_unknown_fields: bool,
    /// Avro: how JSON payloads are written, `"plain"` (unions unwrapped) or `"avro-json"`.
    #[serde(skip_serializing_if = "is_default")]
    pub encoding: super::avro::JsonEncoding,
    /// GraphQL: the type JSON data must match; without it payloads are executable documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_type: Option<String>,
    /// GraphQL: deepest nesting a document may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
    /// GraphQL: most lexical tokens a document may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Compatibility modes, in Confluent Schema Registry's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    /// The mode as written in `schema.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Backward => "backward",
            Self::BackwardTransitive => "backward_transitive",
            Self::Forward => "forward",
            Self::ForwardTransitive => "forward_transitive",
            Self::Full => "full",
            Self::FullTransitive => "full_transitive",
        }
    }
}
