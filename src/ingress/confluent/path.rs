//! The Confluent-compatible API's path extractor: a path that cannot be read is a 400 in
//! Confluent's error shape.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ConfluentError;
use crate::ingress::extract::read_path;

/// Path parameters of the Confluent-compatible API; a bad path is a [`ConfluentError`].
pub struct ConfluentPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ConfluentPath<T> {
    type Rejection = ConfluentError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        read_path(parts, state)
            .await
            .map(Self)
            .map_err(|message| ConfluentError::new(StatusCode::BAD_REQUEST, 400, message))
    }
}
