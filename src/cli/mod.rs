//! The commands of the `sluice` binary beyond starting the gateway, each in its own file; not part
//! of the library.

pub mod transfer;
