//! How an [`ApiError`] leaves by HTTP: its status from the one table, a JSON body with the stable
//! `error` code and a sentence (and, for a schema or rule violation, the schema, version,
//! violations and dead-letter id), and `Retry-After` when retrying later can succeed.

use axum::extract::rejection::QueryRejection;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::ingress::errors::ApiError;
use crate::pipeline::PipelineError;

impl ApiError {
    /// The JSON body: `error` code, `message` sentence, and details where there are any.
    pub fn body(&self) -> Value {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        let Self::Pipeline(error) = self else {
            return body;
        };
        let Some(report) = error.violation_report() else {
            return body;
        };
        if let (Value::Object(body), Ok(Value::Object(details))) =
            (&mut body, serde_json::to_value(report))
        {
            body.extend(details);
        }
        if let PipelineError::RuleViolation(report) = error {
            body["violations"] = report
                .violations
                .iter()
                .map(|v| json!({ "rule": v.rule_name(), "path": v.path, "reason": v.reason }))
                .collect();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.count_limit();
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

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::pipeline::sample_violation;

    #[test]
    fn violation_body_has_the_documented_shape() {
        let error = ApiError::from(sample_violation());
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
