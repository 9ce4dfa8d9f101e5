//! Path extractors for the HTTP front ends whose rejections are each front end's own JSON error
//! rather than axum's plain text: a path segment that is not UTF-8 (`%FF`) or does not fit is a
//! 400 with a code and a sentence like every other bad input. The `/v1` API's is here; the
//! Confluent-compatible API's (`confluent/path.rs`) reads the path with [`read_path`] too.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// Path parameters of the `/v1` API; a bad path is an [`ApiError`].
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        read_path(parts, state)
            .await
            .map(Self)
            .map_err(ApiError::BadRequest)
    }
}

/// The path parameters, or a sentence saying why they cannot be read.
pub(super) async fn read_path<S: Send + Sync, T: DeserializeOwned + Send>(
    parts: &mut Parts,
    state: &S,
) -> Result<T, String> {
    Path::<T>::from_request_parts(parts, state)
        .await
        .map(|Path(params)| params)
        .map_err(|rejection: PathRejection| {
            format!("the URL path cannot be read: {}", rejection.body_text())
        })
}
