//! A small HTTP client for a running gateway, as `sluice produce` and `sluice consume` use it:
//! batch produce, long-poll consume and ack, with the gateway's JSON errors turned into typed ones
//! and `503` answers retried after their `Retry-After`. It speaks only the public HTTP API.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

/// How often a `503` is retried before giving up.
const MAX_RETRIES: u32 = 8;
/// Wait before retrying a `503` that names no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the gateway at {url}: {cause}")]
    Unreachable { url: String, cause: reqwest::Error },
    /// The gateway refused the request as a whole; `code` and `message` are its error body.
    #[error("the gateway answered {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the gateway's answer to {url} is not what the API documents: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("cannot use the CA certificates: {0}")]
    CaCertificates(reqwest::Error),
}

/// One item's outcome in a batch answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemResult {
    pub status: u16,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub violations: Vec<ItemViolation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemViolation {
    pub path: String,
    pub reason: String,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<ItemResult>,
}

#[derive(Deserialize)]
struct ConsumeAnswer {
    messages: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct OffsetOnly {
    offset: u64,
    #[serde(default)]
    partition: Option<u32>,
}

/// A consumed message: where it is stored and the message object exactly as the gateway sent it.
#[derive(Debug)]
pub struct ConsumedMessage {
    pub offset: u64,
    /// The partition of a partitioned Kafka topic.
    pub partition: Option<u32>,
    pub json: Box<RawValue>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// Options a produce request carries as headers.
#[derive(Debug, Clone, Default)]
pub struct ProduceOptions {
    pub schema_version: Option<u32>,
    /// `Sluice-Deliver-After`: a delay or an RFC 3339 time.
    pub deliver_after: Option<String>,
}

/// A gateway at `base` (e.g. `http://127.0.0.1:8080`).
#[derive(Clone)]
pub struct GatewayClient {
    base: String,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer <token>` when set.
    token: Option<String>,
}

impl GatewayClient {
    /// Sends `token` as a bearer token with every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Trusts the CA certificates in the PEM bundle `pem`, besides the system's, for a gateway
    /// served over `https://` with a private CA or a self-signed certificate.
    pub fn trusting(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(ClientError::CaCertificates)?;
        self.http = http_client()
            .tls_certs_merge(certificates)
            .build()
            .map_err(ClientError::CaCertificates)?;
        Ok(self)
    }

    pub fn new(base: &str) -> Self {
        crate::crypto::install_provider();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: http_client()
                .build()
                .expect("a client without TLS settings builds"),
            token: None,
        }
    }

    /// Sends an NDJSON batch body (one `{"value": ...}` envelope per line) to `station`; answers
    /// one result per item, in order.
    pub async fn produce_batch(
        &self,
        station: &str,
        ndjson: Bytes,
        options: &ProduceOptions,
    ) -> Result<Vec<ItemResult>, ClientError> {
        let url = format!("{}/v1/stations/{station}/messages:batch", self.base);
        let answer: BatchAnswer = self
            .send(&url, || {
                let request = self
                    .http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(ndjson.clone());
                with_produce_headers(request, options)
            })
            .await?;
        Ok(answer.results)
    }

    /// Sends one message with `content_type` to `station`; answers the stored offset.
    pub async fn produce_one(
        &self,
        station: &str,
        payload: Bytes,
        content_type: &str,
        options: &ProduceOptions,
    ) -> Result<u64, ClientError> {
        let url = format!("{}/v1/stations/{station}/messages", self.base);
        let answer: OffsetOnly = self
            .send(&url, || {
                let request = self
                    .http
                    .post(&url)
                    .header("content-type", content_type)
                    .body(payload.clone());
                with_produce_headers(request, options)
            })
            .await?;
        Ok(answer.offset)
    }

    /// Long-polls up to `max` messages of `station` for `group`, waiting up to `wait`.
    pub async fn consume(
        &self,
        station: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ConsumedMessage>, ClientError> {
        let url = format!(
            "{}/v1/stations/{station}/messages?group={group}&max={max}&wait_ms={}",
            self.base,
            wait.as_millis()
        );
        let answer: ConsumeAnswer = self.send(&url, || self.http.get(&url)).await?;
        answer
            .messages
            .into_iter()
            .map(|json| {
                let at = serde_json::from_str::<OffsetOnly>(json.get()).map_err(|e| {
                    ClientError::BadAnswer {
                        url: url.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Ok(ConsumedMessage {
                    offset: at.offset,
                    partition: at.partition,
                    json,
                })
            })
            .collect()
    }

    /// Acknowledges `offsets` of `station` (in `partition`, on a partitioned Kafka topic) for
    /// `group`.
    pub async fn ack(
        &self,
        station: &str,
        group: &str,
        partition: Option<u32>,
        offsets: &[u64],
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1/stations/{station}/ack", self.base);
        let body = match partition {
            Some(partition) => {
                serde_json::json!({ "group": group, "partition": partition, "offsets": offsets })
            }
            None => serde_json::json!({ "group": group, "offsets": offsets }),
        };
        let _: serde_json::Value = self.send(&url, || self.http.post(&url).json(&body)).await?;
        Ok(())
    }

    /// Sends the request `build` makes, retrying `503`s after their `Retry-After`, and decodes a
    /// success as `T` or an error body as [`ClientError::Refused`].
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let mut attempt = 0;
        loop {
            let mut request = build();
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            let response = request
                .send()
                .await
                .map_err(|cause| ClientError::Unreachable {
                    url: url.to_owned(),
                    cause,
                })?;
            let status = response.status();
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && attempt < MAX_RETRIES {
                attempt += 1;
                tokio::time::sleep(retry_after(&response)).await;
                continue;
            }
            let body = response
                .bytes()
                .await
                .map_err(|cause| ClientError::Unreachable {
                    url: url.to_owned(),
                    cause,
                })?;
            let bad_answer = |reason: String| ClientError::BadAnswer {
                url: url.to_owned(),
                reason,
            };
            if !status.is_success() {
                let error: ErrorBody = serde_json::from_slice(&body).map_err(|_| {
                    bad_answer(format!(
                        "status {status} with body {:?}",
                        String::from_utf8_lossy(&body)
                    ))
                })?;
                return Err(ClientError::Refused {
                    status: status.as_u16(),
                    code: error.error,
                    message: error.message,
                });
            }
            return serde_json::from_slice(&body).map_err(|e| bad_answer(e.to_string()));
        }
    }
}

fn with_produce_headers(
    mut request: reqwest::RequestBuilder,
    options: &ProduceOptions,
) -> reqwest::RequestBuilder {
    if let Some(version) = options.schema_version {
        request = request.header("sluice-schema-version", version.to_string());
    }
    if let Some(after) = &options.deliver_after {
        request = request.header("sluice-deliver-after", after);
    }
    request
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

/// The NDJSON batch envelope for one input line: `{"value": <line>}` when the line is JSON,
/// otherwise the line's bytes as `value_base64` with a `text/plain` content type.
pub fn envelope_line(line: &[u8], out: &mut Vec<u8>) {
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
    if is_json {
        out.extend_from_slice(b"{\"value\":");
        out.extend_from_slice(line);
        out.push(b'}');
    } else {
        use base64::Engine;
        out.extend_from_slice(b"{\"value_base64\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(line)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"content_type\":\"text/plain\"}");
    }
    out.push(b'\n');
}

/// The HTTP client's settings: idle connections are dropped before a gateway's default
/// `server.idle_timeout` (60 s) closes them, so a request is not sent on a connection the
/// gateway is closing.
fn http_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_sent_as_values_and_other_lines_as_text() {
        let mut out = Vec::new();
        envelope_line(br#"{"a": 1}"#, &mut out);
        envelope_line(b"plain words", &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"value":{"a": 1}}"#);
        assert_eq!(
            lines[1],
            r#"{"value_base64":"cGxhaW4gd29yZHM=","content_type":"text/plain"}"#
        );
    }
}
