//! The Confluent Schema Registry read API over the serving snapshot, so Confluent serializers,
//! deserializers, consoles and tools work against Sluice unchanged.
//!
//! Subjects are schema names; `<station>-value` (and `-key`), the names Confluent's default
//! `TopicNameStrategy` asks for, resolve to the station's schema; the files versions refer to are
//! subjects of their own, with their schema references ([`subjects`]). Ids are Sluice's global
//! ids. Registering a schema that is already a published version answers its id, as Confluent
//! does; every other write answers 405 and points to the git repository, where schemas change.
//! Answers and errors use Confluent's JSON shapes and its `application/vnd.schemaregistry.v1+json`
//! type.

mod candidates;
mod compatibility;
mod error;
mod path;
mod reads;
mod subjects;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::http::rights::{Right, Routes};
use crate::pipeline::Pipeline;
use crate::registry::Snapshot;
pub use error::ConfluentError;

/// Confluent's media type for registry answers.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The `schemaType` Confluent assumes when none is written (and never writes out).
pub const DEFAULT_SCHEMA_TYPE: &str = "AVRO";

type Shared = State<Arc<Pipeline>>;
type Answer = Result<Response, ConfluentError>;

/// The registry API's routes, added to the HTTP API's: every one needs a known token.
#[rustfmt::skip]
pub fn routes(routes: Routes) -> Routes {
    use Method as M;
    use Right::Read;
    use candidates::{lookup, read_only, register};
    use compatibility::{compatibility_with_all, compatibility_with_version};
    use reads::*;
    routes
        .at(M::GET, "/subjects", Read, subjects)
        .at(M::POST, "/subjects/{subject}", Read, lookup)
        .at(M::DELETE, "/subjects/{subject}", Read, read_only)
        .at(M::GET, "/subjects/{subject}/versions", Read, versions)
        .at(M::POST, "/subjects/{subject}/versions", Read, register)
        .at(M::GET, "/subjects/{subject}/versions/{version}", Read, version)
        .at(M::DELETE, "/subjects/{subject}/versions/{version}", Read, read_only)
        .at(M::GET, "/subjects/{subject}/versions/{version}/schema", Read, version_text)
        .at(M::GET, "/subjects/{subject}/versions/{version}/referencedby", Read, referenced_by)
        .at(M::GET, "/schemas/ids/{id}", Read, schema_by_id)
        .at(M::GET, "/schemas/ids/{id}/schema", Read, schema_text_by_id)
        .at(M::GET, "/schemas/ids/{id}/versions", Read, versions_of_id)
        .at(M::GET, "/schemas/ids/{id}/subjects", Read, subjects_of_id)
        .at(M::GET, "/schemas/types", Read, types)
        .at(M::POST, "/compatibility/subjects/{subject}/versions/{version}", Read, compatibility_with_version)
        .at(M::POST, "/compatibility/subjects/{subject}/versions", Read, compatibility_with_all)
        .at(M::GET, "/config", Read, global_config)
        .at(M::PUT, "/config", Read, read_only)
        .at(M::GET, "/config/{subject}", Read, subject_config)
        .at(M::PUT, "/config/{subject}", Read, read_only)
        .at(M::DELETE, "/config/{subject}", Read, read_only)
        .at(M::GET, "/mode", Read, mode)
        .at(M::PUT, "/mode", Read, read_only)
        .at(M::GET, "/associations/resources/{namespace}/{resource}", Read, associations)
}

fn reply(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn text(body: &str) -> Response {
    let mut response = body.to_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The serving snapshot, or 503 while nothing is loaded.
fn snapshot(pipeline: &Pipeline) -> Result<Arc<Snapshot>, ConfluentError> {
    match pipeline.registry().not_ready_reason() {
        Some(reason) => Err(ConfluentError::not_ready(reason)),
        None => Ok(pipeline.registry().snapshot()),
    }
}
