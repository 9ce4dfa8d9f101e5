//! A compressed request body decoded as the route reads it: async-compression's decoder over the
//! body's bytes, yielding decoded chunks of at most [`CHUNK`] bytes, so the route's own limit
//! (`limits.max_message_bytes`, `limits.max_batch_bytes`) counts decoded bytes and stops the body
//! as it crosses it. Two more bounds hold whatever a client sends:
//!
//! * the decoded bytes of every compressed body being read, together, stay within
//!   `limits.max_decoding_bytes`: a shared budget, taken as chunks come out and given back when
//!   the body is done, so many small bodies that inflate at once cannot add up without bound;
//! * the encoded bytes read stay within [`Inflating::max_encoded`], a little over
//!   `limits.max_batch_bytes`: input that decodes to nothing (zstd's skippable frames, empty
//!   deflate blocks) is not free either.
//!
//! zstd frames may ask for at most an 8 MiB window, as RFC 9659 sets for HTTP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_compression::tokio::bufread::{GzipDecoder, ZlibDecoder, ZstdDecoder};
use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use tokio::io::AsyncRead;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::pipeline::Limits;

/// Most decoded bytes one chunk holds.
const CHUNK: usize = 16 * 1024;

/// The content codings a request body is decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// A zlib stream, as HTTP's `deflate` means it.
    Deflate,
    Zstd,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Zstd => "zstd",
        }
    }
}

/// Why a compressed body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    #[error("the body is not valid {coding}: {source}")]
    Invalid {
        coding: &'static str,
        source: io::Error,
    },
    #[error("compressed request bodies being decoded hold limits.max_decoding_bytes ({limit} bytes) already")]
    Busy { limit: usize },
    /// More encoded bytes than any body may decode from; `limit` is the batch limit it exceeds.
    #[error("the compressed body is larger than {limit} bytes (limits.max_batch_bytes)")]
    EncodedTooLarge { limit: usize },
}

/// The shared budget and bounds of decoding, one per HTTP API.
#[derive(Debug)]
pub struct Inflating {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    batch_limit: usize,
}

impl Inflating {
    pub fn new(limits: &Limits) -> Arc<Self> {
        let budget_bytes = limits
            .max_decoding_bytes
            .max(limits.max_batch_bytes)
            .min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            batch_limit: limits.max_batch_bytes,
        })
    }

    /// Most encoded bytes a body may have: room over the batch limit for data that does not
    /// compress (each codec adds a little to it).
    fn max_encoded(&self) -> usize {
        self.batch_limit + self.batch_limit / 64 + 64 * 1024
    }

    /// `body`, encoded in `coding`, as the stream of its decoded bytes.
    pub fn decoded(self: &Arc<Self>, body: Body, coding: Coding) -> Body {
        let (max_encoded, batch_limit) = (self.max_encoded(), self.batch_limit);
        let mut read = 0usize;
        let encoded = body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(io::Error::other)?;
            read += chunk.len();
            match read > max_encoded {
                true => Err(io::Error::other(InflateError::EncodedTooLarge {
                    limit: batch_limit,
                })),
                false => Ok(chunk),
            }
        });
        let reader = StreamReader::new(encoded);
        let decoder: Pin<Box<dyn AsyncRead + Send>> = match coding {
            Coding::Gzip => {
                let mut decoder = GzipDecoder::new(reader);
                decoder.multiple_members(true);
                Box::pin(decoder)
            }
            Coding::Deflate => Box::pin(ZlibDecoder::new(reader)),
            Coding::Zstd => Box::pin(ZstdDecoder::new_for_http(reader)),
        };
        Body::from_stream(Decoded {
            chunks: ReaderStream::with_capacity(decoder, CHUNK),
            coding,
            inflating: self.clone(),
            held: None,
        })
    }
}

/// The decoded chunks of one body, and the budget they hold.
struct Decoded {
    chunks: ReaderStream<Pin<Box<dyn AsyncRead + Send>>>,
    coding: Coding,
    inflating: Arc<Inflating>,
    held: Option<OwnedSemaphorePermit>,
}

impl Decoded {
    /// Takes `bytes` more of the shared budget, or says the budget is spent.
    fn reserve(&mut self, bytes: usize) -> Result<(), InflateError> {
        let budget = &self.inflating.budget;
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|wanted| budget.clone().try_acquire_many_owned(wanted).ok())
            .ok_or(InflateError::Busy {
                limit: self.inflating.budget_bytes,
            })?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// What a read error means: the body past its encoded bound, or not valid in its coding.
    fn classify(&self, error: io::Error) -> InflateError {
        let inner = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<InflateError>());
        if let Some(&InflateError::EncodedTooLarge { limit }) = inner {
            return InflateError::EncodedTooLarge { limit };
        }
        InflateError::Invalid {
            coding: self.coding.name(),
            source: error,
        }
    }
}

impl Stream for Decoded {
    type Item = Result<Bytes, InflateError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = ready!(self.chunks.poll_next_unpin(cx));
        Poll::Ready(match next {
            None => {
                self.held = None;
                None
            }
            Some(Err(error)) => Some(Err(self.classify(error))),
            Some(Ok(chunk)) => Some(self.reserve(chunk.len()).map(|()| chunk)),
        })
    }
}

/// The [`InflateError`] behind a body's read error, if a decoder's.
pub fn inflate_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a InflateError> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<InflateError>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use http_body_util::BodyExt as _;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn inflating(max_decoding_bytes: usize, max_batch_bytes: usize) -> Arc<Inflating> {
        Inflating::new(&Limits {
            max_message_bytes: 1,
            max_decoding_bytes,
            max_batch_bytes,
            ..Limits::default()
        })
    }

    async fn read(body: Body) -> Result<Bytes, String> {
        match body.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => Err(inflate_error(&e).map_or_else(|| e.to_string(), |e| e.to_string())),
        }
    }

    #[tokio::test]
    async fn each_coding_decodes_to_the_bytes_sent() {
        let text = b"{\"order_id\":\"o-1\"}\n".repeat(1000);
        let inflating = inflating(1 << 20, 1 << 20);
        let bodies = [
            (Coding::Gzip, gzip(&text)),
            (Coding::Zstd, zstd::encode_all(&text[..], 3).unwrap()),
        ];
        for (coding, body) in bodies {
            let decoded = read(inflating.decoded(Body::from(body), coding)).await;
            assert_eq!(decoded.unwrap(), &text[..], "{coding:?}");
        }
        // Every byte of the budget came back.
        assert_eq!(inflating.budget.available_permits(), 1 << 20);
    }

    #[tokio::test]
    async fn the_shared_budget_refuses_what_would_pass_it_and_is_given_back() {
        let inflating = inflating(64 * 1024, 64 * 1024);
        let body = gzip(&vec![b' '; 256 * 1024]);
        let refused = read(inflating.decoded(Body::from(body), Coding::Gzip)).await;
        assert!(refused.unwrap_err().contains("limits.max_decoding_bytes"));
        assert_eq!(inflating.budget.available_permits(), 64 * 1024);
    }

    #[tokio::test]
    async fn input_that_decodes_to_nothing_is_bounded_too() {
        let inflating = inflating(1 << 20, 64 * 1024);
        // zstd skippable frames: eight bytes of header each, and whatever they carry is skipped.
        let mut body = Vec::new();
        for _ in 0..100 {
            body.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
            body.extend_from_slice(&4096u32.to_le_bytes());
            body.extend_from_slice(&[0u8; 4096]);
        }
        let refused = read(inflating.decoded(Body::from(body), Coding::Zstd)).await;
        assert!(refused.unwrap_err().contains("larger than 65536"));
    }

    #[tokio::test]
    async fn a_zstd_window_over_eight_mebibytes_is_refused() {
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
        encoder.window_log(24).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.write_all(&vec![7u8; 1 << 20]).unwrap();
        let body = encoder.finish().unwrap();
        let refused =
            read(inflating(1 << 30, 1 << 30).decoded(Body::from(body), Coding::Zstd)).await;
        assert!(refused.unwrap_err().contains("not valid zstd"));
    }
}
