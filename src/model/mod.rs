//! The small shared model: the plain types that more than one layer speaks of, and nothing that
//! acts on them. A stored [`Record`] with its [`Headers`] and its [`DeadLetter`] reason, the
//! [`Violation`]s a format finds, where a message was stored ([`Position`]), where a station's
//! messages go ([`BackendRef`]) and how long they stay ([`Retention`]), a configured secret
//! ([`SecretSource`]) and TLS files ([`TlsFiles`]), and the clock's two spellings.
//!
//! Everything else imports from here; this module imports nothing of Sluice's own.

mod headers;
mod record;
mod secret;
mod station;
pub mod time;
mod tls;
mod violation;

pub use headers::{Header, Headers};
pub use record::{ContentKind, DeadLetter, Position, Provenance, Record};
pub use secret::{shown_url, url_userinfo, InlineSecret, Secret, SecretSource, HIDDEN};
pub use station::{BackendKind, BackendRef, Retention};
pub use tls::TlsFiles;
pub use violation::{Violation, CONSTRAINT_MARK};
