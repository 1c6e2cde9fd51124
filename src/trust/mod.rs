//! The node's trust store (`trust.toml` in the node home): which publisher
//! keys may sign packages and for which names (scopes), which peer nodes may
//! link to this one and reach which targets, which operators may answer
//! approvals, and which of them were revoked and why. The rules (scope
//! matching, add and revoke) are plain methods returning a [`TrustChange`]
//! for the ledger; reading and writing the file is in [`file`]; the store
//! as the ledger records it, and how a file differs from it, in
//! [`ledgered`].

pub mod file;
pub mod ledgered;

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use vigil_crypto::{keyfile, CompositePublicKey, KeyId};

use crate::gatekeeper::record::AuditRecord;
use crate::node::audit::{EventKind, Verdict};

/// The trust store format version this code reads and writes.
pub const TRUST_STORE_VERSION: u32 = 1;

/// Why a trust store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("publisher {0} is already trusted; revoke it first to change its scopes")]
    PublisherExists(KeyId),
    #[error("publisher {0} was revoked; a revoked key is never trusted again (the publisher must use a new key)")]
    PublisherWasRevoked(KeyId),
    #[error("no publisher with key id {0} in the trust store (see `vigil trust list`)")]
    UnknownPublisher(String),
    #[error("publisher {0} is already revoked")]
    PublisherAlreadyRevoked(KeyId),
    #[error("peer {0} is already trusted; revoke it first to change it")]
    PeerExists(KeyId),
    #[error("peer {0} was revoked; a revoked key is never trusted again")]
    PeerWasRevoked(KeyId),
    #[error("no peer with key id {0} in the trust store (see `vigil trust list`)")]
    UnknownPeer(String),
    #[error("peer {0} is already revoked")]
    PeerAlreadyRevoked(KeyId),
    #[error("operator {0} is already trusted")]
    OperatorExists(KeyId),
    #[error("operator {0} was revoked; a revoked key is never trusted again (the operator must use a new key)")]
    OperatorWasRevoked(KeyId),
    #[error("no operator with key id {0} in the trust store (see `vigil trust list`)")]
    UnknownOperator(String),
    #[error("operator {0} is already revoked")]
    OperatorAlreadyRevoked(KeyId),
    #[error("an operator needs a name (--name): approvals are recorded as `operator:NAME`")]
    NoOperatorName,
    #[error("operator name `{0}` is already used by another operator key")]
    OperatorNameTaken(String),
    #[error("invalid scope `{scope}`: {problem}")]
    BadScope {
        scope: String,
        problem: &'static str,
    },
    #[error("at least one --scope is required: a publisher may sign only names in its scopes")]
    NoScopes,
    #[error("a revocation needs a non-empty reason")]
    EmptyReason,
}

/// The whole trust store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustStore {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publishers: Vec<Publisher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<Operator>,
}

/// A package publisher: a composite key and the names it may sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// Key id (32 hex digits) of `key`.
    pub key_id: String,
    /// The public key as a `.pub` line (`vigil-mldsa65-ed25519 BASE64`).
    pub key: String,
    /// Operator's label for the publisher.
    #[serde(default)]
    pub name: String,
    /// Package-name patterns this key may sign: `acme/*`, `acme/weather`.
    pub scopes: Vec<String>,
    /// Unix seconds when added.
    pub added_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// A peer node: its composite identity and the targets it may reach
/// through this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Key id (32 hex digits) of `key`.
    pub key_id: String,
    /// The peer's composite public key as a `.pub` line.
    pub key: String,
    /// Operator's name for the peer.
    #[serde(default)]
    pub name: String,
    /// `host:port` targets the peer may open tunnels to.
    #[serde(default)]
    pub allowed_targets: Vec<String>,
    /// Unix seconds when added.
    pub added_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// A person who answers approvals: decisions signed with this composite
/// key are the only ones that count for tools whose approval mode is
/// `operator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// Key id (32 hex digits) of `key`.
    pub key_id: String,
    /// The operator's composite public key as a `.pub` line.
    pub key: String,
    /// The operator's name: decisions are recorded as `operator:NAME`.
    pub name: String,
    /// Unix seconds when added.
    pub added_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// When and why a key was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Unix seconds.
    pub at: u64,
    pub reason: String,
}

/// One change to the trust store, for the ledger. Each carries what the
/// store gained (the whole key, times), so that the store can be rebuilt
/// from the ledger alone ([`ledgered::replay`]). Entries written before
/// that lack `key`, `added_at` and `at`; they are `None` when read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum TrustChange {
    PublisherAdded {
        key_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        name: String,
        scopes: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added_at: Option<u64>,
    },
    PublisherRevoked {
        key_id: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    PeerAdded {
        key_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        name: String,
        allowed_targets: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added_at: Option<u64>,
    },
    PeerRevoked {
        key_id: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    OperatorAdded {
        key_id: String,
        key: Option<String>,
        name: String,
        added_at: Option<u64>,
    },
    OperatorRevoked {
        key_id: String,
        reason: String,
        at: Option<u64>,
    },
    /// `trust.toml` was rewritten from the ledger (`vigil trust restore`);
    /// `differences` are what the file held that the ledger did not say.
    StoreRestored { differences: Vec<String> },
}

impl TrustChange {
    /// The ledger entry recording this change: `trust.changed`, decision
    /// `record`, the key id as subject and the change (`change`:
    /// `publisher-added`, `publisher-revoked`, `peer-added`, `peer-revoked`)
    /// in the details; `trust.toml` as subject for a restored store.
    pub fn audit_record(&self) -> AuditRecord {
        let subject = match self {
            Self::PublisherAdded { key_id, .. }
            | Self::PublisherRevoked { key_id, .. }
            | Self::PeerAdded { key_id, .. }
            | Self::PeerRevoked { key_id, .. }
            | Self::OperatorAdded { key_id, .. }
            | Self::OperatorRevoked { key_id, .. } => key_id.as_str(),
            Self::StoreRestored { .. } => "trust.toml",
        };
        AuditRecord {
            kind: EventKind::TrustChanged,
            subject: subject.to_string(),
            decision: Verdict::Record,
            details: serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

impl Default for TrustStore {
    fn default() -> Self {
        Self {
            version: TRUST_STORE_VERSION,
            publishers: Vec::new(),
            peers: Vec::new(),
            operators: Vec::new(),
        }
    }
}

/// True when `scope` covers the package `name`: an exact name, or a
/// pattern ending in `*` that covers every name with that prefix
/// (`acme/*` covers `acme/weather`, not `acme2/x`).
pub fn scope_covers(scope: &str, name: &str) -> bool {
    match scope.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => scope == name,
    }
}

/// Checks a scope pattern: lowercase ASCII letters, digits, `-`, `_`, `.`,
/// one `/`, and `*` only at the end.
pub fn validate_scope(scope: &str) -> Result<(), TrustError> {
    let bad = |problem| TrustError::BadScope {
        scope: scope.to_string(),
        problem,
    };
    let body = scope.strip_suffix('*').unwrap_or(scope);
    if scope.is_empty() {
        return Err(bad("it is empty"));
    }
    if body.contains('*') {
        return Err(bad("`*` may appear only at the end"));
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c))
    {
        return Err(bad(
            "use lowercase ASCII letters, digits, `-`, `_`, `.` and `/`",
        ));
    }
    if body.matches('/').count() > 1 {
        return Err(bad("a package name has exactly one `/`"));
    }
    if !scope.ends_with('*') && !body.contains('/') {
        return Err(bad("an exact scope is a full `publisher/name`; for all names of a publisher write `publisher/*`"));
    }
    Ok(())
}

fn check_reason(reason: &str) -> Result<String, TrustError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(TrustError::EmptyReason);
    }
    Ok(reason.to_string())
}

impl Publisher {
    /// Parses the stored key.
    pub fn public_key(&self) -> Option<CompositePublicKey> {
        keyfile::parse_public_key_line(&self.key)
            .ok()
            .map(|(k, _)| k)
    }
    /// The first scope covering `name`, if any.
    pub fn scope_for(&self, name: &str) -> Option<&str> {
        self.scopes
            .iter()
            .map(String::as_str)
            .find(|s| scope_covers(s, name))
    }
}

impl Peer {
    /// Parses the stored key.
    pub fn public_key(&self) -> Option<CompositePublicKey> {
        keyfile::parse_public_key_line(&self.key)
            .ok()
            .map(|(k, _)| k)
    }
    /// True when the peer may reach `target` (`host:port`, compared exactly).
    pub fn may_reach(&self, target: &str) -> bool {
        self.revoked.is_none() && self.allowed_targets.iter().any(|t| t == target)
    }
}

impl TrustStore {
    /// The publisher with this key id, revoked or not.
    pub fn publisher(&self, key_id: &KeyId) -> Option<&Publisher> {
        by_id(&self.publishers, key_id)
    }

    /// The peer with this key id, revoked or not.
    pub fn peer(&self, key_id: &KeyId) -> Option<&Peer> {
        by_id(&self.peers, key_id)
    }

    /// The peer with this key, if it is trusted and not revoked, with a
    /// reason otherwise. The whole key must match, not only its id.
    pub fn active_peer(&self, key: &CompositePublicKey) -> Result<&Peer, TrustError> {
        active(&self.peers, key).map_err(|revoked| match revoked {
            true => TrustError::PeerWasRevoked(key.key_id()),
            false => TrustError::UnknownPeer(key.key_id().to_string()),
        })
    }

    /// Trusts `key` to sign package names covered by `scopes`.
    pub fn add_publisher(
        &mut self,
        key: &CompositePublicKey,
        name: &str,
        scopes: &[String],
        now: u64,
    ) -> Result<TrustChange, TrustError> {
        if scopes.is_empty() {
            return Err(TrustError::NoScopes);
        }
        for s in scopes {
            validate_scope(s)?;
        }
        let id = key.key_id();
        if let Some(p) = self.publisher(&id) {
            return Err(match p.revoked {
                Some(_) => TrustError::PublisherWasRevoked(id),
                None => TrustError::PublisherExists(id),
            });
        }
        let publisher = Publisher {
            key_id: id.to_string(),
            key: keyfile::public_key_line(key, None),
            name: name.to_string(),
            scopes: scopes.to_vec(),
            added_at: now,
            revoked: None,
        };
        let change = TrustChange::PublisherAdded {
            key_id: publisher.key_id.clone(),
            key: Some(publisher.key.clone()),
            name: publisher.name.clone(),
            scopes: publisher.scopes.clone(),
            added_at: Some(now),
        };
        self.publishers.push(publisher);
        Ok(change)
    }

    /// Revokes the publisher whose key id is `key_id` (32 hex digits).
    pub fn revoke_publisher(
        &mut self,
        key_id: &str,
        reason: &str,
        now: u64,
    ) -> Result<TrustChange, TrustError> {
        let entries = self
            .publishers
            .iter_mut()
            .map(|p| (&p.key_id, &mut p.revoked));
        let (key_id, reason) = revoke(entries, key_id, reason, now).map_err(|e| match e {
            Revoke::Unknown => TrustError::UnknownPublisher(key_id.into()),
            Revoke::Already(id) => TrustError::PublisherAlreadyRevoked(id),
            Revoke::EmptyReason => TrustError::EmptyReason,
        })?;
        Ok(TrustChange::PublisherRevoked {
            key_id,
            reason,
            at: Some(now),
        })
    }

    /// Trusts the peer node `key` to link here and reach `allowed_targets`.
    pub fn add_peer(
        &mut self,
        key: &CompositePublicKey,
        name: &str,
        allowed_targets: &[String],
        now: u64,
    ) -> Result<TrustChange, TrustError> {
        let id = key.key_id();
        if let Some(p) = self.peer(&id) {
            return Err(match p.revoked {
                Some(_) => TrustError::PeerWasRevoked(id),
                None => TrustError::PeerExists(id),
            });
        }
        let peer = Peer {
            key_id: id.to_string(),
            key: keyfile::public_key_line(key, None),
            name: name.to_string(),
            allowed_targets: allowed_targets.to_vec(),
            added_at: now,
            revoked: None,
        };
        let change = TrustChange::PeerAdded {
            key_id: peer.key_id.clone(),
            key: Some(peer.key.clone()),
            name: peer.name.clone(),
            allowed_targets: peer.allowed_targets.clone(),
            added_at: Some(now),
        };
        self.peers.push(peer);
        Ok(change)
    }

    /// Revokes the peer whose key id is `key_id`.
    pub fn revoke_peer(
        &mut self,
        key_id: &str,
        reason: &str,
        now: u64,
    ) -> Result<TrustChange, TrustError> {
        let entries = self.peers.iter_mut().map(|p| (&p.key_id, &mut p.revoked));
        let (key_id, reason) = revoke(entries, key_id, reason, now).map_err(|e| match e {
            Revoke::Unknown => TrustError::UnknownPeer(key_id.into()),
            Revoke::Already(id) => TrustError::PeerAlreadyRevoked(id),
            Revoke::EmptyReason => TrustError::EmptyReason,
        })?;
        Ok(TrustChange::PeerRevoked {
            key_id,
            reason,
            at: Some(now),
        })
    }

    /// The operator with this key id, revoked or not.
    pub fn operator(&self, key_id: &KeyId) -> Option<&Operator> {
        by_id(&self.operators, key_id)
    }

    /// The operator whose whole key is `key`, if trusted and not revoked.
    pub fn active_operator(&self, key: &CompositePublicKey) -> Result<&Operator, TrustError> {
        active(&self.operators, key).map_err(|revoked| match revoked {
            true => TrustError::OperatorWasRevoked(key.key_id()),
            false => TrustError::UnknownOperator(key.key_id().to_string()),
        })
    }

    /// Trusts `key` to sign approval decisions as operator `name`.
    pub fn add_operator(
        &mut self,
        key: &CompositePublicKey,
        name: &str,
        now: u64,
    ) -> Result<TrustChange, TrustError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(TrustError::NoOperatorName);
        }
        let id = key.key_id();
        if let Some(o) = self.operator(&id) {
            return Err(match o.revoked {
                Some(_) => TrustError::OperatorWasRevoked(id),
                None => TrustError::OperatorExists(id),
            });
        }
        if self
            .operators
            .iter()
            .any(|o| o.name == name && o.revoked.is_none())
        {
            return Err(TrustError::OperatorNameTaken(name.to_string()));
        }
        let operator = Operator {
            key_id: id.to_string(),
            key: keyfile::public_key_line(key, None),
            name: name.to_string(),
            added_at: now,
            revoked: None,
        };
        let change = TrustChange::OperatorAdded {
            key_id: operator.key_id.clone(),
            key: Some(operator.key.clone()),
            name: operator.name.clone(),
            added_at: Some(now),
        };
        self.operators.push(operator);
        Ok(change)
    }

    /// Revokes the operator whose key id is `key_id`.
    pub fn revoke_operator(
        &mut self,
        key_id: &str,
        reason: &str,
        now: u64,
    ) -> Result<TrustChange, TrustError> {
        let entries = self
            .operators
            .iter_mut()
            .map(|o| (&o.key_id, &mut o.revoked));
        let (key_id, reason) = revoke(entries, key_id, reason, now).map_err(|e| match e {
            Revoke::Unknown => TrustError::UnknownOperator(key_id.into()),
            Revoke::Already(id) => TrustError::OperatorAlreadyRevoked(id),
            Revoke::EmptyReason => TrustError::EmptyReason,
        })?;
        Ok(TrustChange::OperatorRevoked {
            key_id,
            reason,
            at: Some(now),
        })
    }
}

/// What every trusted key has, whatever its role.
trait Keyed {
    fn key_id(&self) -> &str;
    fn key_line(&self) -> &str;
    fn revoked(&self) -> Option<&Revocation>;

    /// Parses the stored key.
    fn parsed_key(&self) -> Option<CompositePublicKey> {
        keyfile::parse_public_key_line(self.key_line())
            .ok()
            .map(|(k, _)| k)
    }
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn key_id(&self) -> &str {
                &self.key_id
            }
            fn key_line(&self) -> &str {
                &self.key
            }
            fn revoked(&self) -> Option<&Revocation> {
                self.revoked.as_ref()
            }
        }
    )*};
}
keyed!(Publisher, Peer, Operator);

/// The entry of `list` with key id `id`, revoked or not.
fn by_id<'a, T: Keyed>(list: &'a [T], id: &KeyId) -> Option<&'a T> {
    let id = id.to_string();
    list.iter().find(|k| k.key_id() == id)
}

/// The entry of `list` whose whole key is `key`: `Ok` if not revoked,
/// `Err(true)` if revoked, `Err(false)` if unknown.
fn active<'a, T: Keyed>(list: &'a [T], key: &CompositePublicKey) -> Result<&'a T, bool> {
    let found = by_id(list, &key.key_id())
        .filter(|k| k.parsed_key().as_ref() == Some(key))
        .ok_or(false)?;
    match found.revoked() {
        Some(_) => Err(true),
        None => Ok(found),
    }
}

/// The trust store a running node decides with, shared by the parts that
/// read it (links, the catalog, approvals) and replaced whole by a change.
#[derive(Debug, Default)]
pub struct SharedTrust(RwLock<Arc<TrustStore>>);

impl SharedTrust {
    pub fn new(store: TrustStore) -> Self {
        Self(RwLock::new(Arc::new(store)))
    }

    /// The store now.
    pub fn get(&self) -> Arc<TrustStore> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the store.
    pub fn set(&self, store: TrustStore) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
    }
}

/// Why [`revoke`] failed; mapped to the publisher or peer error.
enum Revoke {
    Unknown,
    Already(KeyId),
    EmptyReason,
}

/// Marks the entry with `key_id` revoked; returns its key id (normalized)
/// and the trimmed reason.
fn revoke<'a>(
    entries: impl Iterator<Item = (&'a String, &'a mut Option<Revocation>)>,
    key_id: &str,
    reason: &str,
    now: u64,
) -> Result<(String, String), Revoke> {
    let reason = check_reason(reason).map_err(|_| Revoke::EmptyReason)?;
    let id = KeyId::parse(key_id).ok_or(Revoke::Unknown)?;
    let hex = id.to_string();
    let (_, revoked) = entries
        .into_iter()
        .find(|(k, _)| **k == hex)
        .ok_or(Revoke::Unknown)?;
    if revoked.is_some() {
        return Err(Revoke::Already(id));
    }
    *revoked = Some(Revocation {
        at: now,
        reason: reason.clone(),
    });
    Ok((hex, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_crypto::SigningKey;

    #[test]
    fn scopes() {
        assert!(scope_covers("acme/*", "acme/weather"));
        assert!(!scope_covers("acme/*", "acme2/weather"));
        assert!(scope_covers("acme/weather", "acme/weather"));
        assert!(!scope_covers("acme/weather", "acme/weather2"));
        assert!(scope_covers("*", "x/y"));
        for bad in ["", "acme", "a*b/*", "Acme/*", "a/b/c"] {
            assert!(validate_scope(bad).is_err(), "{bad}");
        }
        for good in ["acme/*", "acme/weather", "*", "acme/we*"] {
            validate_scope(good).expect(good);
        }
    }

    #[test]
    fn publishers_add_revoke_round_trip() {
        let key = SigningKey::generate();
        let mut store = TrustStore::default();
        let change = store
            .add_publisher(key.public_key(), "acme", &["acme/*".into()], 1)
            .expect("add");
        let record = change.audit_record();
        assert_eq!(record.kind, EventKind::TrustChanged);
        assert_eq!(record.details["change"], "publisher-added");
        assert!(matches!(
            store.add_publisher(key.public_key(), "acme", &["acme/*".into()], 2),
            Err(TrustError::PublisherExists(_))
        ));
        let id = key.public_key().key_id().to_string();
        assert!(matches!(
            store.revoke_publisher(&id, " ", 3),
            Err(TrustError::EmptyReason)
        ));
        store
            .revoke_publisher(&id, "key leaked", 3)
            .expect("revoke");
        assert!(matches!(
            store.add_publisher(key.public_key(), "acme", &["acme/*".into()], 4),
            Err(TrustError::PublisherWasRevoked(_))
        ));
        let text = file::encode(&store).expect("encode");
        assert_eq!(file::decode(&text, "t").expect("decode"), store);
    }

    #[test]
    fn peers_add_revoke() {
        let key = SigningKey::generate();
        let mut store = TrustStore::default();
        store
            .add_peer(key.public_key(), "node-b", &["127.0.0.1:5432".into()], 1)
            .expect("add");
        let peer = store.active_peer(key.public_key()).expect("active");
        assert!(peer.may_reach("127.0.0.1:5432"));
        assert!(!peer.may_reach("127.0.0.1:22"));
        let id = key.public_key().key_id().to_string();
        store.revoke_peer(&id, "retired", 2).expect("revoke");
        assert!(store.active_peer(key.public_key()).is_err());
        let text = file::encode(&store).expect("encode");
        assert_eq!(file::decode(&text, "t").expect("decode"), store);
    }
}
