//! The sandbox: runs one tool call in a fresh wasmtime instance that can
//! reach exactly the capabilities its manifest declares, within its limits,
//! and reports what the tool used and what it was denied.
//!
//! The rules are plain code ([`policy`], [`outcome`], [`report`]); wasmtime
//! sits at the edge ([`runtime`], `guard`, `state`, [`cache`]).

pub mod cache;
pub mod capabilities;
mod guard;
pub mod outcome;
pub mod policy;
pub mod report;
pub mod runtime;
mod slots;
mod state;

pub use cache::{CacheStats, WasmKind};
pub use outcome::{CallOutcome, CallResult, Limit};
pub use report::{CapabilityReport, Denial, Resource};
pub use runtime::{LoadedTool, Sandbox, SandboxConfig, SandboxError};
