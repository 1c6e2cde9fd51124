//! Node key rotation (docs/ledger-format.md §1.6) on a real sled ledger:
//! two rotations verify from the first key and from each later one, in
//! place and as bundles (also ones starting after the rotations); and the
//! attempts an insider holding an old key would make are refused: signing
//! history after its handover, a bundle whose checkpoint only the old key
//! signed, a chain with a forged or missing handover, a fork under the
//! first key against a checkpoint held from after the rotation.

mod support;

use support::Parts;
use vigil_crypto::SigningKey;
use vigil_ledger::bundle::{export, verify_bundle, verify_bundle_since, ExportOptions};
use vigil_ledger::handover::KIND_KEY_ROTATED;
use vigil_ledger::verify::{verify_ledger, Location, VerifyError};
use vigil_ledger::{Checkpoint, Ledger, NewEntry};

const ORIGIN: &str = "rotation.example/log";

fn append(l: &Ledger, n: usize) {
    for i in 0..n {
        l.append(NewEntry::new(
            "tool.call",
            "agent:a",
            format!("tool:t{i}"),
            "allow",
        ))
        .expect("append");
    }
}

fn bundle(l: &Ledger, current: &SigningKey, from: u64) -> Vec<u8> {
    let mut out = Vec::new();
    export(
        l,
        current.public_key(),
        &mut out,
        &ExportOptions {
            from,
            ..ExportOptions::default()
        },
        &mut |_, _| {},
    )
    .expect("export");
    out
}

fn failure(b: &[u8], pinned: &SigningKey) -> vigil_ledger::Failure {
    match verify_bundle(b, pinned.public_key()) {
        Err(VerifyError::Failed(f)) => f,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

/// A ledger of 3 entries under `a`, handed to `b` (entry 3), 2 more
/// entries and a checkpoint, handed to `c` (entry 6), 2 more and a
/// checkpoint: 9 entries.
struct Rotated {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    a: SigningKey,
    b: SigningKey,
    c: SigningKey,
}

fn rotated() -> Rotated {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    let (a, b, c) = (
        SigningKey::generate(),
        SigningKey::generate(),
        SigningKey::generate(),
    );
    append(&ledger, 3);
    ledger.checkpoint(&a, ORIGIN).expect("checkpoint by a");
    let r = ledger
        .rotate_key(&a, &b, ORIGIN, "operator")
        .expect("a -> b");
    assert_eq!(r.handover.index, 3);
    let cp = r.checkpoint.expect("the handover checkpoint");
    assert_eq!(cp.checkpoint.size, 4);
    assert_eq!(
        cp.note.matches("\n\u{2014} ").count(),
        2,
        "signed by both keys: {}",
        cp.note
    );
    append(&ledger, 2);
    ledger.checkpoint(&b, ORIGIN).expect("checkpoint by b");
    let r = ledger
        .rotate_key(&b, &c, ORIGIN, "operator")
        .expect("b -> c");
    assert_eq!(r.handover.index, 6);
    r.checkpoint.expect("the second handover checkpoint");
    append(&ledger, 2);
    ledger.checkpoint(&c, ORIGIN).expect("checkpoint by c");
    Rotated {
        _dir: dir,
        ledger,
        a,
        b,
        c,
    }
}

#[test]
fn two_rotations_verify_from_the_first_key_and_from_each_later_one() {
    let r = rotated();
    assert_eq!(r.ledger.size(), 9);
    let e = r.ledger.entry(3).expect("read").expect("entry 3");
    assert_eq!(e.kind, KIND_KEY_ROTATED);
    assert_eq!(r.ledger.handovers().expect("handovers").len(), 2);

    let b = bundle(&r.ledger, &r.c, 0);
    for pinned in [&r.a, &r.b, &r.c] {
        let report = verify_bundle(&b[..], pinned.public_key()).expect("valid");
        assert_eq!((report.entries, report.keys), (9, 3));
        assert!(report
            .to_string()
            .contains("3 node keys, 2 handovers followed"));
        let in_place = verify_ledger(&r.ledger, pinned.public_key()).expect("valid in place");
        assert_eq!(in_place.keys, 3);
    }
    let stranger = SigningKey::generate();
    let f = failure(&b, &stranger);
    assert_eq!(f.location, Location::Header);
    assert!(f.reason.contains("none of the bundle's 3 node keys"), "{f}");

    // A bundle from after both rotations still carries the chain.
    let late = bundle(&r.ledger, &r.c, 7);
    let report = verify_bundle(&late[..], r.a.public_key()).expect("valid from the first key");
    assert_eq!((report.from, report.entries, report.keys), (7, 2, 3));

    // A checkpoint held from before the rotations is extended.
    let held = r.ledger.checkpoint_notes().expect("notes")[0].1.clone();
    let report = verify_bundle_since(&b[..], r.a.public_key(), &[held]).expect("consistent");
    assert_eq!(report.held, 1);
}

#[test]
fn a_leaked_old_key_cannot_sign_history_after_its_handover() {
    let r = rotated();
    append(&r.ledger, 1);
    // The node refuses to sign with a key that handed the log over.
    for old in [&r.a, &r.b] {
        let e = r
            .ledger
            .checkpoint(old, ORIGIN)
            .expect_err("an old key signs");
        assert!(e.to_string().contains("not to"), "{e}");
    }
    r.ledger
        .checkpoint(&r.c, ORIGIN)
        .expect("the current key signs");
    let good = bundle(&r.ledger, &r.c, 0);
    verify_bundle(&good[..], r.a.public_key()).expect("valid");

    // An insider re-signs the newest checkpoint with the old key b only.
    let mut parts = Parts::decode(&good);
    let (note, proof) = parts.checkpoints.last().cloned().expect("a checkpoint");
    let body = note.rsplit_once("\n\n").expect("note").0.to_string() + "\n";
    let cp = Checkpoint::parse_body(&body).expect("body");
    parts.checkpoints.pop();
    parts
        .checkpoints
        .push((cp.sign(&r.b).expect("sign").note, proof));
    let forged = parts.encode();
    for pinned in [&r.a, &r.b, &r.c] {
        let f = failure(&forged, pinned);
        assert_eq!(f.location, Location::Checkpoint(10), "{f}");
    }
}

#[test]
fn a_forged_or_missing_handover_is_refused() {
    let r = rotated();
    let good = bundle(&r.ledger, &r.c, 0);

    // The handover's signature altered.
    let mut parts = Parts::decode(&good);
    parts.header.handovers[1].signature[10] ^= 1;
    let f = failure(&parts.encode(), &r.a);
    assert_eq!(f.location, Location::Header);
    assert!(
        f.reason.contains("not signed by the key it hands over"),
        "{f}"
    );

    // A handover to a key of the insider's own, in place of c.
    let mut parts = Parts::decode(&good);
    let mallory = SigningKey::generate();
    parts.header.handovers[1].new_key = mallory.public_key().as_bytes().to_vec();
    assert_eq!(failure(&parts.encode(), &r.a).location, Location::Header);

    // The chain left out: the bundle claims a never rotated.
    let mut parts = Parts::decode(&good);
    parts.header.handovers.clear();
    let f = failure(&parts.encode(), &r.a);
    assert!(
        matches!(f.location, Location::Checkpoint(_) | Location::Entry(3)),
        "{f}"
    );

    // The chain cut after the first handover: entry 6 is a handover the
    // chain leaves out, and the checkpoints after it are not b's.
    let mut parts = Parts::decode(&good);
    parts.header.handovers.truncate(1);
    assert!(matches!(
        verify_bundle(&parts.encode()[..], r.a.public_key()),
        Err(VerifyError::Failed(_))
    ));
}

#[test]
fn a_fork_under_the_first_key_fails_against_a_checkpoint_held_after_rotation() {
    let r = rotated();
    let held_after = r
        .ledger
        .checkpoint_notes()
        .expect("notes")
        .last()
        .expect("a note")
        .1
        .clone();
    // The insider with a's key and the disk starts the log over.
    let dir = tempfile::tempdir().expect("tempdir");
    let fork = Ledger::open(dir.path()).expect("open");
    append(&fork, 12);
    fork.checkpoint(&r.a, ORIGIN).expect("fork checkpoint");
    let forged = bundle(&fork, &r.a, 0);
    verify_bundle(&forged[..], r.a.public_key()).expect("alone, the fork verifies");
    let refused = verify_bundle_since(&forged[..], r.a.public_key(), &[held_after]);
    assert!(refused.is_err(), "the fork passed: {refused:?}");
}

#[test]
fn rotation_is_refused_to_a_key_used_before_and_by_a_key_not_in_force() {
    let r = rotated();
    let e = r
        .ledger
        .rotate_key(&r.c, &r.a, ORIGIN, "operator")
        .expect_err("back to a");
    assert!(e.to_string().contains("already a node key"), "{e}");
    let size = r.ledger.size();
    let fresh = SigningKey::generate();
    r.ledger
        .rotate_key(&r.a, &fresh, ORIGIN, "operator")
        .expect_err("an old key hands over");
    assert_eq!(r.ledger.size(), size, "a refused rotation records nothing");
}
