//! When a schedule ticks: a five-field cron expression read as Vixie cron reads it (cronp) on the
//! wall clock of an IANA time zone (jiff, with the time-zone database built in, so a container
//! without `/usr/share/zoneinfo` has it), or a fixed period. Gives the next tick after an instant
//! and the ticks owed after downtime under a catch-up policy.
//!
//! Daylight saving: every local time a cron expression matches fires once. A local time that
//! occurs twice (clocks set back) fires at its first occurrence; one that does not occur (clocks
//! set forward) fires at the first instant after the gap, once, however many matching local times
//! the gap swallowed.

use std::time::Duration;

use cronp::{CivilDateTime, Vixie};
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A cron expression never matches if it finds nothing in this many years of minutes.
const SEARCH_YEARS: i16 = 5;

/// A schedule's rhythm.
#[derive(Debug, Clone)]
pub enum Cadence {
    /// Local times a five-field cron expression matches, in `zone`.
    Cron {
        expression: Box<cronp::Schedule<Vixie>>,
        zone: TimeZone,
    },
    /// Multiples of a period since the Unix epoch (`every = "15m"` ticks at :00, :15, :30, :45).
    Every(Duration),
}

/// What a gateway produces for the ticks it missed while no gateway ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// One message, for the most recent missed tick.
    Latest,
    /// One message per missed tick, the most recent ones, at most this many.
    All(usize),
    /// Nothing: missed ticks are skipped.
    None,
}

/// Why a cadence cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CadenceError {
    #[error("`{expression}` is not a five-field cron expression: {reason}")]
    Cron { expression: String, reason: String },
    #[error("`{0}` is not an IANA time zone name (such as `Europe/Berlin` or `UTC`)")]
    Zone(String),
    #[error("`every` must be at least one second, and a whole number of seconds")]
    Period,
}

impl Cadence {
    /// `expression` (five fields: minute, hour, day of month, month, day of week) on the wall
    /// clock of `zone`.
    pub fn cron(expression: &str, zone: &str) -> Result<Self, CadenceError> {
        let refused = |reason: String| CadenceError::Cron {
            expression: expression.to_owned(),
            reason,
        };
        if expression.split_whitespace().count() != 5 {
            return Err(refused("it needs exactly five fields".to_owned()));
        }
        let parsed =
            cronp::Schedule::<Vixie>::parse(expression).map_err(|e| refused(e.to_string()))?;
        let zone = jiff::tz::db()
            .get(zone)
            .map_err(|_| CadenceError::Zone(zone.to_owned()))?;
        Ok(Self::Cron {
            expression: Box::new(parsed),
            zone,
        })
    }

    /// Every `period`, a whole number of seconds.
    pub fn every(period: Duration) -> Result<Self, CadenceError> {
        if period < Duration::from_secs(1) || period.subsec_nanos() != 0 {
            return Err(CadenceError::Period);
        }
        Ok(Self::Every(period))
    }

    /// The first tick strictly after `after`; `None` for an expression that matches no time in
    /// the next [`SEARCH_YEARS`] years (`0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Every(period) => {
                let period = i128::from(period.as_secs()) * 1_000_000_000;
                let now = after.as_nanosecond();
                let next = (now.div_euclid(period) + 1) * period;
                Timestamp::from_nanosecond(next).ok()
            }
            Self::Cron { expression, zone } => next_cron(expression, zone, after),
        }
    }

    /// The ticks owed at `now` when the last one produced was `last` (`None`: nothing was ever
    /// produced, so nothing is owed), oldest first. With [`CatchUp::Latest`] a gateway that
    /// ran throughout owes exactly the one tick that just passed.
    pub fn due(&self, last: Option<Timestamp>, now: Timestamp, policy: CatchUp) -> Vec<Timestamp> {
        let Some(last) = last else {
            return Vec::new();
        };
        let keep = match policy {
            CatchUp::Latest => 1,
            CatchUp::All(at_most) => at_most.max(1),
            CatchUp::None => 1,
        };
        let mut owed = std::collections::VecDeque::with_capacity(keep);
        let mut tick = last;
        while let Some(next) = self.next_after(tick).filter(|next| *next <= now) {
            if owed.len() == keep {
                owed.pop_front();
            }
            owed.push_back(next);
            tick = next;
        }
        let owed: Vec<Timestamp> = owed.into();
        match policy {
            // Only the tick right after the last one: a gateway that ran throughout.
            CatchUp::None if owed.first() != self.next_after(last).as_ref() => Vec::new(),
            _ => owed,
        }
    }
}

/// The first instant after `after` at which `expression` matches the wall clock of `zone`.
fn next_cron(
    expression: &cronp::Schedule<Vixie>,
    zone: &TimeZone,
    after: Timestamp,
) -> Option<Timestamp> {
    let start = zone.to_datetime(after);
    // The next whole minute of the wall clock.
    let mut minute = start
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?
        .checked_add(1.minute())
        .ok()?;
    let end = start.checked_add(SEARCH_YEARS.years()).ok()?;
    while minute <= end {
        if expression.matches(civil(minute)?) {
            let instant = instant_of(zone, minute)?;
            if instant > after {
                return Some(instant);
            }
        }
        minute = minute.checked_add(1.minute()).ok()?;
    }
    None
}

/// The instant a wall-clock minute names in `zone`: the first of two when clocks go back; the end
/// of the gap when clocks go forward over it.
fn instant_of(zone: &TimeZone, minute: DateTime) -> Option<Timestamp> {
    let ambiguous = zone.to_ambiguous_timestamp(minute);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok()
        }
        // The wall clock jumps from `before` to `after` offset: the gap ends where the earlier
        // offset would have reached the minute, which is the transition itself.
        AmbiguousOffset::Gap { .. } => {
            let later = ambiguous.later().ok()?;
            zone.preceding(later)
                .next()
                .map(|transition| transition.timestamp())
        }
    }
}

/// A jiff wall-clock time as cronp takes it.
fn civil(minute: DateTime) -> Option<CivilDateTime> {
    CivilDateTime::new(
        u16::try_from(minute.year()).ok()?,
        u8::try_from(minute.month()).ok()?,
        u8::try_from(minute.day()).ok()?,
        u8::try_from(minute.hour()).ok()?,
        u8::try_from(minute.minute()).ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn ticks(cadence: &Cadence, from: &str, count: usize) -> Vec<String> {
        let mut tick = at(from);
        (0..count)
            .map(|_| {
                tick = cadence.next_after(tick).unwrap();
                tick.to_string()
            })
            .collect()
    }

    #[test]
    fn a_cron_expression_ticks_on_the_zones_wall_clock() {
        let nightly = Cadence::cron("0 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&nightly, "2026-01-10T12:00:00Z", 2),
            ["2026-01-11T01:00:00Z", "2026-01-12T01:00:00Z"]
        );
        // Vixie's weekdays: 1-5 is Monday to Friday; 2026-12-11 is a Friday.
        let weekdays = Cadence::cron("30 9 * * 1-5", "UTC").unwrap();
        assert_eq!(
            ticks(&weekdays, "2026-12-11T10:00:00Z", 1),
            ["2026-12-14T09:30:00Z"]
        );
    }

    #[test]
    fn a_tick_in_the_hour_clocks_skip_runs_once_when_the_gap_ends() {
        // Berlin, 2026-03-29: 02:00 local does not exist; clocks go from 02:00 CET to 03:00 CEST
        // (01:00Z). 02:30 fires once, at 03:00 local.
        let half_past_two = Cadence::cron("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&half_past_two, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // Every quarter hour: 02:00, 02:15, 02:30, 02:45 are swallowed by the gap and fire once
        // at 03:00 local, with 03:00's own tick, not five times.
        let quarters = Cadence::cron("*/15 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&quarters, "2026-03-29T00:40:00Z", 3),
            [
                "2026-03-29T00:45:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z"
            ]
        );
    }

    #[test]
    fn a_tick_in_the_hour_clocks_repeat_runs_once() {
        // Berlin, 2026-10-25: 02:00-03:00 local happens twice (00:00Z-01:00Z CEST, then
        // 01:00Z-02:00Z CET). 02:30 fires at its first occurrence only.
        let half_past_two = Cadence::cron("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&half_past_two, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn a_period_ticks_on_its_multiples_since_the_epoch() {
        let quarter = Cadence::every(Duration::from_secs(900)).unwrap();
        assert_eq!(
            ticks(&quarter, "2026-12-07T10:07:12Z", 2),
            ["2026-12-07T10:15:00Z", "2026-12-07T10:30:00Z"]
        );
        let second = Cadence::every(Duration::from_secs(1)).unwrap();
        assert_eq!(
            ticks(&second, "2026-12-07T10:00:00Z", 1),
            ["2026-12-07T10:00:01Z"]
        );
        assert_eq!(
            Cadence::every(Duration::from_millis(1500)).unwrap_err(),
            CadenceError::Period
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_what_is_wrong() {
        let err = Cadence::cron("0 2 * *", "UTC").unwrap_err().to_string();
        assert!(err.contains("five fields"), "{err}");
        let err = Cadence::cron("61 2 * * *", "UTC").unwrap_err().to_string();
        assert!(err.contains("`61 2 * * *`"), "{err}");
        let err = Cadence::cron("0 2 * * *", "Europe/Atlantis").unwrap_err();
        assert_eq!(err, CadenceError::Zone("Europe/Atlantis".into()));
        let never = Cadence::cron("0 0 30 2 *", "UTC").unwrap();
        assert_eq!(never.next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn after_downtime_the_policy_says_which_missed_ticks_are_owed() {
        let minutely = Cadence::every(Duration::from_secs(60)).unwrap();
        let last = at("2026-12-07T10:00:00Z");
        let now = at("2026-12-07T10:05:30Z");
        let shown = |ticks: Vec<Timestamp>| -> Vec<String> {
            ticks.into_iter().map(|t| t.to_string()).collect()
        };
        assert_eq!(
            shown(minutely.due(Some(last), now, CatchUp::Latest)),
            ["2026-12-07T10:05:00Z"]
        );
        assert_eq!(
            shown(minutely.due(Some(last), now, CatchUp::All(3))),
            [
                "2026-12-07T10:03:00Z",
                "2026-12-07T10:04:00Z",
                "2026-12-07T10:05:00Z"
            ]
        );
        assert!(minutely.due(Some(last), now, CatchUp::None).is_empty());
        // Running throughout, every policy owes the tick that just passed, and nothing twice.
        let just_after = at("2026-12-07T10:01:00.2Z");
        for policy in [CatchUp::Latest, CatchUp::All(5), CatchUp::None] {
            assert_eq!(
                shown(minutely.due(Some(last), just_after, policy)),
                ["2026-12-07T10:01:00Z"],
                "{policy:?}"
            );
        }
        assert!(minutely
            .due(Some(last), at("2026-12-07T10:00:59Z"), CatchUp::Latest)
            .is_empty());
        assert!(minutely.due(None, now, CatchUp::All(3)).is_empty());
    }
}
