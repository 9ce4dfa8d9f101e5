//! Produces the messages of `schedules.toml` on their ticks, through the pipeline like any
//! producer's: judged, counted, dead-lettered on a backend failure. Each message carries
//! `sluice-schedule` and `sluice-scheduled-for` headers and the idempotency key
//! `schedule/<name>/<tick>`, so a retry of a tick is one message (and, on JetStream, so is the
//! same tick fired by another gateway within the stream's duplicate window). The last tick
//! produced is kept per schedule in `<storage.dir>/schedules/`, so a restart neither repeats a
//! tick nor forgets the ticks it missed (produced as the schedule's `catch_up` says). Schedules on
//! Kafka stations run on the one gateway holding the scheduling role (`backends::kafka`); the
//! others keep their last tick current, so taking the role over produces no tick twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::pipeline::{Incoming, Pipeline};
use crate::registry::cadence::CatchUp;
use crate::registry::schedules::Schedule;
use crate::registry::Station;

/// How often the scheduler looks for ticks due: the lateness a tick may have.
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// Runs until aborted with the gateway's background tasks.
pub async fn run(pipeline: Arc<Pipeline>, dir: PathBuf) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_ticks = NextTicks::default();
    loop {
        ticks.tick().await;
        let snapshot = pipeline.registry().snapshot();
        for schedule in snapshot.schedules() {
            let Some(station) = snapshot.station(&schedule.station) else {
                continue;
            };
            run_due(&pipeline, &dir, schedule, station, &mut next_ticks).await;
        }
    }
}

/// The next tick of each schedule, found once per last tick rather than at every look (a cron
/// search walks the wall clock minute by minute). A new revision's schedule is a new `Arc`, so
/// a changed cadence is searched afresh.
#[derive(Default)]
struct NextTicks(HashMap<String, (Arc<Schedule>, Timestamp, Option<Timestamp>)>);

impl NextTicks {
    fn after(&mut self, schedule: &Arc<Schedule>, last: Timestamp) -> Option<Timestamp> {
        match self.0.get(&schedule.name) {
            Some((known, from, next)) if Arc::ptr_eq(known, schedule) && *from == last => *next,
            _ => {
                let next = schedule.cadence.next_after(last);
                self.0
                    .insert(schedule.name.clone(), (schedule.clone(), last, next));
                next
            }
        }
    }
}

/// Produces what `schedule` owes now.
async fn run_due(
    pipeline: &Arc<Pipeline>,
    dir: &Path,
    schedule: &Arc<Schedule>,
    station: &Station,
    next_ticks: &mut NextTicks,
) {
    let now = Timestamp::now();
    let runs = pipeline.schedule_runs();
    let last = match runs.get(&schedule.name).last_tick {
        Some(last) => last,
        // First seen by this gateway: from what its data dir recorded, else from now on.
        None => {
            let last = recorded(dir, &schedule.name).unwrap_or(now);
            runs.restored(&schedule.name, last);
            if let Err(why) = record(dir, &schedule.name, last) {
                tracing::warn!(schedule = %schedule.name, %why, "cannot record the schedule's start");
            }
            last
        }
    };
    if next_ticks
        .after(schedule, last)
        .is_none_or(|next| next > now)
    {
        return;
    }
    let skip_to_now = || {
        let latest = schedule.cadence.due(Some(last), now, CatchUp::Latest);
        if let Some(&skipped) = latest.last() {
            runs.restored(&schedule.name, skipped);
            let _ = record(dir, &schedule.name, skipped);
        }
    };
    match pipeline.runs_schedules_on(station).await {
        Ok(true) => {}
        // Another gateway holds the scheduling role (Kafka): its ticks are not this one's to
        // produce, now or after taking the role over.
        Ok(false) => return skip_to_now(),
        Err(error) => {
            runs.failed(&schedule.name, error.to_string());
            return;
        }
    }
    let due = schedule.cadence.due(Some(last), now, schedule.catch_up);
    if due.is_empty() && schedule.catch_up == CatchUp::None {
        // Missed ticks are skipped: start again from the most recent one.
        return skip_to_now();
    }
    for tick in due {
        match pipeline
            .produce(&schedule.station, message(schedule, tick))
            .await
        {
            Ok(_) => {
                runs.succeeded(&schedule.name, tick);
                if let Err(why) = record(dir, &schedule.name, tick) {
                    tracing::warn!(schedule = %schedule.name, %why, "cannot record the tick produced");
                }
            }
            Err(error) => {
                tracing::warn!(schedule = %schedule.name, %tick, %error, "a scheduled message was not produced");
                runs.failed(&schedule.name, error.to_string());
                return;
            }
        }
    }
}

/// The message of `schedule` for `tick`.
fn message(schedule: &Schedule, tick: Timestamp) -> Incoming {
    let mut headers = vec![
        ("sluice-schedule".to_owned(), schedule.name.clone()),
        ("sluice-scheduled-for".to_owned(), tick.to_string()),
    ];
    headers.extend(schedule.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Incoming {
        payload: schedule.payload.clone(),
        content_type: Some(schedule.content_type.clone()),
        headers: headers.into(),
        idempotency_key: Some(format!("schedule/{}/{tick}", schedule.name)),
        from_gateway: true,
        ..Incoming::default()
    }
}

/// The last tick the data dir recorded for `schedule`.
fn recorded(dir: &Path, schedule: &str) -> Option<Timestamp> {
    std::fs::read_to_string(dir.join(schedule))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records `tick` as `schedule`'s last, replacing the file whole.
fn record(dir: &Path, schedule: &str, tick: Timestamp) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".{schedule}.partial"));
    std::fs::write(&partial, tick.to_string())?;
    std::fs::rename(partial, dir.join(schedule))
}
