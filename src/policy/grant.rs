//! What one authenticated HTTP caller may do: the agent its bearer token
//! names, the tools the token's scopes allow (`tools:NAME`, `tools:*`), and
//! which token it was (so that revoking it ends it). The agent's own
//! allow-list in `[[agents]]` still applies: a token narrows what an agent
//! may call, never widens it.

use std::collections::BTreeSet;

/// The scope prefix that names tools.
pub const TOOL_SCOPE_PREFIX: &str = "tools:";

/// The tools a token's scopes allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolScope {
    /// Every tool the agent's allow-list admits (`tools:*`, or a static
    /// development token, which carries no scopes).
    All,
    /// Only these tools (possibly none).
    Only(BTreeSet<String>),
}

impl ToolScope {
    /// The tools of a space-separated OAuth `scope` string; scopes that do
    /// not name tools are ignored.
    pub fn from_scope(scope: &str) -> Self {
        Self::from_scopes(scope.split_ascii_whitespace())
    }

    /// The tools of a list of scopes (`tools:NAME` or `tools:*`).
    pub fn from_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut tools = BTreeSet::new();
        for scope in scopes {
            match scope.strip_prefix(TOOL_SCOPE_PREFIX) {
                Some("*") => return Self::All,
                Some(tool) if !tool.is_empty() => {
                    tools.insert(tool.to_string());
                }
                _ => {}
            }
        }
        Self::Only(tools)
    }

    /// True when `tool` is within the scope.
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(tools) => tools.contains(tool),
        }
    }

    /// The scope as OAuth scope strings.
    pub fn scopes(&self) -> Vec<String> {
        match self {
            Self::All => vec![format!("{TOOL_SCOPE_PREFIX}*")],
            Self::Only(tools) => tools
                .iter()
                .map(|t| format!("{TOOL_SCOPE_PREFIX}{t}"))
                .collect(),
        }
    }
}

/// Where a bearer token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// A static token of `[[agents]]` (development).
    Static,
    /// A JWT access token from a configured identity provider.
    IdentityProvider,
    /// A token minted by this node (`vigil agent token`).
    Node,
}

impl TokenSource {
    /// The name used in entries and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::IdentityProvider => "idp",
            Self::Node => "node",
        }
    }
}

/// An authenticated caller: what the bearer check hands to the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The agent of `[[agents]]` the token names.
    pub agent: String,
    /// The tools its scopes allow.
    pub tools: ToolScope,
    /// Where the token came from.
    pub source: TokenSource,
    /// The token's id (`jti`), when it has one.
    pub token_id: Option<String>,
    /// The issuer (`iss`), when it has one.
    pub issuer: Option<String>,
    /// When the token expires (Unix seconds), when it does.
    pub expires_at: Option<i64>,
}

impl Grant {
    /// A static development token's grant: the agent's allow-list only.
    pub fn static_token(agent: &str) -> Self {
        Self {
            agent: agent.to_string(),
            tools: ToolScope::All,
            source: TokenSource::Static,
            token_id: None,
            issuer: None,
            expires_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_tools_and_the_wildcard_allows_all() {
        let scope = ToolScope::from_scope("openid tools:echo  tools:notes profile tools:");
        assert!(scope.allows("echo") && scope.allows("notes"));
        assert!(!scope.allows("weather"));
        assert_eq!(scope.scopes(), vec!["tools:echo", "tools:notes"]);
        assert_eq!(ToolScope::from_scope("tools:* tools:echo"), ToolScope::All);
        assert!(!ToolScope::from_scope("").allows("echo"));
        assert!(!ToolScope::from_scope("tools:ech").allows("echo"));
    }
}
