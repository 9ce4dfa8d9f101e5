//! Compressed requests and answers over HTTP. A request body sent with `Content-Encoding` gzip,
//! deflate or zstd is decoded as it streams in (tower-http's request decompression), so every
//! route reads, limits and stores the decoded bytes: `limits.max_message_bytes` and
//! `limits.max_batch_bytes` count decoded bytes while the body inflates, and the memory a body
//! holds is bounded by its limit, never by what it would inflate to. Any other encoding is
//! refused 415 naming it. Answers larger than [`COMPRESS_ABOVE`] are compressed (zstd or gzip,
//! as the client's `Accept-Encoding` prefers) when `server.compress_responses` is on.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::decompression::RequestDecompressionLayer;

use crate::ingress::errors::ApiError;

/// The content codings a request body may be sent in, besides `identity`.
pub const ACCEPTED_ENCODINGS: &[&str] = &["gzip", "deflate", "zstd"];

/// Answers smaller than this go uncompressed: below it the bytes saved are fewer than a TCP
/// segment and not worth a codec's set-up (BENCHMARKS.md, "Compressed requests and answers").
pub const COMPRESS_ABOVE: u16 = 2048;

/// Decodes the request bodies [`known_encoding`] let through, as the route reads them.
pub(super) fn decoding() -> RequestDecompressionLayer {
    RequestDecompressionLayer::new()
        .gzip(true)
        .deflate(true)
        .zstd(true)
        .pass_through_unaccepted(false)
}

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

/// The encoding a request body was decoded from, kept for the route's error messages (the
/// decoder removes `Content-Encoding` from the headers).
#[derive(Clone, Copy)]
struct DecodedFrom(&'static str);

/// Middleware outside the decoder: refuses a request whose body is in an encoding the gateway
/// does not decode, and spells an accepted one as the decoder matches it (content codings are
/// case-insensitive, and `x-gzip` is gzip).
pub(super) async fn known_encoding(mut request: Request, next: Next) -> Response {
    match canonical_encoding(request.headers()) {
        Ok(None) => next.run(request).await,
        Ok(Some(encoding)) => {
            request
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
            request.extensions_mut().insert(DecodedFrom(encoding));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// Middleware inside the decoder: a body that fails to decode says in which encoding.
pub(super) async fn decode_errors_named(request: Request, next: Next) -> Response {
    let Some(&DecodedFrom(encoding)) = request.extensions().get::<DecodedFrom>() else {
        return next.run(request).await;
    };
    let request = request.map(|body| {
        Body::new(body.map_err(move |e| format!("the body is not valid {encoding}: {e}")))
    });
    next.run(request).await
}

/// The request body's encoding as the decoder names it; `None` for identity.
fn canonical_encoding(headers: &HeaderMap) -> Result<Option<&'static str>, ApiError> {
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
    let name = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match name.as_str() {
        "" | "identity" => Ok(None),
        "gzip" | "x-gzip" => Ok(Some("gzip")),
        "deflate" => Ok(Some("deflate")),
        "zstd" => Ok(Some("zstd")),
        _ => Err(ApiError::UnsupportedEncoding { encoding: sent() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding_of(values: &[&str]) -> Result<Option<&'static str>, String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CONTENT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        canonical_encoding(&headers).map_err(|e| e.to_string())
    }

    #[test]
    fn accepted_encodings_are_named_as_the_decoder_matches_them() {
        assert_eq!(encoding_of(&[]), Ok(None));
        assert_eq!(encoding_of(&["identity"]), Ok(None));
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
