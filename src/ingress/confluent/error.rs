//! Errors of the Confluent-compatible registry API, in Confluent's own shape and codes
//! (`{"error_code": 40401, "message": "..."}`), so its clients report them as they would
//! Confluent's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error of the Confluent-compatible registry API, in Confluent's own shape
/// (`{"error_code": 40401, "message": "..."}`), so its clients report it as they would Confluent's.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfluentError {
    pub status: StatusCode,
    pub error_code: u32,
    pub message: String,
}

impl ConfluentError {
    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    pub fn version_not_found(subject: &str, version: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }

    pub fn schema_not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 40403, message)
    }

    pub fn invalid_schema(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }

    pub fn invalid_version(version: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400, message)
    }

    /// A write: schemas change by commit, not through this API.
    pub fn read_only(source: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            format!("Sluice's registry is read-only: schemas, versions and compatibility settings change by commit to the schema repository ({source}), which every gateway then serves"),
        )
    }

    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, 50003, message)
    }

    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ConfluentError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.error_code, "message": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::CONTENT_TYPE),
        );
        response
    }
}
