//! Consumer groups of the embedded store: which messages of a log each group has acknowledged
//! (persisted), and which are leased to a consumer right now (in memory). Consumers of one group
//! share the work — each delivered message is leased to one of them — while every group sees every
//! message. A lease that is neither acked nor nacked within the station's `ack_timeout` expires and
//! the message is delivered again with its delivery count raised.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjall::Keyspace;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::StoreError;
use crate::backends::Record;

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub offset: u64,
    /// 1 on first delivery, raised on each redelivery.
    pub delivery: u32,
    pub record: Record,
}

/// What an ack or nack did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AckOutcome {
    /// Offsets acknowledged (or given back, for a nack) by this call or already before it.
    pub acked: usize,
    /// Offsets this group was never delivered, left untouched.
    pub unknown: Vec<u64>,
}

/// The acknowledged part of a log, for one group: everything below `below`, plus `acked`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Committed {
    below: u64,
    acked: BTreeSet<u64>,
}

#[derive(Debug)]
struct Lease {
    deadline: Instant,
    delivery: u32,
}

/// One group's position on one log.
#[derive(Debug)]
pub struct GroupState {
    key: Vec<u8>,
    committed: Committed,
    /// Lowest offset never delivered to this group.
    next: u64,
    leases: BTreeMap<u64, Lease>,
}

/// A group's state, locked across the durable write of an ack so acks persist in order.
pub(super) type SharedGroupState = Arc<tokio::sync::Mutex<GroupState>>;

/// Every group the store has seen since it opened, by (log, group).
pub(super) struct Groups {
    meta: Keyspace,
    states: Mutex<HashMap<(String, String), SharedGroupState>>,
}

impl Groups {
    pub(super) fn new(meta: Keyspace) -> Self {
        Self {
            meta,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// The state of `group` on `log`, loaded from disk on first use. A new group starts at the
    /// oldest retained message, `log_first`.
    pub(super) fn get(
        &self,
        log: &str,
        group: &str,
        log_first: u64,
    ) -> Result<SharedGroupState, StoreError> {
        let mut states = self.states.lock().expect("groups lock");
        let id = (log.to_owned(), group.to_owned());
        if let Some(state) = states.get(&id) {
            return Ok(state.clone());
        }
        let key = format!("group/{log}/{group}").into_bytes();
        let committed = match self
            .meta
            .get(&key)
            .map_err(|e| StoreError::Read(e.to_string()))?
        {
            Some(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| StoreError::Read(format!("group {group} on {log}: {e}")))?,
            None => Committed {
                below: log_first,
                acked: BTreeSet::new(),
            },
        };
        let state = Arc::new(tokio::sync::Mutex::new(GroupState {
            key,
            next: committed.below,
            committed,
            leases: BTreeMap::new(),
        }));
        states.insert(id, state.clone());
        Ok(state)
    }
}

impl GroupState {
    /// Leases up to `max` messages from a log holding offsets `first..next`: expired leases first,
    /// then messages never delivered. Returns `(offset, delivery)` in offset order.
    pub(super) fn lease(
        &mut self,
        first: u64,
        next: u64,
        max: usize,
        ack_timeout: Duration,
    ) -> Vec<(u64, u32)> {
        let now = Instant::now();
        self.skip_trimmed(first);
        let mut out = Vec::new();
        for (offset, lease) in self.leases.iter_mut() {
            if out.len() == max {
                break;
            }
            if lease.deadline <= now {
                lease.delivery += 1;
                lease.deadline = now + ack_timeout;
                out.push((*offset, lease.delivery));
            }
        }
        while out.len() < max && self.next < next {
            let offset = self.next;
            self.next += 1;
            if offset < self.committed.below || self.committed.acked.contains(&offset) {
                continue;
            }
            self.leases.insert(
                offset,
                Lease {
                    deadline: now + ack_timeout,
                    delivery: 1,
                },
            );
            out.push((offset, 1));
        }
        out.sort_unstable();
        out
    }

    /// When the earliest lease expires, if any.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.deadline).min()
    }

    /// Forgets everything below `first`, the log's oldest retained offset: messages retention
    /// removed can never be acked, and must not hold the committed position back.
    fn skip_trimmed(&mut self, first: u64) {
        self.leases.retain(|offset, _| *offset >= first);
        if self.committed.below < first {
            self.committed.below = first;
            self.committed.acked = self.committed.acked.split_off(&first);
        }
        self.next = self.next.max(first);
    }

    /// Acknowledges `offsets` of a log whose oldest retained offset is `first`; offsets never
    /// leased to this group are reported unknown.
    pub(super) fn ack(&mut self, offsets: &[u64], first: u64) -> AckOutcome {
        self.skip_trimmed(first);
        let mut outcome = AckOutcome::default();
        for &offset in offsets {
            if self.leases.remove(&offset).is_some() {
                self.committed.acked.insert(offset);
                outcome.acked += 1;
            } else if offset < self.committed.below || self.committed.acked.contains(&offset) {
                outcome.acked += 1;
            } else {
                outcome.unknown.push(offset);
            }
        }
        while self.committed.acked.remove(&self.committed.below) {
            self.committed.below += 1;
        }
        outcome
    }

    /// Gives leased `offsets` back, deliverable again after `delay`.
    pub(super) fn nack(&mut self, offsets: &[u64], delay: Duration) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        let at = Instant::now() + delay;
        for &offset in offsets {
            match self.leases.get_mut(&offset) {
                Some(lease) => {
                    lease.deadline = at;
                    outcome.acked += 1;
                }
                None => outcome.unknown.push(offset),
            }
        }
        outcome
    }

    /// The metadata key and value that persist this group's acknowledged position.
    pub(super) fn persisted(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.key.clone(),
            postcard::to_stdvec(&self.committed).expect("group state serializes"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> GroupState {
        GroupState {
            key: Vec::new(),
            committed: Committed::default(),
            next: 0,
            leases: BTreeMap::new(),
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn leased_messages_are_not_delivered_twice_before_timeout() {
        let mut group = state();
        assert_eq!(group.lease(0, 3, 2, LONG), vec![(0, 1), (1, 1)]);
        assert_eq!(group.lease(0, 3, 10, LONG), vec![(2, 1)]);
        assert!(group.lease(0, 3, 10, LONG).is_empty());
    }

    #[test]
    fn acked_offsets_advance_the_committed_position() {
        let mut group = state();
        group.lease(0, 3, 3, LONG);
        let outcome = group.ack(&[1, 0, 9], 0);
        assert_eq!(
            outcome,
            AckOutcome {
                acked: 2,
                unknown: vec![9]
            }
        );
        assert_eq!(group.committed.below, 2);
        assert_eq!(group.ack(&[0], 0).acked, 1, "re-acking is harmless");
    }

    #[test]
    fn messages_removed_by_retention_do_not_hold_the_position_back() {
        let mut group = state();
        group.lease(0, 10, 10, LONG);
        group.ack(&[1, 2, 3], 0);
        assert_eq!(group.committed.below, 0, "offset 0 is still pending");
        // Retention removed offsets 0..5; 0 can never be acked now.
        group.ack(&[6], 5);
        assert_eq!(group.committed.below, 5);
        group.ack(&[5], 5);
        assert_eq!(group.committed.below, 7);
        assert!(
            group.committed.acked.is_empty(),
            "{:?}",
            group.committed.acked
        );
    }

    #[test]
    fn expired_leases_come_back_with_a_higher_delivery_count() {
        let mut group = state();
        group.lease(0, 2, 2, Duration::ZERO);
        assert_eq!(group.lease(0, 2, 10, LONG), vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn nack_makes_a_message_deliverable_again() {
        let mut group = state();
        group.lease(0, 1, 1, LONG);
        assert_eq!(group.nack(&[0], Duration::ZERO).acked, 1);
        assert_eq!(group.lease(0, 1, 1, LONG), vec![(0, 2)]);
    }
}
