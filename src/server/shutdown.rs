//! One shutdown signal, seen by every server: [`Shutdown::signalled`] completes for each of them
//! once the future given to [`Shutdown::new`] has.

use std::future::Future;

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Watches `signal` (SIGTERM, Ctrl-C, or a test's own) on a task of its own.
    pub fn new(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = stop.send(true);
        });
        Self(stopped)
    }

    /// Completes once the signal has come.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stopped = self.0.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    }
}
