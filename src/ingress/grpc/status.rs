//! How an [`ApiError`] leaves by gRPC: its code from the one table, the sentence, and rich error
//! details — a `google.rpc.ErrorInfo` carrying the `error` code (and, for a schema violation, the
//! schema, version and dead-letter id), a `google.rpc.BadRequest` with one field violation per
//! problem, and a `google.rpc.RetryInfo` when retrying later can succeed. A refused message of a
//! stream carries the same as a [`Rejection`].

use std::collections::HashMap;

use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use super::proto::{self, Rejection};
use crate::ingress::errors::ApiError;
use crate::model::Violation;
use crate::pipeline::{PipelineError, ViolationReport};

/// The `domain` of every `google.rpc.ErrorInfo` Sluice sends.
const ERROR_DOMAIN: &str = "sluice";

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        error.count_limit();
        let code = error.grpc_code();
        if code == tonic::Code::Internal || code == tonic::Code::Unavailable {
            tracing::warn!(error = error.code(), "{error}");
        }
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        if let Some(report) = violation_report(&error) {
            metadata.insert("schema".to_owned(), report.schema.clone());
            metadata.insert("version".to_owned(), report.version.to_string());
            if let Some(dlq_id) = &report.dlq_id {
                metadata.insert("dlq_id".to_owned(), dlq_id.clone());
            }
            for violation in &report.violations {
                details.add_bad_request_violation(&violation.path, described(violation));
            }
        }
        details.set_error_info(error.code(), ERROR_DOMAIN, metadata);
        if let Some(wait) = error.retry_after() {
            details.set_retry_info(Some(wait));
        }
        Status::with_error_details(code, error.to_string(), details)
    }
}

impl From<PipelineError> for Status {
    fn from(error: PipelineError) -> Self {
        ApiError::from(error).into()
    }
}

/// A refused stream message, carrying what a unary call's status would.
pub(super) fn rejection(error: &ApiError) -> Rejection {
    let mut rejection = Rejection {
        code: error.grpc_code() as i32,
        error: error.code().to_owned(),
        message: error.to_string(),
        ..Rejection::default()
    };
    if let Some(report) = violation_report(error) {
        rejection.schema = report.schema.clone();
        rejection.schema_version = Some(report.version);
        rejection.dlq_id = report.dlq_id.clone().unwrap_or_default();
        rejection.violations = report
            .violations
            .iter()
            .map(|v| proto::Violation {
                path: v.path.clone(),
                reason: described(v),
                rule: v.rule_name().unwrap_or_default().to_owned(),
            })
            .collect();
    }
    rejection
}

/// The report of a message its schema or its rules refused.
fn violation_report(error: &ApiError) -> Option<&ViolationReport> {
    match error {
        ApiError::Pipeline(error) => error.violation_report(),
        _ => None,
    }
}

/// A violation's sentence; a rule's is prefixed with the rule's name.
fn described(violation: &Violation) -> String {
    match violation.rule_name() {
        Some(rule) => format!("rule `{rule}`: {}", violation.reason),
        None => violation.reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sample_violation;

    #[test]
    fn a_stream_rejection_carries_what_a_unary_status_would() {
        let error = ApiError::from(sample_violation());
        let rejection = rejection(&error);
        assert_eq!(rejection.code, tonic::Code::InvalidArgument as i32);
        assert_eq!(rejection.error, "schema_violation");
        assert_eq!(rejection.schema_version, Some(2));
        assert_eq!(rejection.violations[0].path, "/items/0/qty");
        assert_eq!(rejection.dlq_id, "7");
        let status = Status::from(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "schema_violation");
        assert_eq!(
            details.bad_request().unwrap().field_violations[0].field,
            "/items/0/qty"
        );
    }
}
