//! `POST /v1/registry/sync`: the webhook a git host calls on push (or anyone may call by hand when
//! no secret is set). With a secret configured, the call must carry GitHub's
//! `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>` or GitLab's `X-Gitlab-Token: <secret>`;
//! both are compared in constant time. The answer comes once the sync has run (bursts of calls
//! share one sync), with the registry status.

use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::ApiError;

/// Whether a webhook call proves it knows `secret`.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), ApiError> {
    if let Some(signature) = headers.get("x-hub-signature-256") {
        let signature = signature
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("sha256="))
            .and_then(|hex| decode_hex(hex.trim()))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "X-Hub-Signature-256 must be `sha256=` followed by a hex HMAC-SHA256 of the body"
                        .into(),
                )
            })?;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(body);
        return mac.verify_slice(&signature).map_err(|_| {
            ApiError::Unauthorized(
                "X-Hub-Signature-256 does not match the body and the webhook secret".into(),
            )
        });
    }
    if let Some(token) = headers.get("x-gitlab-token") {
        // Compare digests so the comparison takes the same time whatever the token's length.
        let given = Sha256::digest(token.as_bytes());
        let expected = Sha256::digest(secret);
        return if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "X-Gitlab-Token does not match the webhook secret".into(),
            ))
        };
    }
    Err(ApiError::Unauthorized(
        "a webhook secret is configured: sign the call with X-Hub-Signature-256 (GitHub) or send X-Gitlab-Token (GitLab)".into(),
    ))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn github_signatures_are_checked_against_the_body() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = headers("x-hub-signature-256", &sign(b"s3cret", body));
        assert!(verify(&good, body, b"s3cret").is_ok());
        assert!(verify(&good, b"{}", b"s3cret").is_err(), "another body");
        assert!(verify(&good, body, b"other").is_err(), "another secret");
        let garbled = headers("x-hub-signature-256", "sha256=zz");
        assert!(verify(&garbled, body, b"s3cret").is_err());
    }

    #[test]
    fn gitlab_tokens_and_unsigned_calls() {
        assert!(verify(&headers("x-gitlab-token", "s3cret"), b"", b"s3cret").is_ok());
        assert!(verify(&headers("x-gitlab-token", "s3cre"), b"", b"s3cret").is_err());
        assert!(verify(&HeaderMap::new(), b"", b"s3cret").is_err());
    }
}
