//! `schedules.toml` at the repository root: recurring messages, each bound to a station, with a
//! cadence ([`Cadence`]) and the message it produces. Read with every revision and refused with it
//! when invalid — including a message the station's schema (the newest version it accepts), its
//! constraints or its `dlq` rules would refuse, so a schema change that would refuse a scheduled
//! message refuses its commit too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use jiff::Timestamp;
use serde::Deserialize;

use super::cadence::{Cadence, CatchUp};
use super::{contract, LoadProblem, SchemaVersion, Station};
use crate::formats::{MessageLimits, Normalize, PayloadEncoding, RepoFiles};
use crate::model::{Violation, CONSTRAINT_MARK};

pub const SCHEDULES_FILE: &str = "schedules.toml";

/// At most this many missed ticks are produced after downtime with `catch_up = "all"`, unless
/// `max_catch_up` says otherwise.
const DEFAULT_MAX_CATCH_UP: usize = 100;

/// One schedule, checked against the revision it came with.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub station: String,
    pub cadence: Cadence,
    /// The cadence as written: `cron` (with its `timezone`) or `every`.
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub every: Option<Duration>,
    /// The message each tick produces, sent as `content_type`.
    pub payload: Bytes,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    pub catch_up: CatchUp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulesFile {
    #[serde(default)]
    schedule: Vec<ScheduleConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleConfig {
    name: String,
    station: String,
    cron: Option<String>,
    #[serde(default, with = "humantime_serde")]
    every: Option<Duration>,
    timezone: Option<String>,
    value: Option<toml::Value>,
    value_base64: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    catch_up: CatchUpName,
    max_catch_up: Option<usize>,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum CatchUpName {
    #[default]
    Latest,
    All,
    None,
}

/// The schedules of `files`, checked against `stations`; each problem pushed to `problems`.
pub fn read(
    files: &RepoFiles,
    stations: &BTreeMap<String, Arc<Station>>,
    problems: &mut Vec<LoadProblem>,
) -> Vec<Arc<Schedule>> {
    let Some(bytes) = files.get(SCHEDULES_FILE) else {
        return Vec::new();
    };
    let refuse = |message: String| LoadProblem {
        file: SCHEDULES_FILE.to_owned(),
        version: None,
        rule: "schedule",
        message,
    };
    let parsed = std::str::from_utf8(bytes)
        .map_err(|_| "not valid UTF-8 text".to_owned())
        .and_then(|text| toml::from_str::<SchedulesFile>(text).map_err(|e| e.to_string()));
    let file = match parsed {
        Ok(file) => file,
        Err(why) => {
            problems.push(refuse(why.trim_end().to_owned()));
            return Vec::new();
        }
    };
    let mut schedules: Vec<Arc<Schedule>> = Vec::new();
    for config in file.schedule {
        let name = config.name.clone();
        let checked = if schedules.iter().any(|s| s.name == name) {
            Err("is named twice".to_owned())
        } else {
            check(config, stations)
        };
        match checked {
            Ok(schedule) => schedules.push(Arc::new(schedule)),
            Err(why) => problems.push(refuse(format!("schedule `{name}` {why}"))),
        }
    }
    schedules
}

/// One schedule as the revision's stations allow it, or why not.
fn check(
    config: ScheduleConfig,
    stations: &BTreeMap<String, Arc<Station>>,
) -> Result<Schedule, String> {
    let named = !config.name.is_empty()
        && config
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !named {
        return Err("has a name that is not [a-z0-9-]+".to_owned());
    }
    let station = stations
        .get(&config.station)
        .ok_or_else(|| format!("names station `{}`, which is not declared", config.station))?;
    let cadence = cadence(&config)?;
    if cadence.next_after(Timestamp::now()).is_none() {
        return Err("never fires: its cron expression matches no date".to_owned());
    }
    let catch_up = match (&config.catch_up, config.max_catch_up) {
        (CatchUpName::All, limit) => CatchUp::All(limit.unwrap_or(DEFAULT_MAX_CATCH_UP).max(1)),
        (_, Some(_)) => return Err("sets max_catch_up, which only catch_up = \"all\" uses".into()),
        (CatchUpName::Latest, None) => CatchUp::Latest,
        (CatchUpName::None, None) => CatchUp::None,
    };
    let (payload, content_type) = message(&config, station)?;
    if let Some(version) = station.pick_version(None).ok().flatten() {
        let encoding = PayloadEncoding::from_content_type(Some(&content_type));
        judge(version, &payload, &encoding)?;
    }
    Ok(Schedule {
        name: config.name,
        station: config.station,
        cadence,
        timezone: config
            .cron
            .as_ref()
            .map(|_| config.timezone.clone().unwrap_or_else(|| "UTC".to_owned())),
        cron: config.cron,
        every: config.every,
        payload,
        content_type,
        headers: config.headers,
        catch_up,
    })
}

fn cadence(config: &ScheduleConfig) -> Result<Cadence, String> {
    match (&config.cron, config.every) {
        (Some(cron), None) => Cadence::cron(cron, config.timezone.as_deref().unwrap_or("UTC"))
            .map_err(|e| e.to_string()),
        (None, Some(period)) if config.timezone.is_none() => {
            Cadence::every(period).map_err(|e| e.to_string())
        }
        (None, Some(_)) => Err("sets a timezone, which only a cron expression uses".to_owned()),
        _ => Err("needs exactly one of `cron` and `every`".to_owned()),
    }
}

/// The message a tick produces and its content type: `value` as JSON, or `value_base64` in the
/// binary encoding of the station's format (as sent, for a station without a schema).
fn message(config: &ScheduleConfig, station: &Station) -> Result<(Bytes, String), String> {
    match (&config.value, &config.value_base64) {
        (Some(value), None) => {
            let json = serde_json::to_vec(value)
                .map_err(|e| format!("has a value that is not JSON: {e}"))?;
            Ok((Bytes::from(json), "application/json".to_owned()))
        }
        (None, Some(encoded)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("has a value_base64 that is not base64: {e}"))?;
            let content_type = station
                .schema
                .as_ref()
                .map_or("application/octet-stream", |schema| {
                    schema.format.binary_content_type()
                });
            Ok((Bytes::from(bytes), content_type.to_owned()))
        }
        _ => Err("needs exactly one of `value` and `value_base64`".to_owned()),
    }
}

/// Whether `version` takes the scheduled message: its schema, then its contract (constraints and
/// `dlq` rules).
fn judge(
    version: &SchemaVersion,
    payload: &Bytes,
    encoding: &PayloadEncoding,
) -> Result<(), String> {
    let limits = MessageLimits::default();
    let described = |v: &Violation| match (v.rule_name(), v.schema_path.contains(CONSTRAINT_MARK)) {
        (Some(rule), false) => format!("rule `{rule}`: {}", v.reason),
        _ if v.path.is_empty() => v.reason.clone(),
        _ => format!("{}: {}", v.path, v.reason),
    };
    let refused = |violations: &[Violation]| {
        let reasons: Vec<String> = violations.iter().map(described).collect();
        format!(
            "has a message schema version {} refuses: {}",
            version.version,
            reasons.join("; ")
        )
    };
    let (_, judged) = contract::validate(version, payload, encoding, Normalize::AsSent, &limits)
        .map_err(|violations| refused(&violations))?;
    match judged.violations.first() {
        Some(first) => Err(refused(std::slice::from_ref(first))),
        None => Ok(()),
    }
}
