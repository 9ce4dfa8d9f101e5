//! What the registry serves, read through the pipeline: schemas and their versions, a dry run of
//! a payload against one, and a sync of the registry on request (the webhook).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::judge::unsupported_media_type;
use super::{rules, Pipeline, PipelineError};
use crate::formats::{Normalize, PayloadEncoding};
use crate::model::Violation;
use crate::registry::{Schema, SchemaVersion};

/// What a validation dry run concluded.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub valid: bool,
    pub schema: String,
    pub version: u32,
    /// What the schema refuses; or, when it accepts, what the version's `dlq` rules refuse (each
    /// `schema_path` then names the rules file and the rule: `…/v2.rules.toml#positive_total`).
    pub violations: Vec<Violation>,
    /// The `warn` rules the message fails, which producing it would name in its
    /// `sluice-rule-warnings` header.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_warnings: Vec<String>,
}

/// How a requested sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The source was read and its newest revision judged (served, or refused and recorded).
    Done,
    /// Still running when the wait ran out; it goes on in the background.
    StillRunning,
}

impl Pipeline {
    /// The schema called `name` in the serving snapshot.
    pub fn schema(&self, name: &str) -> Result<Arc<Schema>, PipelineError> {
        self.registry
            .snapshot()
            .schema(name)
            .cloned()
            .ok_or_else(|| PipelineError::UnknownSchema(name.to_owned()))
    }

    /// Version `version` of schema `schema`, or its newest without one.
    pub fn schema_version<'a>(
        &self,
        schema: &'a Schema,
        version: Option<u32>,
    ) -> Result<&'a SchemaVersion, PipelineError> {
        let number = version.unwrap_or_else(|| schema.newest());
        schema
            .version(number)
            .ok_or_else(|| PipelineError::SchemaVersionNotFound {
                schema: schema.name.clone(),
                version: number,
            })
    }

    /// Would `payload` pass schema `name` (at `version`, default newest)? Stores nothing.
    pub fn dry_run(
        &self,
        name: &str,
        version: Option<u32>,
        payload: &Bytes,
        content_type: Option<&str>,
    ) -> Result<DryRun, PipelineError> {
        let snapshot = self.registry.snapshot();
        let schema = snapshot
            .schema(name)
            .ok_or_else(|| PipelineError::UnknownSchema(name.to_owned()))?;
        let version_number = version.unwrap_or_else(|| schema.newest());
        let version =
            schema
                .version(version_number)
                .ok_or_else(|| PipelineError::UnknownSchemaVersion {
                    schema: name.to_owned(),
                    version: version_number,
                    newest: schema.newest(),
                })?;
        let encoding = PayloadEncoding::from_content_type(content_type);
        if !schema.format.accepts(&encoding) {
            return Err(unsupported_media_type(&format!("schema {name}"), schema));
        }
        let limits = &self.message_limits;
        let verdict = rules::validate(
            version,
            (payload, &encoding),
            Normalize::AsSent,
            limits,
            None,
        );
        let (violations, rule_warnings) = match verdict {
            Ok((_, warnings)) => (Vec::new(), warnings),
            Err((violations, _)) => (violations, Vec::new()),
        };
        Ok(DryRun {
            valid: violations.is_empty(),
            schema: name.to_owned(),
            version: version.version,
            violations,
            rule_warnings,
        })
    }

    /// Syncs the registry with its source now, waiting up to `wait` for the outcome.
    pub async fn sync_registry(&self, wait: Duration) -> Result<Synced, PipelineError> {
        let Some(handle) = self.registry.sync_handle() else {
            return Err(PipelineError::RegistryNotReady(
                "the registry is not syncing yet".into(),
            ));
        };
        if !handle.sync(wait).await {
            return Ok(Synced::StillRunning);
        }
        match self.registry.source_failure() {
            Some(failure) => Err(PipelineError::SourceUnavailable(failure.message)),
            None => Ok(Synced::Done),
        }
    }
}
