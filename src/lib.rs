//! Sluice: a schema-enforcing streaming gateway. Producers send events over HTTP; each is validated
//! against a versioned schema from a schema repository; valid events are stored durably on their
//! station's backend, invalid ones in the station's dead-letter queue with the reason.
//!
//! The flow is `ingress` → [`pipeline`] → (`registry` snapshot, `formats`) → `backends`;
//! [`server`] assembles it, [`config`] describes it, [`error`] decides every status code;
//! [`client`] is what the `sluice produce` and `sluice consume` commands talk to a gateway with.

pub mod alerts;
pub mod backends;
pub mod client;
pub mod config;
pub mod error;
pub mod formats;
pub mod idempotency;
pub mod ingress;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod server;
pub mod ui;
pub mod views;
