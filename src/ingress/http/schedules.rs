//! `GET /v1/schedules`: each schedule of `schedules.toml` with its cadence, its next tick, and
//! what its last run in this gateway did.

use axum::extract::State;
use axum::Json;
use jiff::Timestamp;
use serde_json::{json, Value};

use super::Shared;

pub(super) async fn list_schedules(State(pipeline): Shared) -> Json<Value> {
    let snapshot = pipeline.registry().snapshot();
    let now = Timestamp::now();
    let schedules: Vec<Value> = snapshot
        .schedules()
        .iter()
        .map(|schedule| {
            let runs = pipeline.schedule_runs().get(&schedule.name);
            let from = runs.last_tick.map_or(now, |last| last.max(now));
            json!({
                "name": schedule.name,
                "station": schedule.station,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "every": schedule.every.map(|every| humantime::format_duration(every).to_string()),
                "next_tick": schedule.cadence.next_after(from).map(|t| t.to_string()),
                "last_tick": runs.last_tick.map(|t| t.to_string()),
                "last_result": match (&runs.last_error, runs.succeeded) {
                    (Some(error), _) => json!({"result": "failed", "error": error}),
                    (None, 0) => Value::Null,
                    (None, _) => json!({"result": "ok"}),
                },
                "runs": {"succeeded": runs.succeeded, "failed": runs.failed},
            })
        })
        .collect();
    Json(json!({ "schedules": schedules }))
}
