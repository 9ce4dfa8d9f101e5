//! Retries named by an `Idempotency-Key`: within the window (`limits.idempotency_window`, two
//! minutes by default), a message whose station and key were seen gets the first answer again and
//! stores nothing new — whichever front end and backend. A retry that arrives while the first try
//! is still being stored waits for its answer. Only answers that settle the message are
//! remembered (stored, or refused by its schema); after a 503 or a refused request, a retry is
//! tried afresh.
//!
//! The memory is the gateway's own: a restart forgets it (NATS stations also dedupe in JetStream).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::error::PipelineError;
use super::Accepted;

/// What a message was answered.
pub type Answer = Result<Accepted, PipelineError>;

type Key = (Arc<str>, String);

enum Entry {
    /// The first try is being stored; waiters see its answer (or `None` if it was abandoned).
    Pending(watch::Receiver<Option<Answer>>),
    Settled(Answer),
}

/// What a message with a key should do.
pub enum Claim {
    /// The first try: store it, then [`Ticket::settle`].
    First(Ticket),
    /// A retry of a settled message: answer this.
    Answered(Answer),
    /// A retry of a message still being stored: wait, then claim again if it was abandoned.
    Wait(watch::Receiver<Option<Answer>>),
}

pub struct Idempotency {
    window: Duration,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Settled keys in the order they expire.
    expiry: VecDeque<(Instant, Key)>,
}

impl Inner {
    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.expiry.front() {
            if *until > now {
                break;
            }
            let (_, key) = self.expiry.pop_front().expect("front exists");
            if matches!(self.entries.get(&key), Some(Entry::Settled(_))) {
                self.entries.remove(&key);
            }
        }
    }
}

impl Idempotency {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            inner: Arc::default(),
        }
    }

    pub fn claim(&self, station: &Arc<str>, key: &str) -> Claim {
        let mut inner = self.inner.lock().expect("idempotency lock");
        inner.forget_expired(Instant::now());
        let map_key = (station.clone(), key.to_owned());
        match inner.entries.get(&map_key) {
            Some(Entry::Settled(answer)) => Claim::Answered(answer.clone()),
            Some(Entry::Pending(waiting)) => Claim::Wait(waiting.clone()),
            None => {
                let (done, waiting) = watch::channel(None);
                inner
                    .entries
                    .insert(map_key.clone(), Entry::Pending(waiting));
                Claim::First(Ticket {
                    key: Some(map_key),
                    done,
                    window: self.window,
                    inner: self.inner.clone(),
                })
            }
        }
    }
}

/// The idempotency keys of one batch (or stream chunk) to one station: each key claimed once, a
/// key repeated within the batch answered like its first use.
pub struct BatchKeys<'a> {
    memory: &'a Idempotency,
    station: &'a str,
    /// Built on the first key, shared by every claim.
    station_key: Option<Arc<str>>,
    /// Key → the batch index of its first use.
    seen: HashMap<String, usize>,
}

/// What a message of a batch does with its key.
pub enum BatchClaim {
    /// Store it, then settle the ticket with its answer.
    Store(Ticket),
    /// Do not store it: it is a retry.
    Retry(Retry),
}

/// Where a retry's answer comes from.
pub enum Retry {
    /// The settled first try's answer.
    Answered(Answer),
    /// The answer of the message at this index of the same batch.
    SameAs(usize),
    /// The answer of a first try another request is storing now (`None` if it was abandoned).
    Waiting(watch::Receiver<Option<Answer>>),
}

impl<'a> BatchKeys<'a> {
    pub fn new(memory: &'a Idempotency, station: &'a str) -> Self {
        Self {
            memory,
            station,
            station_key: None,
            seen: HashMap::new(),
        }
    }

    /// Claims `key` for the message at `index` of the batch.
    pub fn claim(&mut self, key: &str, index: usize) -> BatchClaim {
        if let Some(&earlier) = self.seen.get(key) {
            return BatchClaim::Retry(Retry::SameAs(earlier));
        }
        let station = self
            .station_key
            .get_or_insert_with(|| Arc::from(self.station))
            .clone();
        match self.memory.claim(&station, key) {
            Claim::First(ticket) => {
                self.seen.insert(key.to_owned(), index);
                BatchClaim::Store(ticket)
            }
            Claim::Answered(answer) => BatchClaim::Retry(Retry::Answered(answer)),
            Claim::Wait(first_try) => BatchClaim::Retry(Retry::Waiting(first_try)),
        }
    }
}

/// The first try's duty to say how it ended; dropped unsettled, it lets a retry try again.
pub struct Ticket {
    key: Option<Key>,
    done: watch::Sender<Option<Answer>>,
    window: Duration,
    inner: Arc<Mutex<Inner>>,
}

impl Ticket {
    /// Records the first try's answer for retries (if it settles the message) and wakes waiters.
    pub fn settle(mut self, answer: &Answer) {
        let key = self.key.take().expect("a ticket settles once");
        let settles = answer
            .as_ref()
            .map_or_else(PipelineError::settles_the_message, |_| true);
        {
            let mut inner = self.inner.lock().expect("idempotency lock");
            if settles {
                let until = Instant::now() + self.window;
                inner
                    .entries
                    .insert(key.clone(), Entry::Settled(answer.clone()));
                inner.expiry.push_back((until, key));
            } else {
                inner.entries.remove(&key);
            }
        }
        let _ = self.done.send(Some(answer.clone()));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner
                .lock()
                .expect("idempotency lock")
                .entries
                .remove(&key);
            // Waiters see the sender go and claim again.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Position;

    fn accepted(offset: u64) -> Answer {
        Ok(Accepted {
            station: "orders".into(),
            position: Position::offset(offset),
            schema_version: Some(1),
        })
    }

    #[test]
    fn a_settled_key_answers_retries_until_the_window_ends() {
        let memory = Idempotency::new(Duration::from_millis(50));
        let station: Arc<str> = "orders".into();
        let Claim::First(ticket) = memory.claim(&station, "k") else {
            panic!("the first claim stores")
        };
        ticket.settle(&accepted(7));
        match memory.claim(&station, "k") {
            Claim::Answered(Ok(a)) => assert_eq!(a.position.offset, 7),
            _ => panic!("a retry gets the first answer"),
        }
        assert!(matches!(
            memory.claim(&"other".into(), "k"),
            Claim::First(_)
        ));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(memory.claim(&station, "k"), Claim::First(_)));
    }

    #[test]
    fn an_unavailable_answer_or_an_abandoned_try_is_not_remembered() {
        let memory = Idempotency::new(Duration::from_secs(60));
        let station: Arc<str> = "orders".into();
        let Claim::First(ticket) = memory.claim(&station, "k") else {
            panic!()
        };
        assert!(matches!(memory.claim(&station, "k"), Claim::Wait(_)));
        ticket.settle(&Err(PipelineError::RegistryNotReady("later".into())));
        let Claim::First(ticket) = memory.claim(&station, "k") else {
            panic!("a 503 is tried again")
        };
        drop(ticket);
        assert!(matches!(memory.claim(&station, "k"), Claim::First(_)));
    }
}
