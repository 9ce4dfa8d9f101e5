//! Sluice: a schema-enforcing streaming gateway. Producers send events over HTTP; each is validated
//! against a versioned schema from a schema repository; valid events are stored durably on their
//! station's backend, invalid ones in the station's dead-letter queue with the reason.
//!
//! The layers, top down; a module imports only from layers below its own (`tests/layers.rs` holds
//! the order and refuses an import that points up; `tests/circles.rs` refuses files that name
//! each other in a circle):
//!
//! - [`server`] assembles a gateway from [`config`], which assembles each module's own config;
//!   [`client`] is what the `sluice produce` and `sluice consume` commands talk to a gateway with.
//! - [`ingress`]: the front ends (HTTP, gRPC, the Confluent API), each mapping the pipeline's
//!   errors to its own statuses.
//! - [`pipeline`]: the one path every message takes; [`alerts`] beside it.
//! - [`registry`] (the schema repository, compiled) and [`backends`] (where messages are stored).
//! - [`metrics`], then [`formats`] (the schema languages).
//! - [`model`]: the plain types every layer shares; [`logs`], [`ui`] and [`crypto`] stand apart.

// Functions fit on a screen: at most 80 lines of code (clippy.toml). A unit test that is one
// long table of cases says so where it is allowed more.
#![warn(clippy::too_many_lines)]

pub mod alerts;
pub mod backends;
pub mod client;
pub mod config;
pub mod crypto;
pub mod formats;
pub mod ingress;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod server;
pub mod ui;
