//! The sandbox: runs one tool call in a fresh wasmtime instance that can
//! reach exactly the capabilities its manifest declares, within its limits,
//! and reports what the tool used and what it was denied.

pub mod capabilities;
