//! What each schedule of `schedules.toml` last did, as the API, the dashboard and the alerts see
//! it; the gateway's scheduler records every tick it produces here.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// One schedule's runs in this gateway.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    /// The last tick produced (by this gateway, or before a restart as its data dir recorded).
    pub last_tick: Option<Timestamp>,
    /// Why the last attempt failed; `None` once a tick is produced.
    pub last_error: Option<String>,
    pub succeeded: u64,
    pub failed: u64,
}

/// The runs of every schedule, by name.
#[derive(Debug, Default)]
pub struct ScheduleRuns(Mutex<HashMap<String, Runs>>);

impl ScheduleRuns {
    pub fn get(&self, schedule: &str) -> Runs {
        let runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(schedule).cloned().unwrap_or_default()
    }

    /// The tick a gateway starts from: what its data dir recorded.
    pub fn restored(&self, schedule: &str, tick: Timestamp) {
        self.update(schedule, |runs| runs.last_tick = Some(tick));
    }

    pub fn succeeded(&self, schedule: &str, tick: Timestamp) {
        super::schedule_ran(schedule, "ok");
        self.update(schedule, |runs| {
            runs.last_tick = Some(tick);
            runs.last_error = None;
            runs.succeeded += 1;
        });
    }

    pub fn failed(&self, schedule: &str, why: String) {
        super::schedule_ran(schedule, "failed");
        self.update(schedule, |runs| {
            runs.last_error = Some(why);
            runs.failed += 1;
        });
    }

    fn update(&self, schedule: &str, change: impl FnOnce(&mut Runs)) {
        let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        change(runs.entry(schedule.to_owned()).or_default());
    }
}
