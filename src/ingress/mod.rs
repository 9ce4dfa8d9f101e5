//! Front ends. Each translates its protocol into [`crate::pipeline::Pipeline`] calls and the
//! results back; none holds validation or routing logic of its own. The errors a client can get,
//! and the one table of their statuses, are [`errors`]; each front end builds its own bodies.

pub mod auth;
pub mod batch;
pub mod confluent;
pub mod connections;
pub mod errors;
mod extract;
pub mod grpc;
pub mod http;
mod requests;
pub mod tls;
pub mod webhook;
