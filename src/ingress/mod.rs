//! Front ends. Each translates its protocol into [`crate::pipeline::Pipeline`] calls and the
//! results back; none holds validation or routing logic of its own.

pub mod auth;
pub mod batch;
pub mod confluent;
mod extract;
pub mod grpc;
pub mod http;
mod requests;
pub mod tls;
pub mod webhook;
