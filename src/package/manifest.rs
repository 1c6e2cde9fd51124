//! The manifest `vigil-tool.toml` (format documented in `docs/manifest.md`):
//! its types, parsing with unknown keys as errors, and the structural checks
//! every manifest must pass. Naming rules that decide admission (lowercase
//! ASCII, confusables) belong to the gatekeeper, so that `vigil package
//! inspect` can still show a manifest the gatekeeper would refuse.

use serde::{Deserialize, Serialize};

use crate::sandbox::capabilities::{Capabilities, Limits};

/// File name of the manifest inside a package source directory.
pub const MANIFEST_FILE: &str = "vigil-tool.toml";
/// Module file used by `vigil package build` when `package.module` is unset.
pub const DEFAULT_MODULE_FILE: &str = "tool.wasm";
/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Longest package name, in bytes (it is length-prefixed with one byte in
/// the signed statement).
pub const MAX_NAME_BYTES: usize = 128;
/// Longest version string, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {len} bytes; at most {max} are allowed")]
    TooLarge { len: usize, max: usize },
    #[error("manifest is not UTF-8 text")]
    NotUtf8,
    #[error("manifest: {0}")]
    Syntax(String),
    #[error("manifest: {0}")]
    Invalid(String),
}

/// A parsed `vigil-tool.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub package: PackageInfo,
    /// The tools this package provides (`[[tools]]`), at least one.
    pub tools: Vec<ToolSpec>,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: Limits,
}

/// `[package]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    /// `publisher/name`.
    pub name: String,
    /// Semantic version (`1.2.3`).
    pub version: String,
    pub description: String,
    /// Path of the WebAssembly module, relative to the manifest; used only by
    /// `vigil package build`. Defaults to `tool.wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// One `[[tools]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments (a TOML table, read as JSON).
    pub input_schema: serde_json::Value,
    /// JSON Schema of the result, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub sensitivity: Sensitivity,
}

/// How sensitive a tool's calls are; `high` needs human approval per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    #[default]
    Low,
    High,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::High => "high",
        }
    }
}

impl Manifest {
    /// Parses manifest bytes: size limit, UTF-8, TOML with unknown keys as
    /// errors naming the key, then [`Manifest::validate`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                len: bytes.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        let manifest: Manifest = toml::from_str(text).map_err(|e| {
            ManifestError::Syntax(e.message().trim_end_matches('\n').replace('\n', " "))
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The structural checks: name shape `publisher/name`, semver version,
    /// at least one tool, unique non-empty tool names, object schemas and
    /// non-zero limits.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |m: String| Err(ManifestError::Invalid(m));
        let name = &self.package.name;
        if name.len() > MAX_NAME_BYTES {
            return invalid(format!(
                "package.name is {} bytes; at most {MAX_NAME_BYTES} are allowed",
                name.len()
            ));
        }
        match name.split_once('/') {
            Some((publisher, short))
                if !publisher.is_empty() && !short.is_empty() && !short.contains('/') => {}
            _ => {
                return invalid(format!(
                    "package.name `{name}` must have the form `publisher/name`"
                ))
            }
        }
        if self.package.version.len() > MAX_VERSION_BYTES {
            return invalid(format!(
                "package.version is {} bytes; at most {MAX_VERSION_BYTES} are allowed",
                self.package.version.len()
            ));
        }
        if let Err(e) = semver::Version::parse(&self.package.version) {
            return invalid(format!(
                "package.version `{}` is not a semantic version (like 1.2.3): {e}",
                self.package.version
            ));
        }
        if self.tools.is_empty() {
            return invalid("no [[tools]]: a package must provide at least one tool".into());
        }
        for (i, tool) in self.tools.iter().enumerate() {
            if tool.name.is_empty() {
                return invalid(format!("tools[{i}].name is empty"));
            }
            if self.tools[..i].iter().any(|t| t.name == tool.name) {
                return invalid(format!("tool name `{}` appears twice", tool.name));
            }
            if !tool.input_schema.is_object() {
                return invalid(format!(
                    "tools `{}`: input_schema must be a table (a JSON Schema object)",
                    tool.name
                ));
            }
            if tool.output_schema.as_ref().is_some_and(|s| !s.is_object()) {
                return invalid(format!(
                    "tools `{}`: output_schema must be a table (a JSON Schema object)",
                    tool.name
                ));
            }
        }
        let l = &self.limits;
        if l.memory_mib == 0 || l.timeout_ms == 0 || l.max_output_bytes == 0 {
            return invalid("limits must be greater than zero".into());
        }
        Ok(())
    }

    /// The version as semver; valid after [`Manifest::parse`].
    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.package.version).ok()
    }

    /// The module path relative to the manifest.
    pub fn module_file(&self) -> &str {
        self.package
            .module
            .as_deref()
            .unwrap_or(DEFAULT_MODULE_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
[package]
name = "acme/weather"
version = "1.2.0"
description = "Weather forecasts for a city."

[[tools]]
name = "forecast"
description = "Returns the forecast for a city."
sensitivity = "low"
input_schema = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }

[[tools]]
name = "alert"
description = "Sends a weather alert."
sensitivity = "high"
[tools.input_schema]
type = "object"

[capabilities]
network = ["api.example.com"]
env = ["WEATHER_TOKEN"]
[capabilities.filesystem]
read = ["/data"]

[limits]
memory_mib = 32
"#;

    #[test]
    fn example_parses_with_defaults() {
        let m = Manifest::parse(EXAMPLE.as_bytes()).expect("parses");
        assert_eq!(m.package.name, "acme/weather");
        assert_eq!(m.tools.len(), 2);
        assert_eq!(m.tools[1].sensitivity, Sensitivity::High);
        assert_eq!(m.capabilities.network, ["api.example.com"]);
        assert_eq!(m.capabilities.filesystem.read, ["/data"]);
        assert_eq!(m.limits.memory_mib, 32);
        assert_eq!(m.limits.timeout_ms, Limits::DEFAULT_TIMEOUT_MS);
        assert_eq!(m.module_file(), DEFAULT_MODULE_FILE);
    }

    #[test]
    fn unknown_keys_are_named() {
        for (bad, key) in [
            (
                EXAMPLE.replace("[limits]", "[limits]\nmemory = 3"),
                "memory",
            ),
            (
                EXAMPLE.replace("[package]", "[package]\nauthor = \"x\""),
                "author",
            ),
            (
                EXAMPLE.replace("sensitivity = \"low\"", "sensitivty = \"low\""),
                "sensitivty",
            ),
            (EXAMPLE.replace("env = ", "environment = "), "environment"),
        ] {
            let err = Manifest::parse(bad.as_bytes()).expect_err("unknown key");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn structural_errors() {
        for (bad, words) in [
            (EXAMPLE.replace("acme/weather", "weather"), "publisher/name"),
            (EXAMPLE.replace("1.2.0", "1.2"), "semantic version"),
            (
                EXAMPLE.replace("name = \"alert\"", "name = \"forecast\""),
                "twice",
            ),
            (EXAMPLE.replace("\"low\"", "\"medium\""), "medium"),
            (EXAMPLE.replace("memory_mib = 32", "memory_mib = 0"), "zero"),
        ] {
            let err = Manifest::parse(bad.as_bytes()).expect_err("invalid");
            assert!(err.to_string().contains(words), "{err}");
        }
        assert_eq!(
            Manifest::parse(&[0xff, 0xfe]).expect_err("utf8"),
            ManifestError::NotUtf8
        );
    }
}
