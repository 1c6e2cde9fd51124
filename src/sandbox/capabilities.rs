//! What a tool may use (`Capabilities`) and how much (`Limits`): the shapes
//! shared by the manifest (`[capabilities]`, `[limits]` in `vigil-tool.toml`)
//! and the sandbox that enforces them. Nothing is granted by default.

use serde::{Deserialize, Serialize};

/// Capabilities declared by a package. Empty means nothing is granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Host names or literal addresses the tool may reach, each optionally
    /// with `:PORT` (`"api.example.com"`, `"127.0.0.1:8080"`).
    pub network: Vec<String>,
    /// Directories the tool may read (and write, for `write`).
    pub filesystem: FilesystemGrant,
    /// Names of environment variables the tool may see.
    pub env: Vec<String>,
}

/// `[capabilities.filesystem]`: directories preopened for the tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemGrant {
    /// Preopened read-only.
    pub read: Vec<String>,
    /// Preopened read-write.
    pub write: Vec<String>,
}

impl Capabilities {
    /// True when nothing at all is granted.
    pub fn is_empty(&self) -> bool {
        self.network.is_empty()
            && self.filesystem.read.is_empty()
            && self.filesystem.write.is_empty()
            && self.env.is_empty()
    }
}

/// Resource limits of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap in MiB.
    pub memory_mib: u32,
    /// Wall-clock timeout of one call in milliseconds.
    pub timeout_ms: u64,
    /// Largest stdout the tool may produce, in bytes.
    pub max_output_bytes: u64,
}

impl Limits {
    pub const DEFAULT_MEMORY_MIB: u32 = 64;
    pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
    pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mib: Self::DEFAULT_MEMORY_MIB,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            max_output_bytes: Self::DEFAULT_MAX_OUTPUT_BYTES,
        }
    }
}
