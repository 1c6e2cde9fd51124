//! Who an HTTP caller is: the node as an OAuth 2.1 resource server. A
//! bearer token is one of three kinds, tried in this order:
//!
//! - a static development token of `[[agents]]` (when `[auth]
//!   static_tokens`),
//! - a token this node minted (`vigil agent token`, [`node_token`]),
//! - a JWT access token from a configured identity provider: its signature
//!   checked with the issuer's JWKS (fetched, cached, refetched on an
//!   unknown key id so that key rollover is followed), `iss`, `aud` = this
//!   resource (RFC 8707), `exp`/`nbf` with a small leeway, and its scopes.
//!
//! Every kind then maps to a configured agent, and a revoked token or a
//! suspended agent is refused. The resource metadata of RFC 9728 is built
//! here too ([`Authenticator::resource_metadata`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::node::access::AgentAccess;
use crate::policy::grant::{Grant, TokenSource, ToolScope};
use crate::policy::node_token::{self, NodeTokenClaims, NodeTokenError};
use crate::policy::Agents;

/// `[auth]`: how HTTP callers are authenticated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// This MCP endpoint's URL as agents reach it (e.g.
    /// `https://vigil.example/mcp`): the audience identity-provider tokens
    /// must name, and the `resource` of the protected resource metadata.
    /// Default: `http://LISTEN/mcp`.
    pub resource: Option<String>,
    /// Accept the static tokens of `[[agents]]` (development).
    pub static_tokens: bool,
    /// Accept tokens minted by this node (`vigil agent token`).
    pub node_tokens: bool,
    /// Longest lifetime `vigil agent token --ttl` may give, in seconds.
    pub max_node_token_ttl_seconds: u64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
    /// Refused tokens recorded in the ledger per second at most (the rest
    /// are counted in the next entry and in the metrics).
    pub refusals_recorded_per_second: u32,
    /// `[[auth.issuers]]`: identity providers whose tokens are accepted.
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            resource: None,
            static_tokens: true,
            node_tokens: true,
            max_node_token_ttl_seconds: 24 * 3600,
            leeway_seconds: 30,
            refusals_recorded_per_second: 20,
            issuers: Vec::new(),
        }
    }
}

/// `[[auth.issuers]]`: one identity provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer identifier, exactly as in the tokens' `iss`.
    pub issuer: String,
    /// Its JWKS URL; default: `jwks_uri` of the issuer's discovery document
    /// (`/.well-known/openid-configuration`, else
    /// `/.well-known/oauth-authorization-server`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim naming the agent (matched against `[[agents]] subject`, or
    /// the agent's name when it has none).
    #[serde(default = "default_agent_claim")]
    pub agent_claim: String,
    /// Signature algorithms accepted (never `none` or HMAC).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// How long fetched keys are used before the JWKS is fetched again.
    #[serde(default = "default_jwks_cache_seconds")]
    pub jwks_cache_seconds: u64,
    /// A token with an unknown key id makes the JWKS be fetched again at
    /// most this often.
    #[serde(default = "default_jwks_min_refetch_seconds")]
    pub jwks_min_refetch_seconds: u64,
}

fn default_agent_claim() -> String {
    "client_id".into()
}
fn default_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "EdDSA"]
        .map(String::from)
        .to_vec()
}
fn default_jwks_cache_seconds() -> u64 {
    300
}
fn default_jwks_min_refetch_seconds() -> u64 {
    10
}

/// Why a bearer token was refused. The code is stable (entries, metrics).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthRefusal {
    #[error("missing `Authorization: Bearer <token>`")]
    Missing,
    #[error("unknown bearer token: no agent in vigil.toml has it, and it is neither a node token nor a JWT")]
    UnknownToken,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("the token's issuer `{0}` is not in [[auth.issuers]]")]
    UnknownIssuer(String),
    #[error("the token's audience is not this resource ({0})")]
    WrongAudience(String),
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature does not verify: {0}")]
    BadSignature(String),
    #[error("the issuer's keys could not be fetched: {0}")]
    KeysUnavailable(String),
    #[error("no agent in vigil.toml is named by the token ({0})")]
    UnknownAgent(String),
    #[error("the token was revoked")]
    Revoked,
    #[error("agent `{0}` is suspended by the behavioural watch; an operator lifts it with `vigil agent resume {0}`")]
    Suspended(String),
}

impl AuthRefusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "token-missing",
            Self::UnknownToken => "token-unknown",
            Self::Malformed(_) => "token-malformed",
            Self::UnknownIssuer(_) => "wrong-issuer",
            Self::WrongAudience(_) => "wrong-audience",
            Self::Expired => "token-expired",
            Self::NotYetValid => "token-not-yet-valid",
            Self::BadSignature(_) => "bad-signature",
            Self::KeysUnavailable(_) => "keys-unavailable",
            Self::UnknownAgent(_) => "unknown-agent",
            Self::Revoked => "token-revoked",
            Self::Suspended(_) => "agent-suspended",
        }
    }
}

/// A refused token, with what is known of it for the ledger.
#[derive(Debug, Clone)]
pub struct Refused {
    pub refusal: AuthRefusal,
    /// The agent the token named, when it got that far.
    pub agent: Option<String>,
    pub source: Option<TokenSource>,
    pub issuer: Option<String>,
    pub token_id: Option<String>,
}

impl From<AuthRefusal> for Refused {
    fn from(refusal: AuthRefusal) -> Self {
        Self {
            refusal,
            agent: None,
            source: None,
            issuer: None,
            token_id: None,
        }
    }
}

/// This node as a token issuer: its name and public key.
#[derive(Debug, Clone)]
pub struct NodeIssuer {
    pub origin: String,
    pub key: vigil_crypto::CompositePublicKey,
}

/// Keys of one identity provider.
struct Issuer {
    config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    keys: RwLock<Keys>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
    jwks_uri: Option<String>,
}

/// Verified node tokens kept to skip the signature check (bounded).
const VERIFIED_CACHE: usize = 4096;

/// Authenticates bearer tokens. See the module documentation.
pub struct Authenticator {
    agents: Agents,
    config: AuthConfig,
    resource: String,
    issuers: Vec<Issuer>,
    node: Option<NodeIssuer>,
    access: Arc<AgentAccess>,
    verified: Mutex<HashMap<[u8; 32], NodeTokenClaims>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Authenticator(resource {}, {} issuers)",
            self.resource,
            self.issuers.len()
        )
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Authenticator {
    /// An authenticator for `agents` with the `[auth]` settings; `resource`
    /// is the resolved resource URL; `node` verifies this node's tokens.
    pub fn new(
        agents: Agents,
        config: AuthConfig,
        resource: String,
        node: Option<NodeIssuer>,
        access: Arc<AgentAccess>,
    ) -> Result<Self, String> {
        let mut issuers = Vec::new();
        for issuer in &config.issuers {
            let mut algorithms = Vec::new();
            for name in &issuer.algorithms {
                let alg: Algorithm = name.parse().map_err(|_| {
                    format!(
                        "[[auth.issuers]] {}: unknown algorithm `{name}`",
                        issuer.issuer
                    )
                })?;
                if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err(format!(
                        "[[auth.issuers]] {}: `{name}` is a shared-secret algorithm; only public-key algorithms are accepted",
                        issuer.issuer
                    ));
                }
                algorithms.push(alg);
            }
            issuers.push(Issuer {
                config: issuer.clone(),
                algorithms,
                keys: RwLock::new(Keys::default()),
                fetching: tokio::sync::Mutex::new(()),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client for the identity providers: {e}"))?;
        Ok(Self {
            agents,
            config,
            resource,
            issuers,
            node,
            access,
            verified: Mutex::new(HashMap::new()),
            http,
        })
    }

    /// The resource URL (the audience of identity-provider tokens).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The agents' access state (revocations, suspensions).
    pub fn access(&self) -> &Arc<AgentAccess> {
        &self.access
    }

    /// The URL of this resource's metadata (RFC 9728 §3.1: the well-known
    /// path inserted between the host and the resource's path).
    pub fn resource_metadata_url(&self) -> String {
        let (origin, path) = split_origin(&self.resource);
        format!("{origin}/.well-known/oauth-protected-resource{path}")
    }

    /// The protected resource metadata (RFC 9728 §2) for `tools`.
    pub fn resource_metadata(&self, tools: &[String], node_name: &str) -> Value {
        let mut scopes = vec!["tools:*".to_string()];
        scopes.extend(tools.iter().map(|t| format!("tools:{t}")));
        json!({
            "resource": self.resource,
            "authorization_servers": self.config.issuers.iter().map(|i| i.issuer.clone()).collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
            "resource_name": format!("vigil node {node_name}"),
        })
    }

    /// Authenticates `token` at `now` (Unix seconds).
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<Grant, Refused> {
        if self.config.static_tokens {
            if let Some(agent) = self.agents.by_token(token) {
                let grant = Grant::static_token(&agent.name);
                return self.admit(grant, None);
            }
        }
        if token.starts_with(node_token::PREFIX) {
            return self.node_token(token, now);
        }
        if token.split('.').count() == 3 && !self.issuers.is_empty() {
            return self.jwt(token).await;
        }
        Err(AuthRefusal::UnknownToken.into())
    }

    /// Revocation and suspension, the last checks of every kind.
    fn admit(&self, grant: Grant, iat: Option<i64>) -> Result<Grant, Refused> {
        let refused = |refusal| Refused {
            refusal,
            agent: Some(grant.agent.clone()),
            source: Some(grant.source),
            issuer: grant.issuer.clone(),
            token_id: grant.token_id.clone(),
        };
        if grant.source != TokenSource::Static
            && self
                .access
                .is_revoked(&grant.agent, grant.token_id.as_deref(), iat)
        {
            return Err(refused(AuthRefusal::Revoked));
        }
        if self.access.is_suspended(&grant.agent) {
            return Err(refused(AuthRefusal::Suspended(grant.agent.clone())));
        }
        Ok(grant)
    }

    fn node_token(&self, token: &str, now: i64) -> Result<Grant, Refused> {
        let Some(node) = self.node.as_ref().filter(|_| self.config.node_tokens) else {
            return Err(AuthRefusal::UnknownToken.into());
        };
        let leeway = self.config.leeway_seconds as i64;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = lock(&self.verified).get(&hash).cloned();
        let claims = match cached {
            Some(claims) => {
                if claims.exp + leeway <= now {
                    Err(NodeTokenError::Expired {
                        exp: claims.exp,
                        now,
                    })
                } else {
                    Ok(claims)
                }
            }
            None => node_token::open(token, &node.key, &node.origin, now, leeway),
        };
        let claims = claims.map_err(|e| {
            Refused::from(match e {
                NodeTokenError::Expired { .. } => AuthRefusal::Expired,
                NodeTokenError::NotYetValid { .. } => AuthRefusal::NotYetValid,
                NodeTokenError::WrongIssuer(iss) => AuthRefusal::UnknownIssuer(iss),
                NodeTokenError::BadSignature => AuthRefusal::BadSignature(e.to_string()),
                other => AuthRefusal::Malformed(other.to_string()),
            })
        })?;
        {
            let mut verified = lock(&self.verified);
            if verified.len() >= VERIFIED_CACHE {
                verified.clear();
            }
            verified.insert(hash, claims.clone());
        }
        let agent = self
            .agents
            .by_name(&claims.sub)
            .ok_or_else(|| Refused::from(AuthRefusal::UnknownAgent(claims.sub.clone())))?;
        let grant = Grant {
            agent: agent.name.clone(),
            tools: ToolScope::from_scope(&claims.scope),
            source: TokenSource::Node,
            token_id: Some(claims.jti.clone()),
            issuer: Some(claims.iss.clone()),
            expires_at: Some(claims.exp),
        };
        self.admit(grant, Some(claims.iat))
    }

    async fn jwt(&self, token: &str) -> Result<Grant, Refused> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refused::from(AuthRefusal::Malformed(format!("JWT header: {e}"))))?;
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| Refused::from(AuthRefusal::Malformed(format!("JWT claims: {e}"))))?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| Refused::from(AuthRefusal::Malformed("no `iss` claim".into())))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or_else(|| Refused::from(AuthRefusal::UnknownIssuer(iss.to_string())))?;
        let with_issuer = |refusal| Refused {
            refusal,
            agent: None,
            source: Some(TokenSource::IdentityProvider),
            issuer: Some(iss.to_string()),
            token_id: unverified
                .get("jti")
                .and_then(Value::as_str)
                .map(String::from),
        };
        if !issuer.algorithms.contains(&header.alg) {
            return Err(with_issuer(AuthRefusal::BadSignature(format!(
                "algorithm {:?} is not accepted for this issuer",
                header.alg
            ))));
        }
        let key = self
            .key(issuer, header.kid.as_deref())
            .await
            .map_err(with_issuer)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[iss]);
        validation.set_audience(&[&self.resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.leeway_seconds;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            with_issuer(match e.kind() {
                K::ExpiredSignature => AuthRefusal::Expired,
                K::ImmatureSignature => AuthRefusal::NotYetValid,
                K::InvalidAudience => AuthRefusal::WrongAudience(self.resource.clone()),
                K::InvalidIssuer => AuthRefusal::UnknownIssuer(iss.to_string()),
                K::InvalidSignature | K::InvalidAlgorithm => {
                    AuthRefusal::BadSignature(e.to_string())
                }
                _ => AuthRefusal::Malformed(e.to_string()),
            })
        })?;
        let claims = data.claims;
        let named = claims
            .get(&issuer.config.agent_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                with_issuer(AuthRefusal::UnknownAgent(format!(
                    "no `{}` claim",
                    issuer.config.agent_claim
                )))
            })?;
        let agent = self
            .agents
            .by_subject(named)
            .ok_or_else(|| with_issuer(AuthRefusal::UnknownAgent(named.to_string())))?;
        let tools = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(scope)), _) => ToolScope::from_scope(scope.as_str()),
            (_, Some(Value::Array(scopes))) => {
                ToolScope::from_scopes(scopes.iter().filter_map(Value::as_str))
            }
            _ => ToolScope::from_scope(""),
        };
        let grant = Grant {
            agent: agent.name.clone(),
            tools,
            source: TokenSource::IdentityProvider,
            token_id: claims.get("jti").and_then(Value::as_str).map(String::from),
            issuer: Some(iss.to_string()),
            expires_at: claims.get("exp").and_then(Value::as_i64),
        };
        self.admit(grant, claims.get("iat").and_then(Value::as_i64))
    }

    /// The issuer's key `kid`: from the cache while it is fresh, else from
    /// a new fetch (an unknown id refetches, at most every
    /// `jwks_min_refetch_seconds`).
    async fn key(&self, issuer: &Issuer, kid: Option<&str>) -> Result<DecodingKey, AuthRefusal> {
        let max_age = Duration::from_secs(issuer.config.jwks_cache_seconds);
        let min_refetch = Duration::from_secs(issuer.config.jwks_min_refetch_seconds);
        let no_key =
            || AuthRefusal::BadSignature(format!("the issuer has no key `{}`", kid.unwrap_or("")));
        let lookup = |keys: &Keys| -> Option<Result<DecodingKey, AuthRefusal>> {
            let set = keys.set.as_ref()?;
            let jwk = match kid {
                Some(kid) => set.find(kid)?,
                None if set.keys.len() == 1 => set.keys.first()?,
                None => {
                    return Some(Err(AuthRefusal::BadSignature(
                        "the token names no key id and the issuer has several keys".into(),
                    )))
                }
            };
            Some(
                DecodingKey::from_jwk(jwk)
                    .map_err(|e| AuthRefusal::BadSignature(format!("issuer key: {e}"))),
            )
        };
        {
            let keys = issuer.keys.read().unwrap_or_else(|p| p.into_inner());
            let fresh = keys.fetched.is_some_and(|t| t.elapsed() < max_age);
            if fresh {
                if let Some(found) = lookup(&keys) {
                    return found;
                }
                if keys.fetched.is_some_and(|t| t.elapsed() < min_refetch) {
                    return Err(no_key());
                }
            }
        }
        let _one = issuer.fetching.lock().await;
        // Another request may have fetched meanwhile.
        {
            let keys = issuer.keys.read().unwrap_or_else(|p| p.into_inner());
            if keys.fetched.is_some_and(|t| t.elapsed() < min_refetch) {
                return lookup(&keys).unwrap_or_else(|| Err(no_key()));
            }
        }
        let known_uri = issuer
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .jwks_uri
            .clone();
        let jwks_uri = match issuer.config.jwks_uri.clone().or(known_uri) {
            Some(uri) => uri,
            None => self.discover(&issuer.config.issuer).await?,
        };
        let set: JwkSet = self.get_json(&jwks_uri).await.and_then(|v| {
            serde_json::from_value(v)
                .map_err(|e| AuthRefusal::KeysUnavailable(format!("{jwks_uri}: {e}")))
        })?;
        tracing::info!(issuer = %issuer.config.issuer, keys = set.keys.len(), "fetched the identity provider's keys");
        let mut keys = issuer.keys.write().unwrap_or_else(|p| p.into_inner());
        *keys = Keys {
            set: Some(set),
            fetched: Some(Instant::now()),
            jwks_uri: Some(jwks_uri),
        };
        lookup(&keys).unwrap_or_else(|| Err(no_key()))
    }

    /// The `jwks_uri` of `issuer`'s discovery document, whose `issuer`
    /// must be the configured one.
    async fn discover(&self, issuer: &str) -> Result<String, AuthRefusal> {
        let base = issuer.trim_end_matches('/');
        let mut last = String::new();
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            match self.get_json(&format!("{base}{path}")).await {
                Ok(doc) => {
                    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
                        return Err(AuthRefusal::KeysUnavailable(format!(
                            "{base}{path} names another issuer"
                        )));
                    }
                    return doc
                        .get("jwks_uri")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .ok_or_else(|| {
                            AuthRefusal::KeysUnavailable(format!("{base}{path} has no jwks_uri"))
                        });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(AuthRefusal::KeysUnavailable(last))
    }

    /// GETs a JSON document of at most 1 MiB.
    async fn get_json(&self, url: &str) -> Result<Value, AuthRefusal> {
        const MAX: usize = 1 << 20;
        let unavailable = |e: String| AuthRefusal::KeysUnavailable(format!("{url}: {e}"));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        if response.content_length().is_some_and(|n| n as usize > MAX) {
            return Err(unavailable("larger than 1 MiB".into()));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if bytes.len() > MAX {
            return Err(unavailable("larger than 1 MiB".into()));
        }
        serde_json::from_slice(&bytes).map_err(|e| unavailable(e.to_string()))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `https://host:port/path` -> (`https://host:port`, `/path`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

/// Counts refused tokens and decides which are recorded: at most `per_second`
/// entries a second; the others are counted into the next recorded one.
#[derive(Debug)]
pub struct RefusalBudget {
    per_second: u32,
    state: Mutex<(Instant, u32, u64)>,
}

impl RefusalBudget {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed since the last recorded)` when this refusal is to
    /// be recorded, None when it is only counted.
    pub fn take(&self) -> Option<u64> {
        let mut s = lock(&self.state);
        if s.0.elapsed() >= Duration::from_secs(1) {
            s.0 = Instant::now();
            s.1 = 0;
        }
        if s.1 < self.per_second {
            s.1 += 1;
            let suppressed = s.2;
            s.2 = 0;
            Some(suppressed)
        } else {
            s.2 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_url_inserts_the_well_known_path() {
        assert_eq!(
            split_origin("https://vigil.example:8443/mcp"),
            ("https://vigil.example:8443", "/mcp")
        );
        assert_eq!(split_origin("http://h"), ("http://h", ""));
    }

    #[test]
    fn the_refusal_budget_records_a_few_and_counts_the_rest() {
        let budget = RefusalBudget::new(2);
        assert_eq!(budget.take(), Some(0));
        assert_eq!(budget.take(), Some(0));
        assert_eq!(budget.take(), None);
        assert_eq!(budget.take(), None);
    }
}
