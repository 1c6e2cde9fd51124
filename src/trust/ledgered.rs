//! The trust store as the ledger records it, and how a `trust.toml`
//! differs from that. Sans-I/O: the node reads the `trust.changed` entries
//! and the file; this module replays the changes in ledger order
//! ([`replay`]) and names every difference ([`differences`]), so that a
//! store edited by hand (a publisher added with `scopes = ["*"]`, a
//! revocation removed) is refused instead of honoured.
//!
//! Entries written before changes carried whole keys and times leave those
//! unknown in the replayed store (an empty key, time 0); such fields are
//! not compared.

use super::{Operator, Peer, Publisher, Revocation, TrustChange, TrustStore};

/// The store that the recorded `changes`, applied in order, produce.
pub fn replay<'a>(changes: impl IntoIterator<Item = &'a TrustChange>) -> TrustStore {
    let mut store = TrustStore::default();
    for change in changes {
        apply(&mut store, change);
    }
    store
}

/// Applies one recorded change (recorded changes were checked when they
/// were made; nothing is checked again).
fn apply(store: &mut TrustStore, change: &TrustChange) {
    let revocation = |reason: &str, at: &Option<u64>| {
        Some(Revocation {
            at: at.unwrap_or(0),
            reason: reason.to_string(),
        })
    };
    match change {
        TrustChange::PublisherAdded {
            key_id,
            key,
            name,
            scopes,
            added_at,
        } => {
            store.publishers.retain(|p| &p.key_id != key_id);
            store.publishers.push(Publisher {
                key_id: key_id.clone(),
                key: key.clone().unwrap_or_default(),
                name: name.clone(),
                scopes: scopes.clone(),
                added_at: added_at.unwrap_or(0),
                revoked: None,
            });
        }
        TrustChange::PeerAdded {
            key_id,
            key,
            name,
            allowed_targets,
            added_at,
        } => {
            store.peers.retain(|p| &p.key_id != key_id);
            store.peers.push(Peer {
                key_id: key_id.clone(),
                key: key.clone().unwrap_or_default(),
                name: name.clone(),
                allowed_targets: allowed_targets.clone(),
                added_at: added_at.unwrap_or(0),
                revoked: None,
            });
        }
        TrustChange::OperatorAdded {
            key_id,
            key,
            name,
            added_at,
        } => {
            store.operators.retain(|o| &o.key_id != key_id);
            store.operators.push(Operator {
                key_id: key_id.clone(),
                key: key.clone().unwrap_or_default(),
                name: name.clone(),
                added_at: added_at.unwrap_or(0),
                revoked: None,
            });
        }
        TrustChange::PublisherRevoked { key_id, reason, at } => {
            if let Some(p) = store.publishers.iter_mut().find(|p| &p.key_id == key_id) {
                p.revoked = revocation(reason, at);
            }
        }
        TrustChange::PeerRevoked { key_id, reason, at } => {
            if let Some(p) = store.peers.iter_mut().find(|p| &p.key_id == key_id) {
                p.revoked = revocation(reason, at);
            }
        }
        TrustChange::OperatorRevoked { key_id, reason, at } => {
            if let Some(o) = store.operators.iter_mut().find(|o| &o.key_id == key_id) {
                o.revoked = revocation(reason, at);
            }
        }
        TrustChange::StoreRestored { .. } => {}
    }
}

/// One trusted key as the comparison sees it, whatever its role.
struct KeyView<'a> {
    role: &'static str,
    key_id: &'a str,
    key: &'a str,
    name: &'a str,
    /// What the role grants: scopes, allowed targets, nothing for operators.
    grants: Option<(&'static str, &'a [String])>,
    added_at: u64,
    revoked: Option<&'a Revocation>,
}

fn views(store: &TrustStore) -> Vec<KeyView<'_>> {
    let publishers = store.publishers.iter().map(|p| KeyView {
        role: "publisher",
        key_id: &p.key_id,
        key: &p.key,
        name: &p.name,
        grants: Some(("scopes", &p.scopes)),
        added_at: p.added_at,
        revoked: p.revoked.as_ref(),
    });
    let peers = store.peers.iter().map(|p| KeyView {
        role: "peer",
        key_id: &p.key_id,
        key: &p.key,
        name: &p.name,
        grants: Some(("allowed targets", &p.allowed_targets)),
        added_at: p.added_at,
        revoked: p.revoked.as_ref(),
    });
    let operators = store.operators.iter().map(|o| KeyView {
        role: "operator",
        key_id: &o.key_id,
        key: &o.key,
        name: &o.name,
        grants: None,
        added_at: o.added_at,
        revoked: o.revoked.as_ref(),
    });
    publishers.chain(peers).chain(operators).collect()
}

/// Every way the store in `file` differs from the `recorded` one, each as
/// one sentence naming the key; empty when they agree.
pub fn differences(file: &TrustStore, recorded: &TrustStore) -> Vec<String> {
    let in_file = views(file);
    let on_record = views(recorded);
    let find = |list: &[KeyView<'_>], role: &str, id: &str| {
        list.iter().position(|v| v.role == role && v.key_id == id)
    };
    let mut out = Vec::new();
    for f in &in_file {
        let Some(r) = find(&on_record, f.role, f.key_id).map(|i| &on_record[i]) else {
            out.push(format!(
                "{} {} (\"{}\") is in trust.toml but no trust.changed entry added it",
                f.role, f.key_id, f.name
            ));
            continue;
        };
        out.extend(key_differences(f, r));
    }
    for r in &on_record {
        if find(&in_file, r.role, r.key_id).is_none() {
            out.push(format!(
                "{} {} (\"{}\") was added on record but is missing from trust.toml",
                r.role, r.key_id, r.name
            ));
        }
    }
    out
}

/// How one key's entry in the file differs from its record.
fn key_differences(f: &KeyView<'_>, r: &KeyView<'_>) -> Vec<String> {
    let who = format!("{} {}", f.role, f.key_id);
    let mut out = Vec::new();
    if !r.key.is_empty() && f.key != r.key {
        out.push(format!(
            "{who}: its public key in trust.toml is not the recorded one"
        ));
    }
    if f.name != r.name {
        out.push(format!(
            "{who}: named {:?} in trust.toml but {:?} on record",
            f.name, r.name
        ));
    }
    if let (Some((what, fg)), Some((_, rg))) = (f.grants, r.grants) {
        if fg != rg {
            out.push(format!(
                "{who}: {what} are {fg:?} in trust.toml but {rg:?} on record"
            ));
        }
    }
    if r.added_at != 0 && f.added_at != r.added_at {
        out.push(format!(
            "{who}: added at {} in trust.toml but at {} on record",
            f.added_at, r.added_at
        ));
    }
    match (f.revoked, r.revoked) {
        (None, Some(rv)) => out.push(format!(
            "{who}: not revoked in trust.toml but revoked on record ({:?})",
            rv.reason
        )),
        (Some(_), None) => out.push(format!(
            "{who}: revoked in trust.toml but no revocation is on record"
        )),
        (Some(fv), Some(rv)) => {
            if fv.reason != rv.reason || (rv.at != 0 && fv.at != rv.at) {
                out.push(format!(
                    "{who}: its revocation in trust.toml is not the recorded one"
                ));
            }
        }
        (None, None) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_crypto::SigningKey;

    #[test]
    fn a_replayed_store_equals_the_store_that_made_the_changes() {
        let (a, b, c) = (
            SigningKey::generate(),
            SigningKey::generate(),
            SigningKey::generate(),
        );
        let mut store = TrustStore::default();
        let changes = [
            store
                .add_publisher(a.public_key(), "acme", &["acme/*".into()], 10)
                .unwrap(),
            store
                .add_peer(b.public_key(), "node-b", &["127.0.0.1:5432".into()], 11)
                .unwrap(),
            store.add_operator(c.public_key(), "jane", 12).unwrap(),
            store
                .revoke_publisher(&a.public_key().key_id().to_string(), "leaked", 13)
                .unwrap(),
        ];
        // Through the ledger's JSON and back.
        let recorded: Vec<TrustChange> = changes
            .iter()
            .map(|c| serde_json::from_value(c.audit_record().details).unwrap())
            .collect();
        let replayed = replay(&recorded);
        assert_eq!(replayed, store);
        assert!(differences(&store, &replayed).is_empty());
    }

    #[test]
    fn every_hand_edit_is_named() {
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let mut store = TrustStore::default();
        let changes = [
            store
                .add_publisher(a.public_key(), "acme", &["acme/*".into()], 10)
                .unwrap(),
            store
                .revoke_publisher(&a.public_key().key_id().to_string(), "leaked", 13)
                .unwrap(),
        ];
        let recorded = replay(&changes);

        // A widened scope and a removed revocation.
        let mut edited = store.clone();
        edited.publishers[0].scopes = vec!["*".into()];
        edited.publishers[0].revoked = None;
        let diff = differences(&edited, &recorded);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].contains("scopes are [\"*\"]"), "{diff:?}");
        assert!(diff[1].contains("not revoked in trust.toml"), "{diff:?}");

        // A publisher nobody recorded, and a recorded one removed.
        let mut edited = TrustStore::default();
        edited
            .add_publisher(b.public_key(), "evil", &["*".into()], 20)
            .unwrap();
        let diff = differences(&edited, &recorded);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].contains("no trust.changed entry added it"));
        assert!(diff[1].contains("missing from trust.toml"));
    }

    #[test]
    fn legacy_changes_without_keys_compare_by_key_id() {
        let a = SigningKey::generate();
        let mut store = TrustStore::default();
        store
            .add_publisher(a.public_key(), "acme", &["acme/*".into()], 10)
            .unwrap();
        // As written before changes carried the key and time.
        let legacy: TrustChange = serde_json::from_value(serde_json::json!({
            "change": "publisher-added",
            "key_id": a.public_key().key_id().to_string(),
            "name": "acme",
            "scopes": ["acme/*"],
        }))
        .unwrap();
        assert!(differences(&store, &replay([&legacy])).is_empty());
    }
}
