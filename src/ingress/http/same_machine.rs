//! Without tokens, the gateway answers only the machine it runs on, and not web pages open on it.
//! Binding loopback (which the configuration insists on) keeps other machines out; a browser on
//! the same machine is the way in left, through a page the operator visits:
//!
//! - DNS rebinding: a page whose host name now resolves to 127.0.0.1 sends its own host name in
//!   `Host`, so only loopback names and addresses are answered (`403`);
//! - cross-site requests: a browser says where a request comes from (`Origin`,
//!   `Sec-Fetch-Site`), so one from a page not on this machine is refused (`403`);
//! - form posts: a cross-site form or `fetch` can send `text/plain`, form-encoded or multipart
//!   bodies without asking first, so a state-changing request with one is refused (`415`).
//!
//! With tokens, none of this applies: a browser never sends a bearer token on its own.

use std::net::{IpAddr, Ipv6Addr};

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ingress::errors::ApiError;

/// Answers a request only when it comes from this machine and not from a web page of another
/// site.
pub async fn same_machine_only(request: Request, next: Next) -> Response {
    match check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// `Sec-Fetch-Site`, named once.
static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

fn check(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: &HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    if let Some(host) = text(&header::HOST) {
        if !is_loopback_authority(host) {
            return Err(forbidden(format!(
                "Host `{host}` is not this machine's loopback; without auth tokens Sluice answers requests to localhost, 127.0.0.1 or [::1] only"
            )));
        }
    }
    if let Some(origin) = text(&header::ORIGIN) {
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        if !authority.is_some_and(is_loopback_authority) {
            return Err(forbidden(format!(
                "a request from the web page at `{origin}`; without auth tokens Sluice answers pages of this machine only"
            )));
        }
    }
    if let Some(site) = text(&SEC_FETCH_SITE) {
        if site == "cross-site" {
            return Err(forbidden(format!(
                "a request from another site (Sec-Fetch-Site: {site}); without auth tokens Sluice answers pages of this machine only"
            )));
        }
    }
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if let Some(content_type) = text(&header::CONTENT_TYPE) {
            if is_form_type(content_type) {
                return Err(ApiError::CrossSiteContentType {
                    content_type: content_type.to_owned(),
                });
            }
        }
    }
    Ok(())
}

fn forbidden(message: String) -> ApiError {
    ApiError::Forbidden(message)
}

/// The media types a cross-site form or `fetch` sends without the browser asking first.
fn is_form_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ]
    .iter()
    .any(|form| essence.eq_ignore_ascii_case(form))
}

/// Whether `authority` (`host[:port]`) names this machine's loopback: `localhost` (and names
/// under it, which browsers resolve to loopback themselves), 127.0.0.0/8 or `[::1]`.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, _)) => return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
            None => return false,
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        },
    };
    let host = host.trim_end_matches('.');
    // `localhost` or a name under it, compared as bytes (no allocation, any input).
    let bytes = host.as_bytes();
    let named = bytes.len() >= 9
        && bytes[bytes.len() - 9..].eq_ignore_ascii_case(b"localhost")
        && (bytes.len() == 9 || bytes[bytes.len() - 10] == b'.');
    named || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn loopback_hosts_are_answered_and_others_are_not() {
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "app.localhost",
        ] {
            assert!(is_loopback_authority(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:80",
            "localhost.evil.example",
            "[::1",
        ] {
            assert!(!is_loopback_authority(host), "{host}");
        }
    }

    #[test]
    fn a_rebound_host_or_another_sites_page_is_forbidden() {
        let post = Method::POST;
        assert!(check(
            &post,
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("content-type", "application/json")
            ])
        )
        .is_ok());
        let refused = |pairs| check(&post, &headers(pairs)).unwrap_err().status().as_u16();
        assert_eq!(refused(&[("host", "rebound.example:8080")]), 403);
        assert_eq!(
            refused(&[("host", "localhost"), ("origin", "https://evil.example")]),
            403
        );
        assert_eq!(refused(&[("host", "localhost"), ("origin", "null")]), 403);
        assert_eq!(
            refused(&[("host", "localhost"), ("sec-fetch-site", "cross-site")]),
            403
        );
        assert!(check(
            &post,
            &headers(&[
                ("host", "localhost:8080"),
                ("origin", "http://localhost:8080"),
                ("sec-fetch-site", "same-origin")
            ])
        )
        .is_ok());
    }

    #[test]
    fn form_bodies_cannot_change_state() {
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let mut map = headers(&[("host", "localhost")]);
            map.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(content_type).unwrap(),
            );
            assert_eq!(
                check(&Method::POST, &map).unwrap_err().status().as_u16(),
                415,
                "{content_type}"
            );
            assert!(
                check(&Method::GET, &map).is_ok(),
                "reads are not refused for it"
            );
        }
    }
}
