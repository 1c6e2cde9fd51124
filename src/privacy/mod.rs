//! The privacy filter: finds personal data and secrets in tool output and
//! replaces each with a typed placeholder such as `[REDACTED:EMAIL]` before
//! the output reaches an agent or payload storage. Sans-I/O: a [`Redactor`]
//! is built once from the `[privacy]` configuration and applied to strings
//! ([`Redactor::redact_text`]) or to JSON values recursively
//! ([`Redactor::redact_json`]). Pattern matches are confirmed by checks
//! ([`checks`]): Luhn for cards, mod-97 for IBANs, SSA rules for SSNs,
//! address parsing for IPs, entropy for assigned secrets.

pub mod checks;
mod patterns;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use patterns::Redactor;

/// A type of data the filter redacts; its placeholder is
/// `[REDACTED:<TAG>]` with the tag from [`PiiKind::tag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    Ssn,
    Ipv4,
    Ipv6,
    AwsAccessKey,
    GithubToken,
    GitlabToken,
    SlackToken,
    PrivateKey,
    Jwt,
    /// A high-entropy value assigned to a key/secret/token/password name.
    Secret,
}

impl PiiKind {
    /// Every kind, in the order the filter applies them (most specific first).
    pub const ALL: [PiiKind; 14] = [
        PiiKind::PrivateKey,
        PiiKind::Jwt,
        PiiKind::AwsAccessKey,
        PiiKind::GithubToken,
        PiiKind::GitlabToken,
        PiiKind::SlackToken,
        PiiKind::Secret,
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::CreditCard,
        PiiKind::Ssn,
        PiiKind::Ipv6,
        PiiKind::Ipv4,
        PiiKind::Phone,
    ];

    /// The tag in the placeholder (`EMAIL`, `CREDIT_CARD`, ...).
    pub fn tag(self) -> &'static str {
        match self {
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::CreditCard => "CREDIT_CARD",
            Self::Iban => "IBAN",
            Self::Ssn => "SSN",
            Self::Ipv4 => "IPV4",
            Self::Ipv6 => "IPV6",
            Self::AwsAccessKey => "AWS_ACCESS_KEY",
            Self::GithubToken => "GITHUB_TOKEN",
            Self::GitlabToken => "GITLAB_TOKEN",
            Self::SlackToken => "SLACK_TOKEN",
            Self::PrivateKey => "PRIVATE_KEY",
            Self::Jwt => "JWT",
            Self::Secret => "SECRET",
        }
    }

    /// The placeholder that replaces a finding of this kind.
    pub fn placeholder(self) -> String {
        format!("[REDACTED:{}]", self.tag())
    }
}

/// How many findings of each kind one redaction replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Redactions(pub BTreeMap<PiiKind, u32>);

impl Redactions {
    /// Total number of replacements.
    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }
    pub(crate) fn add(&mut self, kind: PiiKind) {
        *self.0.entry(kind).or_insert(0) += 1;
    }
    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Redactions) {
        for (k, v) in &other.0 {
            *self.0.entry(*k).or_insert(0) += v;
        }
    }
}

/// `[privacy]` settings: on by default for every kind; per-tool overrides.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Redact tool output at all.
    pub enabled: bool,
    /// Kinds redacted (every kind by default).
    pub kinds: Vec<PiiKind>,
    /// Per-tool overrides, by tool name.
    pub tools: BTreeMap<String, ToolPrivacy>,
    /// Most bytes of text (strings and object keys) the filter scans in a
    /// call's arguments, and again in its output; a call with more is
    /// refused unscanned (`too-large-to-scan`).
    pub max_scan_bytes: usize,
}

/// Default of `[privacy] max_scan_bytes`: 4 MiB.
pub const DEFAULT_MAX_SCAN_BYTES: usize = 4 * 1024 * 1024;

/// The bytes of text the filter would scan in `value`: every string and
/// object key, recursively (linear, no allocation).
pub fn text_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + text_bytes(v)).sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            kinds: PiiKind::ALL.to_vec(),
            tools: BTreeMap::new(),
            max_scan_bytes: DEFAULT_MAX_SCAN_BYTES,
        }
    }
}

/// A per-tool override of `[privacy]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolPrivacy {
    /// Redact this tool's output (default: `[privacy] enabled`).
    pub enabled: Option<bool>,
    /// Kinds redacted for this tool (default: `[privacy] kinds`).
    pub kinds: Option<Vec<PiiKind>>,
}

impl PrivacyConfig {
    /// The kinds to redact in the output of `tool` (empty: redact nothing).
    pub fn kinds_for(&self, tool: &str) -> BTreeSet<PiiKind> {
        let o = self.tools.get(tool);
        let enabled = o.and_then(|t| t.enabled).unwrap_or(self.enabled);
        if !enabled {
            return BTreeSet::new();
        }
        o.and_then(|t| t.kinds.clone())
            .unwrap_or_else(|| self.kinds.clone())
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::text_bytes;

    #[test]
    fn text_bytes_counts_strings_and_keys_only() {
        let value = serde_json::json!({"ab": ["cde", 12, null, true], "f": {"gh": "ij"}});
        assert_eq!(text_bytes(&value), 2 + 3 + 1 + 2 + 2);
    }
}
