//! Consumer groups of the embedded store: which messages of a log each group has acknowledged,
//! and which are leased to a consumer right now, both persisted. Consumers of one group share the
//! work — each delivered message is leased to one of them — while every group sees every message.
//! A lease that is neither acked nor nacked within the station's `ack_timeout` expires and the
//! message is delivered again with its delivery count raised; once a message has been delivered
//! `max_deliveries` times without an ack it is handed back as exhausted, for the dead-letter queue.
//! A message produced with a first-delivery time in the future waits as a lease of delivery 0.
//!
//! Deadlines are wall-clock milliseconds so leases, delivery counts and delays survive a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjall::Keyspace;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::backends::queues::AckOutcome;
use crate::model::time::now_ms;
use crate::model::Position;

/// A metadata write: a key set to a value, or deleted (`None`).
pub(super) type MetaChange = (Vec<u8>, Option<Vec<u8>>);

/// The acknowledged part of a log, for one group: everything below `below`, plus `acked`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Committed {
    below: u64,
    acked: BTreeSet<u64>,
}

/// A message held for one group: leased to a consumer until `deadline_ms`, or (delivery 0) not to
/// be delivered before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    deadline_ms: u64,
    delivery: u32,
}

/// What one lease call decided.
#[derive(Debug, Default)]
pub(super) struct Leased {
    /// `(offset, delivery)` to hand to the consumer, in offset order.
    pub deliver: Vec<(u64, u32)>,
    /// `(offset, delivery)` delivered `max_deliveries` times without an ack: for the DLQ.
    pub exhausted: Vec<(u64, u32)>,
    /// What to persist before answering.
    pub changes: Vec<MetaChange>,
    /// Whether offsets remain that this call did not look at (the scan is bounded).
    pub more: bool,
}

/// How one lease call behaves.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeaseRules {
    pub max: usize,
    pub ack_timeout: Duration,
    /// 0: never exhausted.
    pub max_deliveries: u32,
}

/// Most offsets one lease call walks past without delivering (delayed ones), so a long run of
/// delayed messages never makes one call slow.
const MAX_SCAN: u64 = 4096;

/// One group's position on one log.
#[derive(Debug)]
pub struct GroupState {
    key: Vec<u8>,
    lease_prefix: Vec<u8>,
    committed: Committed,
    /// Lowest offset never looked at for this group.
    next: u64,
    leases: BTreeMap<u64, Lease>,
}

/// A group's state, locked across the durable write of its changes so they persist in order.
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

    /// Whether `group` is one of `log`'s groups, or `log` has fewer than `max`: those in use
    /// since the store opened and those with a position on disk.
    pub(super) fn admits(&self, log: &str, group: &str, max: usize) -> Result<bool, StoreError> {
        let states = self.states.lock().expect("groups lock");
        if states.contains_key(&(log.to_owned(), group.to_owned())) {
            return Ok(true);
        }
        let read_error = |e: fjall::Error| StoreError::Read(format!("the groups of {log}: {e}"));
        let prefix = format!("group/{log}/");
        if self
            .meta
            .contains_key(format!("{prefix}{group}"))
            .map_err(read_error)?
        {
            return Ok(true);
        }
        let mut names: std::collections::HashSet<Vec<u8>> = states
            .keys()
            .filter(|(l, _)| l == log)
            .map(|(_, g)| g.as_bytes().to_vec())
            .collect();
        for guard in self.meta.prefix(prefix.as_bytes()) {
            if names.len() >= max {
                break;
            }
            let key = guard.key().map_err(read_error)?;
            names.insert(key[prefix.len()..].to_vec());
        }
        Ok(names.len() < max)
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
        let read_error =
            |e: &dyn std::fmt::Display| StoreError::Read(format!("group {group} on {log}: {e}"));
        let key = format!("group/{log}/{group}").into_bytes();
        let committed = match self.meta.get(&key).map_err(|e| read_error(&e))? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| read_error(&e))?,
            None => Committed {
                below: log_first,
                acked: BTreeSet::new(),
            },
        };
        let lease_prefix = format!("lease/{log}/{group}/").into_bytes();
        let mut leases = BTreeMap::new();
        for guard in self.meta.prefix(&lease_prefix) {
            let (key, value) = guard.into_inner().map_err(|e| read_error(&e))?;
            let Some(offset) = key
                .get(lease_prefix.len()..)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let lease: Lease = postcard::from_bytes(&value).map_err(|e| read_error(&e))?;
            leases.insert(offset, lease);
        }
        let state = Arc::new(tokio::sync::Mutex::new(GroupState {
            key,
            lease_prefix,
            next: committed.below,
            committed,
            leases,
        }));
        states.insert(id, state.clone());
        Ok(state)
    }
}

impl GroupState {
    /// Leases up to `rules.max` messages from a log holding offsets `first..next`: expired leases
    /// first, then messages never delivered. `not_before(offset)` tells when a message may first
    /// be delivered (wall-clock ms), if it was produced with a delay.
    pub(super) fn lease(
        &mut self,
        first: u64,
        next: u64,
        rules: LeaseRules,
        mut not_before: impl FnMut(u64) -> Option<u64>,
    ) -> Leased {
        let now = now_ms();
        let timeout = rules.ack_timeout.as_millis() as u64;
        let mut changed = self.skip_trimmed(first);
        let mut leased = Leased::default();
        for (&offset, lease) in self.leases.iter_mut() {
            if leased.deliver.len() == rules.max {
                break;
            }
            if lease.deadline_ms > now {
                continue;
            }
            changed.push(offset);
            lease.deadline_ms = now + timeout;
            if rules.max_deliveries > 0 && lease.delivery >= rules.max_deliveries {
                // Held while it is dead-lettered, so no other consumer takes it meanwhile.
                leased.exhausted.push((offset, lease.delivery));
            } else {
                lease.delivery += 1;
                leased.deliver.push((offset, lease.delivery));
            }
        }
        let scan_end = next.min(self.next.saturating_add(MAX_SCAN));
        while leased.deliver.len() < rules.max && self.next < scan_end {
            let offset = self.next;
            self.next += 1;
            if offset < self.committed.below
                || self.committed.acked.contains(&offset)
                || self.leases.contains_key(&offset)
            {
                continue;
            }
            changed.push(offset);
            match not_before(offset) {
                Some(at) if at > now => {
                    self.leases.insert(
                        offset,
                        Lease {
                            deadline_ms: at,
                            delivery: 0,
                        },
                    );
                }
                _ => {
                    self.leases.insert(
                        offset,
                        Lease {
                            deadline_ms: now + timeout,
                            delivery: 1,
                        },
                    );
                    leased.deliver.push((offset, 1));
                }
            }
        }
        leased.more = self.next < next && leased.deliver.len() < rules.max;
        leased.deliver.sort_unstable();
        leased.changes = self.lease_changes(&changed);
        leased
    }

    /// When the earliest lease expires (wall-clock ms), if any.
    pub(super) fn next_expiry_ms(&self) -> Option<u64> {
        self.leases.values().map(|l| l.deadline_ms).min()
    }

    /// Forgets everything below `first`, the log's oldest retained offset: messages retention
    /// removed can never be acked, and must not hold the committed position back. Returns the
    /// offsets whose leases were dropped.
    fn skip_trimmed(&mut self, first: u64) -> Vec<u64> {
        let kept = self.leases.split_off(&first);
        let dropped = std::mem::replace(&mut self.leases, kept);
        if self.committed.below < first {
            self.committed.below = first;
            self.committed.acked = self.committed.acked.split_off(&first);
        }
        self.next = self.next.max(first);
        dropped.into_keys().collect()
    }

    /// Acknowledges `offsets` of a log whose oldest retained offset is `first`; offsets never
    /// delivered to this group are reported unknown. Returns what to persist.
    pub(super) fn ack(&mut self, offsets: &[u64], first: u64) -> (AckOutcome, Vec<MetaChange>) {
        let mut changed = self.skip_trimmed(first);
        let mut outcome = AckOutcome::default();
        for &offset in offsets {
            if self.leases.get(&offset).is_some_and(|l| l.delivery > 0) {
                self.leases.remove(&offset);
                self.committed.acked.insert(offset);
                changed.push(offset);
                outcome.acked += 1;
            } else if offset < self.committed.below || self.committed.acked.contains(&offset) {
                outcome.acked += 1;
            } else {
                outcome.unknown.push(Position::offset(offset));
            }
        }
        while self.committed.acked.remove(&self.committed.below) {
            self.committed.below += 1;
        }
        let mut changes = self.lease_changes(&changed);
        if !changed.is_empty() {
            changes.push(self.persisted());
        }
        (outcome, changes)
    }

    /// Gives leased `offsets` back, deliverable again after `delay`. Returns what to persist.
    pub(super) fn nack(
        &mut self,
        offsets: &[u64],
        delay: Duration,
    ) -> (AckOutcome, Vec<MetaChange>) {
        let mut outcome = AckOutcome::default();
        let at = now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        let mut changed = Vec::new();
        for &offset in offsets {
            match self.leases.get_mut(&offset) {
                Some(lease) if lease.delivery > 0 => {
                    lease.deadline_ms = at;
                    changed.push(offset);
                    outcome.acked += 1;
                }
                _ => outcome.unknown.push(Position::offset(offset)),
            }
        }
        (outcome, self.lease_changes(&changed))
    }

    /// The writes that make the leases of `offsets` on disk match memory.
    fn lease_changes(&self, offsets: &[u64]) -> Vec<MetaChange> {
        offsets
            .iter()
            .map(|offset| {
                let mut key = self.lease_prefix.clone();
                key.extend_from_slice(&offset.to_be_bytes());
                let value = self
                    .leases
                    .get(offset)
                    .map(|lease| postcard::to_stdvec(lease).expect("leases serialize"));
                (key, value)
            })
            .collect()
    }

    /// The metadata write that persists this group's acknowledged position.
    fn persisted(&self) -> MetaChange {
        (
            self.key.clone(),
            Some(postcard::to_stdvec(&self.committed).expect("group state serializes")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> GroupState {
        GroupState {
            key: b"group/log/g".to_vec(),
            lease_prefix: b"lease/log/g/".to_vec(),
            committed: Committed::default(),
            next: 0,
            leases: BTreeMap::new(),
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    fn rules(max: usize, ack_timeout: Duration) -> LeaseRules {
        LeaseRules {
            max,
            ack_timeout,
            max_deliveries: 5,
        }
    }

    fn lease(group: &mut GroupState, next: u64, max: usize, timeout: Duration) -> Vec<(u64, u32)> {
        group.lease(0, next, rules(max, timeout), |_| None).deliver
    }

    #[test]
    fn leased_messages_are_not_delivered_twice_before_timeout() {
        let mut group = state();
        assert_eq!(lease(&mut group, 3, 2, LONG), vec![(0, 1), (1, 1)]);
        assert_eq!(lease(&mut group, 3, 10, LONG), vec![(2, 1)]);
        assert!(lease(&mut group, 3, 10, LONG).is_empty());
    }

    #[test]
    fn acked_offsets_advance_the_committed_position() {
        let mut group = state();
        lease(&mut group, 3, 3, LONG);
        let (outcome, changes) = group.ack(&[1, 0, 9], 0);
        assert_eq!(
            outcome,
            AckOutcome {
                acked: 2,
                unknown: vec![Position::offset(9)]
            }
        );
        assert_eq!(group.committed.below, 2);
        assert_eq!(changes.len(), 3, "two lease deletions and the position");
        assert!(changes[..2].iter().all(|(_, value)| value.is_none()));
        assert_eq!(group.ack(&[0], 0).0.acked, 1, "re-acking is harmless");
    }

    #[test]
    fn messages_removed_by_retention_do_not_hold_the_position_back() {
        let mut group = state();
        lease(&mut group, 10, 10, LONG);
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
        lease(&mut group, 2, 2, Duration::ZERO);
        assert_eq!(lease(&mut group, 2, 10, LONG), vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn nack_makes_a_message_deliverable_again() {
        let mut group = state();
        lease(&mut group, 1, 1, LONG);
        assert_eq!(group.nack(&[0], Duration::ZERO).0.acked, 1);
        assert_eq!(lease(&mut group, 1, 1, LONG), vec![(0, 2)]);
    }

    #[test]
    fn a_message_delivered_max_deliveries_times_is_exhausted_not_delivered() {
        let mut group = state();
        let rules = LeaseRules {
            max: 10,
            ack_timeout: Duration::ZERO,
            max_deliveries: 2,
        };
        assert_eq!(group.lease(0, 1, rules, |_| None).deliver, vec![(0, 1)]);
        assert_eq!(group.lease(0, 1, rules, |_| None).deliver, vec![(0, 2)]);
        let third = group.lease(0, 1, rules, |_| None);
        assert!(third.deliver.is_empty());
        assert_eq!(third.exhausted, vec![(0, 2)]);
        assert_eq!(
            group.ack(&[0], 0).0.acked,
            1,
            "the exhausted message can be settled"
        );
    }

    #[test]
    fn a_delayed_message_waits_and_cannot_be_acked_before_delivery() {
        let mut group = state();
        let later = now_ms() + 60_000;
        let leased = group.lease(0, 2, rules(10, LONG), |offset| {
            (offset == 0).then_some(later)
        });
        assert_eq!(leased.deliver, vec![(1, 1)]);
        assert_eq!(leased.changes.len(), 2, "both holds are persisted");
        assert_eq!(group.ack(&[0], 0).0.unknown, vec![Position::offset(0)]);
        group.leases.get_mut(&0).unwrap().deadline_ms = now_ms();
        assert_eq!(
            lease(&mut group, 2, 10, LONG),
            vec![(0, 1)],
            "delivered once due"
        );
    }
}
