//! Retries named by an `Idempotency-Key`: within the window (`limits.idempotency_window`, two
//! minutes by default), a message whose station and key were seen gets the first answer again and
//! stores nothing new — whichever front end and backend. A retry that arrives while the first try
//! is still being stored waits for its answer. Only answers that settle the message are
//! remembered (stored, or refused by its schema); after a 503 or a refused request, a retry is
//! tried afresh.
//!
//! The memory is the gateway's own: a restart forgets it (NATS stations also dedupe in JetStream).
//! It is bounded: settled keys and their answers take at most `limits.max_idempotency_bytes`;
//! past it the oldest are forgotten before their window ends (counted in
//! `sluice_limit_hits_total{limit="limits.max_idempotency_bytes"}`), so no number of distinct
//! keys can grow the gateway without bound. Each key is at most `limits.max_idempotency_key_bytes`
//! long, checked before it is claimed.

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
    /// What the settled keys and their answers take, about.
    bytes: usize,
    /// The most they may take.
    budget: usize,
}

impl Inner {
    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.expiry.front() {
            if *until > now {
                break;
            }
            self.forget_oldest();
        }
    }

    /// Forgets the settled key that expires first.
    fn forget_oldest(&mut self) {
        let Some((_, key)) = self.expiry.pop_front() else {
            return;
        };
        if let Some(Entry::Settled(answer)) = self.entries.get(&key) {
            self.bytes = self.bytes.saturating_sub(settled_bytes(&key, answer));
            self.entries.remove(&key);
        }
    }

    /// Remembers a settled answer for `window`, forgetting the oldest ones first if the budget
    /// would be exceeded; an answer larger than the whole budget is not remembered.
    fn remember(&mut self, key: Key, answer: Answer, until: Instant) {
        let size = settled_bytes(&key, &answer);
        if size > self.budget {
            self.entries.remove(&key);
            crate::metrics::limit_hit("limits.max_idempotency_bytes");
            return;
        }
        while self.bytes + size > self.budget && !self.expiry.is_empty() {
            self.forget_oldest();
            crate::metrics::limit_hit("limits.max_idempotency_bytes");
        }
        self.bytes += size;
        self.entries.insert(key.clone(), Entry::Settled(answer));
        self.expiry.push_back((until, key));
    }
}

/// About the bytes a settled key and its answer take in memory.
fn settled_bytes((station, key): &Key, answer: &Answer) -> usize {
    const ENTRY: usize = 128;
    let answer = match answer {
        Ok(accepted) => accepted.station.len(),
        Err(error) => error.violation_report().map_or(0, |report| {
            let violations: usize = report
                .violations
                .iter()
                .map(|v| v.path.len() + v.schema_path.len() + v.reason.len() + 72)
                .sum();
            report.schema.len() + violations
        }),
    };
    ENTRY + station.len() + key.len() + answer
}

impl Idempotency {
    /// Remembers answers for `window`, in at most `budget` bytes.
    pub fn new(window: Duration, budget: usize) -> Self {
        Self {
            window,
            inner: Arc::new(Mutex::new(Inner {
                budget,
                ..Inner::default()
            })),
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
                inner.remember(key, answer.clone(), until);
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
        let memory = Idempotency::new(Duration::from_millis(50), 1 << 20);
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
        let memory = Idempotency::new(Duration::from_secs(60), 1 << 20);
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

    #[test]
    fn past_its_budget_the_memory_forgets_its_oldest_keys_first() {
        let station: Arc<str> = "orders".into();
        let one = settled_bytes(&(station.clone(), "k-0".into()), &accepted(0));
        let memory = Idempotency::new(Duration::from_secs(60), 3 * one);
        for i in 0..5 {
            let Claim::First(ticket) = memory.claim(&station, &format!("k-{i}")) else {
                panic!("a new key")
            };
            ticket.settle(&accepted(i));
        }
        let inner = memory.inner.lock().unwrap();
        assert_eq!(inner.entries.len(), 3);
        assert!(inner.bytes <= 3 * one);
        drop(inner);
        assert!(
            matches!(memory.claim(&station, "k-0"), Claim::First(_)),
            "the oldest went first"
        );
        assert!(matches!(memory.claim(&station, "k-4"), Claim::Answered(_)));
    }
}
