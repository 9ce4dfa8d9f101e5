//! Work that must finish once begun, whoever stops waiting for it: a produce whose write may
//! have landed must settle its idempotency keys, and a replay must settle its claim. The work
//! runs where it is awaited, at no cost beyond one allocation; if the caller drops it unfinished
//! (a client gone, a deadline passed), the rest of it runs on a task of its own, in the span it
//! ran in.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Instrument as _;

/// A future that runs to its end even when dropped unfinished.
pub(super) struct ToTheEnd<F: Future + Send + 'static> {
    work: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> ToTheEnd<F> {
    pub(super) fn new(work: F) -> Self {
        Self {
            work: Some(Box::pin(work)),
        }
    }
}

impl<F: Future + Send + 'static> Future for ToTheEnd<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let work = self.work.as_mut().expect("polled after it ended");
        let done = work.as_mut().poll(cx);
        if done.is_ready() {
            self.work = None;
        }
        done
    }
}

impl<F: Future + Send + 'static> Drop for ToTheEnd<F> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        // Outside a runtime (or one shutting down) nothing can run it; it is dropped, as any
        // task of a stopping runtime is.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let span = tracing::Span::current();
            runtime.spawn(
                async move {
                    work.await;
                }
                .instrument(span),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn dropped_unfinished_it_runs_to_its_end() {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let work = ToTheEnd::new(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let gave_up = tokio::time::timeout(Duration::from_millis(1), work).await;
        assert!(gave_up.is_err(), "the caller stopped waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(ended.load(Ordering::SeqCst), "the rest ran anyway");
    }

    #[tokio::test]
    async fn awaited_it_answers_where_it_runs() {
        assert_eq!(ToTheEnd::new(async { 7 }).await, 7);
    }
}
