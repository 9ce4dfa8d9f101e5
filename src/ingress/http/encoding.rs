//! Compressed requests and answers over HTTP. A request body sent with `Content-Encoding` gzip,
//! deflate or zstd is decoded as it streams in ([`inflate`](super::inflate)), so every route
//! reads, limits and stores the decoded bytes, and the memory a body holds is bounded by its
//! limit, never by what it would inflate to. Any other encoding is refused 415 naming it. Answers
//! larger than [`COMPRESS_ABOVE`] are compressed (zstd or gzip, as the client's `Accept-Encoding`
//! prefers) when `server.compress_responses` is on.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use super::inflate::{Coding, Inflating};
use crate::ingress::errors::ApiError;

/// Answers smaller than this go uncompressed: below it the bytes saved are fewer than a TCP
/// segment and not worth a codec's set-up (BENCHMARKS.md, "Compressed requests and answers").
const COMPRESS_ABOVE: u16 = 2048;

/// Compresses answers above [`COMPRESS_ABOVE`] for clients that accept zstd or gzip, at the
/// codecs' fastest level: a consume page shrinks several times over for a small share of the
/// CPU its JSON took to write.
pub(super) fn compressing() -> CompressionLayer<impl Predicate> {
    let predicate = SizeAbove::new(COMPRESS_ABOVE)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    CompressionLayer::new()
        .gzip(true)
        .zstd(true)
        .quality(CompressionLevel::Fastest)
        .compress_when(predicate)
}

/// Middleware: refuses a request whose body is in an encoding the gateway does not decode, and
/// hands the route the decoded body of one it does (content codings are case-insensitive, and
/// `x-gzip` is gzip); `Content-Encoding` and `Content-Length` then describe the decoded body no
/// more, and are removed.
pub(super) async fn decode_body(
    State(inflating): State<Arc<Inflating>>,
    request: Request,
    next: Next,
) -> Response {
    match canonical_encoding(request.headers()) {
        Ok(None) => next.run(request).await,
        Ok(Some(coding)) => {
            let (mut parts, body) = request.into_parts();
            parts.headers.remove(CONTENT_ENCODING);
            parts.headers.remove(CONTENT_LENGTH);
            let body = inflating.decoded(body, coding);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

/// The request body's coding; `None` for identity.
fn canonical_encoding(headers: &HeaderMap) -> Result<Option<Coding>, ApiError> {
    let mut values = headers.get_all(CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let sent = || {
        headers
            .get_all(CONTENT_ENCODING)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if values.next().is_some() {
        return Err(ApiError::UnsupportedEncoding { encoding: sent() });
    }
    let Ok(name) = value.to_str() else {
        return Err(ApiError::UnsupportedEncoding { encoding: sent() });
    };
    match name.trim().to_ascii_lowercase().as_str() {
        "identity" => Ok(None),
        "gzip" | "x-gzip" => Ok(Some(Coding::Gzip)),
        "deflate" => Ok(Some(Coding::Deflate)),
        "zstd" => Ok(Some(Coding::Zstd)),
        _ => Err(ApiError::UnsupportedEncoding { encoding: sent() }),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn encoding_of(values: &[&str]) -> Result<Option<&'static str>, String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CONTENT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        canonical_encoding(&headers)
            .map(|coding| coding.map(Coding::name))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepted_encodings_are_named_as_the_decoder_matches_them() {
        assert_eq!(encoding_of(&[]), Ok(None));
        assert_eq!(encoding_of(&["identity"]), Ok(None));
        assert_eq!(encoding_of(&[" Identity"]), Ok(None));
        assert_eq!(encoding_of(&["GZip "]), Ok(Some("gzip")));
        assert_eq!(encoding_of(&["x-gzip"]), Ok(Some("gzip")));
        assert_eq!(encoding_of(&["deflate"]), Ok(Some("deflate")));
        assert_eq!(encoding_of(&["zstd"]), Ok(Some("zstd")));
    }

    #[test]
    fn other_and_stacked_encodings_are_refused_by_name() {
        let refused = encoding_of(&["br"]).unwrap_err();
        assert!(refused.contains("`br`"), "{refused}");
        assert!(refused.contains("gzip, deflate, zstd"), "{refused}");
        assert!(encoding_of(&["gzip, zstd"])
            .unwrap_err()
            .contains("`gzip, zstd`"));
        assert!(encoding_of(&["gzip", "gzip"])
            .unwrap_err()
            .contains("`gzip, gzip`"));
    }
}
