//! Rules of docs/ledger-format.md that a verifier enforces even on bundles
//! signed with the node's own key (an insider who holds the key writes
//! them): an erasure entry never has a payload; its subject names the
//! erased index; a bundle carries at least one checkpoint; a note has one
//! signature line per key; the checkpoints chain, so none the node signed in
//! the range is left out. Version-1 bundles are still read.

mod support;

use support::{key, Parts, Payload};
use vigil_ledger::bundle::{export, verify_bundle, ExportOptions, MAGIC, MAGIC_V1, MAGIC_V2};
use vigil_ledger::entry::{Entry, PayloadCommitment, SALT_LEN};
use vigil_ledger::hash::{empty_root, leaf_hash};
use vigil_ledger::merkle::Frontier;
use vigil_ledger::verify::{Header, Location, VerifyError};
use vigil_ledger::{Checkpoint, Failure, Ledger, NewEntry};

const ORIGIN: &str = "rules.example/log";

/// A bundle of `entries` (index, `prev` and time filled in) from entry 0,
/// under one checkpoint signed with the node key: what an insider holding
/// the key can write without the node.
fn signed_bundle(entries: Vec<(Entry, Payload)>) -> Vec<u8> {
    let mut prev = [0u8; 32];
    let mut frontier = Frontier::new();
    let mut records = Vec::new();
    for (i, (mut e, payload)) in entries.into_iter().enumerate() {
        e.index = i as u64;
        e.timestamp_ns = 1_000 + i as u64;
        e.prev = prev;
        let raw = e.encode();
        prev = leaf_hash(&raw);
        frontier.push(prev);
        records.push((raw, payload));
    }
    let size = records.len() as u64;
    let note = Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: frontier.root(),
        previous: Some((0, empty_root())),
    }
    .sign(key())
    .expect("sign")
    .note;
    Parts {
        header: Header {
            origin: ORIGIN.into(),
            public_key: key().public_key().as_bytes().to_vec(),
            from: 0,
            to: size,
            prefix_prev: [0; 32],
            frontier: Vec::new(),
            handovers: Vec::new(),
        },
        checkpoints: vec![(note, Vec::new())],
        earlier: Vec::new(),
        entries: records,
    }
    .encode()
}

fn entry(kind: &str, subject: &str, details: &str, payload: Option<&[u8]>) -> (Entry, Payload) {
    let salt = [9u8; SALT_LEN];
    let e = Entry {
        index: 0,
        timestamp_ns: 0,
        prev: [0; 32],
        kind: kind.into(),
        actor: "node".into(),
        subject: subject.into(),
        decision: if kind == "payload.erased" {
            "erase"
        } else {
            "allow"
        }
        .into(),
        details: details.into(),
        payload: payload.map(|p| PayloadCommitment::compute(&salt, p)),
    };
    (e, None)
}

fn failure(bundle: &[u8]) -> Failure {
    match verify_bundle(bundle, key().public_key()) {
        Err(VerifyError::Failed(f)) => f,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

fn call() -> (Entry, Payload) {
    entry("tool.call", "tool:echo", "{}", Some(b"input"))
}

fn erasure(index: u64, subject: &str) -> (Entry, Payload) {
    let details = format!("{{\"index\":{index},\"reason\":\"gdpr\"}}");
    entry("payload.erased", subject, &details, None)
}

#[test]
fn a_well_formed_erasure_verifies() {
    let r = verify_bundle(
        &signed_bundle(vec![call(), erasure(0, "entry:0")])[..],
        key().public_key(),
    )
    .expect("valid");
    assert_eq!((r.entries, r.erasures, r.checkpoints), (2, 1, 1));
}

#[test]
fn an_erasure_entry_with_a_payload_is_invalid() {
    let (mut e, _) = erasure(0, "entry:0");
    e.payload = Some(PayloadCommitment::compute(&[1; SALT_LEN], b"smuggled"));
    let f = failure(&signed_bundle(vec![call(), (e, None)]));
    assert_eq!(f.location, Location::Entry(1));
    assert!(f.reason.contains("never has a payload"), "{f}");
}

#[test]
fn an_erasure_whose_subject_names_another_entry_is_invalid() {
    let f = failure(&signed_bundle(vec![call(), call(), erasure(0, "entry:1")]));
    assert_eq!(f.location, Location::Entry(2));
    assert!(
        f.reason.contains("subject is `entry:1`, not `entry:0`"),
        "{f}"
    );
    let f = failure(&signed_bundle(vec![call(), erasure(0, "tool:echo")]));
    assert_eq!(f.location, Location::Entry(1));
}

fn ledger_with_checkpoints(dir: &std::path::Path, sizes: &[u64]) -> Ledger {
    let l = Ledger::open(dir).expect("open");
    for &size in sizes {
        while l.size() < size {
            l.append(NewEntry::new("external", "ci", "ticket:1", "record"))
                .expect("append");
        }
        l.checkpoint(key(), ORIGIN).expect("checkpoint");
    }
    l
}

#[test]
fn a_bundle_without_a_checkpoint_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = ledger_with_checkpoints(dir.path(), &[2]);
    let mut parts = Parts::decode(&support::export_bundle(&l));
    parts.checkpoints.clear();
    // With its entries: they are covered by no signature.
    let f = failure(&parts.encode());
    assert_eq!(f.location, Location::Entry(0));
    // Without entries either: nothing in it is signed.
    parts.entries.clear();
    parts.header.to = 0;
    let f = failure(&parts.encode());
    assert_eq!(f.location, Location::Header);
    assert!(f.reason.contains("no signed checkpoint"), "{f}");
}

#[test]
fn a_note_signed_twice_by_the_same_key_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = ledger_with_checkpoints(dir.path(), &[3]);
    let mut parts = Parts::decode(&support::export_bundle(&l));
    let note = &mut parts.checkpoints[0].0;
    let line = note.rsplit_once("\n\n").expect("signatures").1.to_string();
    note.push_str(&line);
    let f = failure(&parts.encode());
    assert_eq!(f.location, Location::Checkpoint(3));
    assert!(
        f.reason.contains("two signature lines from the same key"),
        "{f}"
    );
}

#[test]
fn a_bundle_leaving_out_a_signed_checkpoint_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = ledger_with_checkpoints(dir.path(), &[2, 4, 6]);
    let bundle = support::export_bundle(&l);
    verify_bundle(&bundle[..], key().public_key()).expect("the whole bundle is valid");
    let mut parts = Parts::decode(&bundle);
    // Drop the checkpoint of size 4, with a correct proof from 2 to 6.
    parts.checkpoints.remove(1);
    parts.checkpoints[1].1 = l.consistency_proof(2, 6).expect("proof");
    let f = failure(&parts.encode());
    assert_eq!(f.location, Location::Checkpoint(6));
    assert!(f.reason.contains("leaves out a checkpoint"), "{f}");

    // From entry 3: the earlier checkpoint of size 2 is carried, and
    // leaving it out is caught too.
    let mut part = Vec::new();
    let opts = ExportOptions {
        from: 3,
        ..ExportOptions::default()
    };
    export(&l, key().public_key(), &mut part, &opts, &mut |_, _| {}).expect("export");
    let r = verify_bundle(&part[..], key().public_key()).expect("valid");
    assert_eq!((r.checkpoints, r.earlier), (2, 1));
    let mut parts = Parts::decode(&part);
    parts.earlier.clear();
    let f = failure(&parts.encode());
    assert_eq!(f.location, Location::Checkpoint(4));
    // An earlier checkpoint whose proof does not lead to the last root.
    let mut parts = Parts::decode(&part);
    parts.earlier[0].root = [7; 32];
    let f = failure(&parts.encode());
    assert_eq!(f.location, Location::Checkpoint(2));
}

#[test]
fn version_1_and_2_bundles_are_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = ledger_with_checkpoints(dir.path(), &[2, 5]);
    let parts = Parts::decode(&support::export_bundle(&l));
    assert!(parts.earlier.is_empty());
    assert!(parts.header.handovers.is_empty());
    let v3 = parts.encode();
    let h = &parts.header;
    // The handover count: after magic, origin, key, from, to, prefix, frontier.
    let handovers_at = MAGIC.len()
        + 2
        + h.origin.len()
        + 4
        + h.public_key.len()
        + 16
        + 32
        + 1
        + 32 * h.frontier.len();
    assert_eq!(v3[handovers_at], 0);
    let earlier_at = v3.len()
        - parts
            .entries
            .iter()
            .map(|(raw, _)| 4 + raw.len() + 1)
            .sum::<usize>()
        - 4;
    // Version 2: another magic and no handover section.
    let mut v2 = MAGIC_V2.to_vec();
    v2.extend(&v3[MAGIC.len()..handovers_at]);
    v2.extend(&v3[handovers_at + 1..]);
    let r = verify_bundle(&v2[..], key().public_key()).expect("v2 valid");
    assert_eq!((r.entries, r.checkpoints), (5, 2));
    // Version 1: no earlier section (its empty count) either.
    let mut v1 = MAGIC_V1.to_vec();
    v1.extend(&v3[MAGIC.len()..handovers_at]);
    v1.extend(&v3[handovers_at + 1..earlier_at]);
    v1.extend(&v3[earlier_at + 4..]);
    let r = verify_bundle(&v1[..], key().public_key()).expect("v1 valid");
    assert_eq!((r.entries, r.checkpoints), (5, 2));
}
