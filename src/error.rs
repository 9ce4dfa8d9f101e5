//! Every error a client can receive, and the one place that decides its status code, its `error`
//! code and its JSON body — and, for gRPC, its status code and rich error details. Handlers of
//! both front ends return [`ApiError`]; they never pick a status themselves.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use crate::backends::BackendError;
use crate::formats::Violation;
use crate::registry::stations::Accept;

/// How long a client is asked to wait before retrying when a backend is unavailable
/// (`Retry-After`, gRPC's `google.rpc.RetryInfo`).
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// The `domain` of every `google.rpc.ErrorInfo` Sluice sends.
const ERROR_DOMAIN: &str = "sluice";

/// Why a message was judged invalid, as reported to the producer.
#[derive(Debug, Clone, Serialize)]
pub struct ViolationReport {
    pub schema: String,
    pub version: u32,
    pub violations: Vec<Violation>,
    /// Where the message was dead-lettered, if the station has a DLQ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_id: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("no station named `{0}`")]
    UnknownStation(String),
    #[error("no schema named `{0}`")]
    UnknownSchema(String),
    #[error("schema `{schema}` has no version {version}")]
    SchemaVersionNotFound { schema: String, version: u32 },
    #[error("schema `{schema}` has no version {version}; its newest is {newest}")]
    UnknownSchemaVersion {
        schema: String,
        version: u32,
        newest: u32,
    },
    #[error("station `{station}` accepts schema versions \"{accept}\", not version {version}")]
    VersionNotAccepted {
        station: String,
        accept: Accept,
        version: u32,
    },
    #[error("message does not match schema `{}` version {}", .0.schema, .0.version)]
    SchemaViolation(Box<ViolationReport>),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("batch has {count} messages; the limit is {limit}")]
    TooManyMessages { count: usize, limit: usize },
    #[error("station `{station}` judges {format} messages; send Content-Type: {expected}")]
    UnsupportedMediaType {
        station: String,
        format: &'static str,
        expected: &'static str,
    },
    #[error("station `{station}` is stored on {backend}; consume it from {backend} directly")]
    NotConsumable {
        station: String,
        backend: &'static str,
    },
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("station `{station}` has no dead letter {id}")]
    DeadLetterNotFound { station: String, id: String },
    #[error("dead letter {id} of station `{station}` was already replayed, to offset {offset}")]
    AlreadyReplayed {
        station: String,
        id: u64,
        offset: u64,
    },
    #[error("{0}")]
    RegistryNotReady(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "another request with this Idempotency-Key was being stored and did not finish; retry"
    )]
    IdempotencyKeyAbandoned,
    #[error("token `{token}` is over its request rate; retry in {retry_after_seconds} s")]
    RateLimited {
        token: String,
        retry_after_seconds: u64,
    },
    #[error("the schema source cannot be read: {0}")]
    SourceUnavailable(String),
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("the request was not received and answered within {} (limits.request_timeout); a produce may be retried with the same Idempotency-Key", humantime::format_duration(*.limit))]
    RequestTimeout { limit: std::time::Duration },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownStation(_)
            | Self::UnknownSchema(_)
            | Self::SchemaVersionNotFound { .. }
            | Self::DeadLetterNotFound { .. }
            | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::UnknownSchemaVersion { .. }
            | Self::VersionNotAccepted { .. }
            | Self::BadRequest(_)
            | Self::NotConsumable { .. } => StatusCode::BAD_REQUEST,
            Self::SchemaViolation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } | Self::TooManyMessages { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RegistryNotReady(_) | Self::SourceUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::IdempotencyKeyAbandoned => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Backend(BackendError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Backend(BackendError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::AlreadyReplayed { .. } => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The stable machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownStation(_) => "unknown_station",
            Self::UnknownSchema(_) => "unknown_schema",
            Self::SchemaVersionNotFound { .. } => "unknown_schema_version",
            Self::UnknownSchemaVersion { .. } => "unknown_schema_version",
            Self::VersionNotAccepted { .. } => "schema_version_not_accepted",
            Self::SchemaViolation(_) => "schema_violation",
            Self::BadRequest(_) => "bad_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooManyMessages { .. } => "too_many_messages",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::NotConsumable { .. } => "not_consumable",
            Self::Backend(BackendError::Unavailable { .. }) => "backend_unavailable",
            Self::Backend(BackendError::Corrupt { .. }) => "storage_corrupt",
            Self::DeadLetterNotFound { .. } => "unknown_dead_letter",
            Self::AlreadyReplayed { .. } => "already_replayed",
            Self::RegistryNotReady(_) => "registry_not_ready",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::IdempotencyKeyAbandoned => "idempotency_key_abandoned",
            Self::RateLimited { .. } => "rate_limited",
            Self::SourceUnavailable(_) => "registry_source_unavailable",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout { .. } => "request_timeout",
        }
    }

    /// The JSON body: `error` code, `message` sentence, and details where there are any.
    pub fn body(&self) -> Value {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let Self::SchemaViolation(report) = self {
            if let (Value::Object(body), Ok(Value::Object(details))) =
                (&mut body, serde_json::to_value(report))
            {
                body.extend(details);
            }
        }
        body
    }
}

impl ApiError {
    /// The gRPC status code: the same decision as [`ApiError::status`], in gRPC's vocabulary.
    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::UnknownStation(_)
            | Self::UnknownSchema(_)
            | Self::SchemaVersionNotFound { .. }
            | Self::DeadLetterNotFound { .. }
            | Self::NotFound(_) => Code::NotFound,
            Self::UnknownSchemaVersion { .. }
            | Self::VersionNotAccepted { .. }
            | Self::BadRequest(_)
            | Self::SchemaViolation(_)
            | Self::UnsupportedMediaType { .. } => Code::InvalidArgument,
            Self::NotConsumable { .. } => Code::FailedPrecondition,
            Self::PayloadTooLarge { .. } | Self::TooManyMessages { .. } => Code::ResourceExhausted,
            Self::RegistryNotReady(_)
            | Self::SourceUnavailable(_)
            | Self::Backend(BackendError::Unavailable { .. }) => Code::Unavailable,
            Self::Backend(BackendError::Corrupt { .. }) => Code::Internal,
            Self::Unauthorized(_) => Code::Unauthenticated,
            Self::Forbidden(_) => Code::PermissionDenied,
            Self::IdempotencyKeyAbandoned => Code::Aborted,
            Self::RateLimited { .. } => Code::ResourceExhausted,
            Self::AlreadyReplayed { .. } => Code::AlreadyExists,
            Self::MethodNotAllowed => Code::Unimplemented,
            Self::RequestTimeout { .. } => Code::DeadlineExceeded,
        }
    }

    /// The gRPC status: code, sentence, and details — a `google.rpc.ErrorInfo` carrying the
    /// `error` code (and, for schema violations, schema, version and DLQ id), a
    /// `google.rpc.BadRequest` with one field violation per problem, and a `google.rpc.RetryInfo`
    /// when retrying later can succeed.
    pub fn to_grpc_status(&self) -> tonic::Status {
        use tonic_types::{ErrorDetails, StatusExt};
        let code = self.grpc_code();
        if code == tonic::Code::Internal || code == tonic::Code::Unavailable {
            tracing::warn!(error = self.code(), "{self}");
        }
        let mut details = ErrorDetails::new();
        let mut metadata = std::collections::HashMap::new();
        if let Self::SchemaViolation(report) = self {
            metadata.insert("schema".to_owned(), report.schema.clone());
            metadata.insert("version".to_owned(), report.version.to_string());
            if let Some(dlq_id) = &report.dlq_id {
                metadata.insert("dlq_id".to_owned(), dlq_id.clone());
            }
            for violation in &report.violations {
                details.add_bad_request_violation(&violation.path, &violation.reason);
            }
        }
        details.set_error_info(self.code(), ERROR_DOMAIN, metadata);
        if let Some(wait) = self.retry_after() {
            details.set_retry_info(Some(wait));
        }
        tonic::Status::with_error_details(code, self.to_string(), details)
    }
}

impl ApiError {
    /// How long a client should wait before retrying, when retrying later can succeed.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited {
                retry_after_seconds,
                ..
            } => Some(std::time::Duration::from_secs(*retry_after_seconds)),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER),
            _ => None,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        error.to_grpc_status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = self.code(), "{self}");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        if let Some(wait) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        }
        response
    }
}

/// A schema violation as tests of every front end use it: `orders` v2, `/items/0/qty` too small,
/// dead-lettered as `7`.
#[cfg(test)]
pub(crate) fn sample_violation() -> ApiError {
    ApiError::SchemaViolation(Box::new(ViolationReport {
        schema: "orders".into(),
        version: 2,
        violations: vec![Violation {
            path: "/items/0/qty".into(),
            schema_path: "/properties/items".into(),
            reason: "-1 is less than the minimum of 1".into(),
        }],
        dlq_id: Some("7".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_body_has_the_documented_shape() {
        let error = sample_violation();
        let body = error.body();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"], "schema_violation");
        assert_eq!(body["schema"], "orders");
        assert_eq!(body["version"], 2);
        assert_eq!(body["violations"][0]["path"], "/items/0/qty");
        assert_eq!(body["dlq_id"], "7");
        assert!(body["message"].as_str().unwrap().contains("orders"));
    }
}

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
            HeaderValue::from_static(crate::ingress::confluent::CONTENT_TYPE),
        );
        response
    }
}
