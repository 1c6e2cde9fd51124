//! vigil: the node that runs AI-agent tools from signed packages inside a
//! capability sandbox and records every decision in a tamper-evident ledger.
//!
//! The library holds the node's parts; `src/main.rs` is the `vigil` binary
//! and `cli` turns command lines into calls on these parts.

pub mod cli;
pub mod control;
pub mod gatekeeper;
pub mod mcp;
pub mod node;
pub mod package;
pub mod policy;
pub mod privacy;
pub mod sandbox;
pub mod trust;
