//! The dashboard served at `/`: one HTML page with its CSS and script inline (no framework,
//! nothing fetched from elsewhere, so it works offline), compiled into the binary. It only reads
//! and calls the `/v1` API — station counts and rates, schemas and version diffs, dead letters
//! with replay, registry status — polling every 2 seconds, with the bearer token kept in the
//! browser's local storage when auth is on.

/// The page.
pub const INDEX_HTML: &str = include_str!("index.html");
