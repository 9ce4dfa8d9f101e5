//! Every error a client of the `/v1` API or the gRPC API can receive, and the one table that gives
//! each its HTTP status, its gRPC code and its stable `error` code. The pipeline's domain errors
//! are one variant; the rest are the front ends' own (authentication, rate limits, malformed
//! requests, unknown routes, deadlines). The table's matches are exhaustive, so a new error cannot
//! compile until it has its statuses. Bodies and gRPC details are built next to each front end
//! (`http/error.rs`, `grpc/status.rs`).

use std::time::Duration;

use axum::http::StatusCode;
use tonic::Code;

use crate::backends::BackendError;
use crate::pipeline::PipelineError;

/// How long a client is asked to wait before retrying when a backend is unavailable
/// (`Retry-After`, gRPC's `google.rpc.RetryInfo`).
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A request the front end cannot read: a header, query or body of the wrong shape.
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is larger than the limit of {limit} bytes ({key})")]
    PayloadTooLarge { limit: usize, key: &'static str },
    /// A request whose head (target and headers) is larger than the server reads.
    #[error("the request's headers come to more than {limit} bytes (server.max_header_bytes)")]
    RequestHeadersTooLarge { limit: usize },
    /// A batch's request headers, applied to each of its items, would outweigh its body.
    #[error("the request's Sluice-Header-* headers ({each} bytes) applied to each of its {items} messages would add {} bytes, more than the batch's body holds ({body} bytes); put them on the items that need them", .each.saturating_mul(*.items))]
    HeaderExpansion {
        each: usize,
        items: usize,
        body: usize,
    },
    /// Without tokens, a state-changing request with a body a cross-site form could send.
    #[error("Content-Type `{content_type}` is what a web page can send from any site without asking; without auth tokens Sluice refuses it on requests that change state (send JSON as application/json, NDJSON as application/x-ndjson, binary as application/octet-stream or the format's own type)")]
    CrossSiteContentType { content_type: String },
    /// A request body in a content coding the gateway does not decode.
    #[error("Content-Encoding `{encoding}` is not one Sluice decodes; send the body as gzip, deflate, zstd or identity")]
    UnsupportedEncoding { encoding: String },
    /// Compressed request bodies being decoded hold the shared budget already.
    #[error("compressed request bodies being decoded hold limits.max_decoding_bytes ({limit} bytes) already; retry shortly, or send this body uncompressed")]
    DecodingBusy { limit: usize },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("token `{token}` is over its request rate; retry in {retry_after_seconds} s")]
    RateLimited {
        token: String,
        retry_after_seconds: u64,
    },
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("the request was not received and answered within {} (limits.request_timeout); a produce may be retried with the same Idempotency-Key", humantime::format_duration(*.limit))]
    RequestTimeout { limit: Duration },
}

/// What one error is, in each protocol's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statuses {
    pub http: StatusCode,
    pub grpc: Code,
    /// The stable machine-readable code: the body's `error` field, gRPC's `ErrorInfo.reason`.
    pub code: &'static str,
}

const fn statuses(http: StatusCode, grpc: Code, code: &'static str) -> Statuses {
    Statuses { http, grpc, code }
}

impl ApiError {
    /// The error's statuses: the one table both front ends answer from.
    pub fn statuses(&self) -> Statuses {
        match self {
            Self::Pipeline(error) => pipeline_statuses(error),
            Self::BadRequest(_) => statuses(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                "bad_request",
            ),
            Self::PayloadTooLarge { .. } => statuses(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::ResourceExhausted,
                "payload_too_large",
            ),
            Self::RequestHeadersTooLarge { .. } => statuses(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Code::ResourceExhausted,
                "headers_too_large",
            ),
            Self::HeaderExpansion { .. } => statuses(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Code::ResourceExhausted,
                "headers_too_large",
            ),
            Self::CrossSiteContentType { .. } => statuses(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::InvalidArgument,
                "unsupported_media_type",
            ),
            Self::UnsupportedEncoding { .. } => statuses(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::Unimplemented,
                "unsupported_encoding",
            ),
            Self::DecodingBusy { .. } => statuses(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                "decoding_busy",
            ),
            Self::Unauthorized(_) => statuses(
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
                "unauthorized",
            ),
            Self::Forbidden(_) => {
                statuses(StatusCode::FORBIDDEN, Code::PermissionDenied, "forbidden")
            }
            Self::RateLimited { .. } => statuses(
                StatusCode::TOO_MANY_REQUESTS,
                Code::ResourceExhausted,
                "rate_limited",
            ),
            Self::NotFound(_) => statuses(StatusCode::NOT_FOUND, Code::NotFound, "not_found"),
            Self::MethodNotAllowed => statuses(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unimplemented,
                "method_not_allowed",
            ),
            Self::RequestTimeout { .. } => statuses(
                StatusCode::REQUEST_TIMEOUT,
                Code::DeadlineExceeded,
                "request_timeout",
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.statuses().http
    }

    pub fn grpc_code(&self) -> Code {
        self.statuses().grpc
    }

    /// The stable machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        self.statuses().code
    }

    /// The configuration key of the limit this error reports reaching, if it reports one.
    pub fn limit(&self) -> Option<&'static str> {
        use PipelineError as E;
        match self {
            Self::PayloadTooLarge { key, .. } => Some(key),
            Self::RequestHeadersTooLarge { .. } => Some("server.max_header_bytes"),
            Self::HeaderExpansion { .. } => Some("batch_header_expansion"),
            Self::RateLimited { .. } => Some("auth.tokens.requests_per_second"),
            Self::RequestTimeout { .. } => Some("limits.request_timeout"),
            Self::DecodingBusy { .. } => Some("limits.max_decoding_bytes"),
            Self::Pipeline(E::MessageTooLarge { .. }) => Some("limits.max_message_bytes"),
            Self::Pipeline(E::TooManyMessages { .. }) => Some("limits.max_batch_messages"),
            Self::Pipeline(E::MetadataTooLarge { limit_key, .. }) => Some(limit_key),
            _ => None,
        }
    }

    /// Counts this error in `sluice_limit_hits_total` if it reports reaching a limit.
    pub fn count_limit(&self) {
        if let Some(limit) = self.limit() {
            crate::metrics::limit_hit(limit);
        }
    }

    /// How long a client should wait before retrying, when retrying later can succeed.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited {
                retry_after_seconds,
                ..
            } => Some(Duration::from_secs(*retry_after_seconds)),
            _ if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER),
            _ => None,
        }
    }
}

#[rustfmt::skip]
fn pipeline_statuses(error: &PipelineError) -> Statuses {
    use PipelineError as E;
    match error {
        E::UnknownStation(_) => statuses(StatusCode::NOT_FOUND, Code::NotFound, "unknown_station"),
        E::UnknownSchema(_) => statuses(StatusCode::NOT_FOUND, Code::NotFound, "unknown_schema"),
        E::SchemaVersionNotFound { .. } => statuses(StatusCode::NOT_FOUND, Code::NotFound, "unknown_schema_version"),
        E::DeadLetterNotFound { .. } => statuses(StatusCode::NOT_FOUND, Code::NotFound, "unknown_dead_letter"),
        E::UnknownSchemaVersion { .. } => statuses(StatusCode::BAD_REQUEST, Code::InvalidArgument, "unknown_schema_version"),
        E::VersionNotAccepted { .. } => statuses(StatusCode::BAD_REQUEST, Code::InvalidArgument, "schema_version_not_accepted"),
        E::InvalidRequest(_) => statuses(StatusCode::BAD_REQUEST, Code::InvalidArgument, "bad_request"),
        E::SchemaViolation(_) => statuses(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidArgument, "schema_violation"),
        E::RuleViolation(_) => statuses(StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidArgument, "rule_violation"),
        E::MessageTooLarge { .. } => statuses(StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted, "payload_too_large"),
        E::InvalidHeader { .. } => statuses(StatusCode::BAD_REQUEST, Code::InvalidArgument, "invalid_header"),
        E::MetadataTooLarge { .. } => statuses(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, Code::ResourceExhausted, "headers_too_large"),
        E::TooManyMessages { .. } => statuses(StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted, "too_many_messages"),
        E::UnsupportedMediaType { .. } => statuses(StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument, "unsupported_media_type"),
        E::TooManyGroups { .. } => statuses(StatusCode::TOO_MANY_REQUESTS, Code::ResourceExhausted, "too_many_groups"),
        E::DeadLetterNotKept { .. } => statuses(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, "dead_letter_not_kept"),
        E::RegistryNotReady(_) => statuses(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, "registry_not_ready"),
        E::SourceUnavailable(_) => statuses(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, "registry_source_unavailable"),
        E::Backend(BackendError::Unavailable { .. }) => statuses(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, "backend_unavailable"),
        E::Backend(BackendError::Unrepresentable { .. }) => statuses(StatusCode::BAD_REQUEST, Code::InvalidArgument, "not_representable"),
        E::Backend(BackendError::Corrupt { .. }) => statuses(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, "storage_corrupt"),
        E::IdempotencyKeyAbandoned => statuses(StatusCode::CONFLICT, Code::Aborted, "idempotency_key_abandoned"),
        E::AlreadyReplayed { .. } => statuses(StatusCode::CONFLICT, Code::AlreadyExists, "already_replayed"),
        E::ReplayInProgress { .. } => statuses(StatusCode::CONFLICT, Code::Aborted, "replay_in_progress"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sample_violation;

    #[test]
    fn a_violation_is_422_and_invalid_argument_under_one_code() {
        let error = ApiError::from(sample_violation());
        assert_eq!(
            error.statuses(),
            statuses(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidArgument,
                "schema_violation"
            )
        );
        assert_eq!(error.retry_after(), None);
    }

    #[test]
    fn an_unavailable_backend_asks_for_a_retry() {
        let error = ApiError::from(PipelineError::Backend(BackendError::Unavailable {
            backend: "nats",
            reason: "down".into(),
        }));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.grpc_code(), Code::Unavailable);
        assert_eq!(error.retry_after(), Some(RETRY_AFTER));
    }
}
