//! The node: its home directory, its configuration and the wiring of the
//! parts (ledger, gatekeeper, sandbox, links) into one running node, and
//! its readiness notifications to a service manager ([`notify`]), and the
//! rotation of its key ([`rotation`]).

pub mod access;
pub mod audit;
pub mod config;
pub mod fit;
pub mod home;
pub mod links;
pub mod metrics;
pub mod notify;
pub mod rotation;
pub mod siem;
pub mod syslog;
pub mod trusted;
pub mod witness;
