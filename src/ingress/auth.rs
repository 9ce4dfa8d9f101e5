//! Who may do what: bearer tokens from `[[auth.tokens]]`, stored only as SHA-256 hashes and
//! compared in constant time, each with `produce` and `consume` station globs, an `admin` flag
//! and an optional request rate (governor's token bucket). Owns the rights model and the check;
//! the front ends only say which right a request needs ([`Need`]: HTTP routes declare it, gRPC
//! calls pass it) and the `Authorization` value. Without tokens, auth is off (and `config`
//! refuses non-loopback addresses).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::ApiError;

/// Bearer tokens; none means auth is off.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
    /// A TOML file of more `[[tokens]]` entries, read at start: token hashes kept apart from the
    /// config (a Kubernetes Secret beside a ConfigMap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<std::path::PathBuf>,
}

/// The contents of `auth.tokens_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs and errors; never the token.
    pub id: String,
    /// Hex SHA-256 of the bearer token.
    pub sha256: String,
    /// Station globs this token may produce to (`"orders"`, `"clicks*"`).
    #[serde(default)]
    pub produce: Vec<String>,
    /// Station globs this token may consume from (and ack, nack).
    #[serde(default)]
    pub consume: Vec<String>,
    /// Station listings, dead-letter browse and replay, registry sync.
    #[serde(default)]
    pub admin: bool,
    /// Most requests per second this token may make (429 past it); none: unlimited.
    #[serde(default)]
    pub requests_per_second: Option<u32>,
}

/// What a request needs.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// Only that the caller is known: schema and registry reads.
    Read,
    Produce(&'a str),
    Consume(&'a str),
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth token `{id}`: sha256 must be 64 hex digits (the SHA-256 of the token)")]
    BadHash { id: String },
    #[error(
        "auth token `{id}`: requests_per_second must be at least 1 (leave it out for no limit)"
    )]
    ZeroRate { id: String },
    #[error("auth token `{id}`: `{glob}` is not a valid station glob: {reason}")]
    BadGlob {
        id: String,
        glob: String,
        reason: String,
    },
}

struct Token {
    id: String,
    hash: [u8; 32],
    produce: Vec<glob::Pattern>,
    consume: Vec<glob::Pattern>,
    admin: bool,
    /// A token bucket of `requests_per_second`, as deep as one second of requests.
    rate: Option<governor::DefaultDirectRateLimiter>,
}

/// The configured tokens; empty means auth is off.
pub struct Authenticator {
    tokens: Vec<Token>,
}

impl Authenticator {
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, AuthConfigError> {
        let tokens = tokens
            .iter()
            .map(|config| {
                let hash = decode_hash(&config.sha256).ok_or_else(|| AuthConfigError::BadHash {
                    id: config.id.clone(),
                })?;
                let globs = |globs: &[String]| {
                    globs
                        .iter()
                        .map(|glob| {
                            glob::Pattern::new(glob).map_err(|e| AuthConfigError::BadGlob {
                                id: config.id.clone(),
                                glob: glob.clone(),
                                reason: e.to_string(),
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                let rate = config
                    .requests_per_second
                    .map(|per_second| {
                        std::num::NonZeroU32::new(per_second)
                            .map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n)))
                            .ok_or_else(|| AuthConfigError::ZeroRate {
                                id: config.id.clone(),
                            })
                    })
                    .transpose()?;
                Ok(Token {
                    id: config.id.clone(),
                    hash,
                    produce: globs(&config.produce)?,
                    consume: globs(&config.consume)?,
                    admin: config.admin,
                    rate,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokens })
    }

    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks an `Authorization` header value (`Bearer <token>`) against `need`: 401 without a
    /// known token, 403 without the right.
    pub fn check(&self, authorization: Option<&str>, need: Need<'_>) -> Result<(), ApiError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let token = self.identify(authorization)?;
        if let Some(rate) = &token.rate {
            if let Err(not_until) = rate.check() {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                return Err(ApiError::RateLimited {
                    token: token.id.clone(),
                    retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        let allowed = match need {
            Need::Read => true,
            Need::Produce(station) => token.admin || matches(&token.produce, station),
            Need::Consume(station) => token.admin || matches(&token.consume, station),
            Need::Admin => token.admin,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(match need {
                Need::Produce(station) => {
                    format!(
                        "token `{}` may not produce to station `{station}`",
                        token.id
                    )
                }
                Need::Consume(station) => {
                    format!(
                        "token `{}` may not consume from station `{station}`",
                        token.id
                    )
                }
                Need::Admin | Need::Read => format!("token `{}` is not an admin token", token.id),
            }))
        }
    }

    /// The token a header names. Every stored hash is compared, in constant time, whatever
    /// matches, so timing tells nothing about which tokens exist.
    fn identify(&self, authorization: Option<&str>) -> Result<&Token, ApiError> {
        let Some(value) = authorization else {
            return Err(ApiError::Unauthorized(
                "this gateway needs a bearer token: send `Authorization: Bearer <token>`".into(),
            ));
        };
        let presented = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?
            .trim();
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.hash.ct_eq(&hash)) {
                found = Some(token);
            }
        }
        found.ok_or_else(|| ApiError::Unauthorized("the bearer token is not known".into()))
    }
}

fn matches(globs: &[glob::Pattern], station: &str) -> bool {
    globs.iter().any(|glob| glob.matches(station))
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The hex SHA-256 of `token`, as `[[auth.tokens]] sha256` wants it.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator::new(&[
            TokenConfig {
                id: "web".into(),
                sha256: token_hash("web-secret"),
                produce: vec!["orders".into(), "clicks*".into()],
                consume: vec![],
                admin: false,
                requests_per_second: None,
            },
            TokenConfig {
                id: "ops".into(),
                sha256: token_hash("ops-secret").to_uppercase(),
                produce: vec![],
                consume: vec![],
                admin: true,
                requests_per_second: None,
            },
        ])
        .unwrap()
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn rights_follow_the_globs_and_the_admin_flag() {
        let auth = authenticator();
        let web = Some("Bearer web-secret");
        assert_eq!(code(auth.check(web, Need::Produce("orders"))), "ok");
        assert_eq!(code(auth.check(web, Need::Produce("clicks-eu"))), "ok");
        assert_eq!(
            code(auth.check(web, Need::Produce("payments"))),
            "forbidden"
        );
        assert_eq!(code(auth.check(web, Need::Consume("orders"))), "forbidden");
        assert_eq!(code(auth.check(web, Need::Admin)), "forbidden");
        assert_eq!(code(auth.check(web, Need::Read)), "ok");
        let ops = Some("Bearer ops-secret");
        assert_eq!(code(auth.check(ops, Need::Admin)), "ok");
        assert_eq!(code(auth.check(ops, Need::Consume("anything"))), "ok");
        assert_eq!(code(auth.check(None, Need::Read)), "unauthorized");
        assert_eq!(
            code(auth.check(Some("Bearer nope"), Need::Read)),
            "unauthorized"
        );
        assert_eq!(
            code(auth.check(Some("web-secret"), Need::Read)),
            "unauthorized"
        );
    }

    #[test]
    fn a_token_over_its_rate_is_told_when_to_come_back() {
        let auth = Authenticator::new(&[TokenConfig {
            id: "slow".into(),
            sha256: token_hash("slow-secret"),
            produce: vec!["*".into()],
            consume: vec![],
            admin: false,
            requests_per_second: Some(2),
        }])
        .unwrap();
        let slow = Some("Bearer slow-secret");
        assert_eq!(code(auth.check(slow, Need::Produce("orders"))), "ok");
        assert_eq!(code(auth.check(slow, Need::Produce("orders"))), "ok");
        match auth.check(slow, Need::Produce("orders")) {
            Err(ApiError::RateLimited {
                retry_after_seconds,
                ..
            }) => assert_eq!(retry_after_seconds, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_tokens_everything_is_allowed() {
        let auth = Authenticator::new(&[]).unwrap();
        assert!(!auth.is_enabled());
        assert_eq!(code(auth.check(None, Need::Admin)), "ok");
    }

    #[test]
    fn a_bad_hash_or_glob_is_a_config_error_naming_the_token() {
        let bad = |sha256: &str, glob: &str| {
            Authenticator::new(&[TokenConfig {
                id: "t".into(),
                sha256: sha256.into(),
                produce: vec![glob.into()],
                consume: vec![],
                admin: false,
                requests_per_second: None,
            }])
            .err()
            .map(|e| e.to_string())
        };
        assert!(bad("abc", "x").unwrap().contains("`t`"));
        assert!(bad(&token_hash("x"), "[")
            .unwrap()
            .contains("not a valid station glob"));
        assert!(bad(&token_hash("x"), "x*").is_none());
    }
}
