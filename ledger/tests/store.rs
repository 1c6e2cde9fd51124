//! The ledger on a real sled directory: appends, group commit, checkpoints,
//! proofs, export and verification, erasure.

mod support;

use std::sync::Arc;

use support::{export_bundle, key, open_sled};
use vigil_ledger::bundle::{export, verify_bundle, ExportOptions};
use vigil_ledger::proof::EntryProof;
use vigil_ledger::verify::{verify_ledger, VerifyError};
use vigil_ledger::{merkle, Ledger, NewEntry};

const ORIGIN: &str = "test.example/ledger";

fn entry(i: u64) -> NewEntry {
    NewEntry::new("tool.call", "agent:a", format!("tool:{i}"), "allow")
        .details(serde_json::json!({ "i": i, "args": "x" }))
}

#[test]
fn appends_are_indexed_chained_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.append(entry(0)).unwrap(), 0);
        assert_eq!(l.append_batch((1..5).map(entry).collect()).unwrap(), 1..5);
        let e1 = l.entry(1).unwrap().unwrap();
        assert_eq!(e1.prev, l.entry(0).unwrap().unwrap().hash());
        assert_eq!(e1.details, r#"{"args":"x","i":1}"#);
    }
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.size(), 5);
    assert_eq!(l.append(entry(5)).unwrap(), 5);
    let e5 = l.entry(5).unwrap().unwrap();
    assert_eq!(e5.prev, l.entry(4).unwrap().unwrap().hash());
    assert!(e5.timestamp_ns >= l.entry(4).unwrap().unwrap().timestamp_ns);
}

#[test]
fn invalid_entries_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    let err = l
        .append(NewEntry::new("Bad Kind", "a", "s", "allow"))
        .unwrap_err();
    assert!(err.to_string().contains("kind"), "{err}");
    let err = l
        .append(NewEntry::new("external", "a", "s", "allow").details(serde_json::json!([1])))
        .unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    assert_eq!(l.size(), 0);
}

#[test]
fn concurrent_appenders_get_distinct_contiguous_indices() {
    let dir = tempfile::tempdir().unwrap();
    let l = Arc::new(Ledger::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let l = l.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| l.append(entry(t * 100 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
    l.checkpoint(key(), ORIGIN).unwrap();
    verify_ledger(&l, key().public_key()).unwrap();
}

#[test]
fn stored_tree_matches_memory_tree_and_proofs_verify() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    let mut mem = merkle::MemoryTree::new();
    for chunk in 0..10u64 {
        let r = l
            .append_batch(
                (0..(chunk * 3 + 1))
                    .map(|i| entry(chunk * 100 + i))
                    .collect(),
            )
            .unwrap();
        for i in r {
            mem.push(l.entry(i).unwrap().unwrap().hash());
        }
    }
    let n = l.size();
    for size in 1..=n {
        assert_eq!(
            l.root(size).unwrap(),
            merkle::root(&mem, size).unwrap(),
            "root at {size}"
        );
    }
    let root = l.root(n).unwrap();
    for i in 0..n {
        let p = l.inclusion_proof(i, n).unwrap();
        assert!(merkle::verify_inclusion(
            i,
            n,
            &l.entry(i).unwrap().unwrap().hash(),
            &p,
            &root
        ));
    }
    for m in 1..n {
        let p = l.consistency_proof(m, n).unwrap();
        assert!(merkle::verify_consistency(
            m,
            &l.root(m).unwrap(),
            n,
            &root,
            &p
        ));
    }
}

/// Enough entries for complete tiles at levels 1 to 3, appended in uneven
/// batches and across reopens (which recompute the tree's in-memory edge):
/// every root and proof matches the in-memory reference tree, appends carry
/// on after each reopen, and the store only ever holds complete tiles.
#[test]
fn tiles_and_edge_survive_reopen_and_match_memory_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = merkle::MemoryTree::new();
    let batches = [1usize, 700, 3, 511, 1, 1300, 64, 2, 600];
    let mut next = 0u64;
    for (n, batch) in batches.iter().enumerate() {
        // Reopen before every other batch.
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.size(), next);
        let r = l
            .append_batch((next..next + *batch as u64).map(entry).collect())
            .unwrap();
        assert_eq!(r, next..next + *batch as u64);
        for i in r {
            mem.push(l.entry(i).unwrap().unwrap().hash());
        }
        next += *batch as u64;
        if n % 2 == 1 {
            continue;
        }
        drop(l);
        let l = Ledger::open(dir.path()).unwrap();
        let size = l.size();
        assert_eq!(l.root(size).unwrap(), mem.root());
        let mut samples: Vec<u64> = (0..size).step_by(97).collect();
        samples.extend([size - 1, size.saturating_sub(2), size / 2]);
        for &m in &samples {
            let m = m + 1;
            assert_eq!(
                l.root(m).unwrap(),
                merkle::root(&mem, m).unwrap(),
                "root at {m}"
            );
            let p = l.consistency_proof(m, size).unwrap();
            assert_eq!(p, merkle::consistency_proof(&mem, m, size).unwrap());
        }
        for &i in &samples {
            let p = l.inclusion_proof(i, size).unwrap();
            assert_eq!(
                p,
                merkle::inclusion_proof(&mem, i, size).unwrap(),
                "proof of {i}"
            );
        }
        assert_eq!(
            l.frontier(size).unwrap().hashes(),
            merkle::Frontier::load(&mem, size).unwrap().hashes()
        );
    }
    assert!(next > 2048);
    let db = open_sled(&dir.path().join("sled"));
    assert_eq!(db.scan_prefix(b"n").count(), 0);
    let tiles: Vec<usize> = db.scan_prefix(b"d").map(|kv| kv.unwrap().1.len()).collect();
    // 2 complete level-1 tiles per 1024 entries, 1 level-2, 1 per 2048 at level 3.
    assert_eq!(tiles.len() as u64, next / 512 + next / 1024 + next / 2048);
    assert!(tiles.iter().all(|&len| len == 256 * 32), "{tiles:?}");
}

/// A ledger written with the earlier layout (tiles, complete or not, under
/// `n`) is migrated on open and proves exactly as before.
#[test]
fn legacy_tiles_are_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (root, proofs) = {
        let l = Ledger::open(dir.path()).unwrap();
        l.append_batch((0..1500).map(entry).collect()).unwrap();
        let proofs: Vec<_> = (0..1500)
            .step_by(37)
            .map(|i| l.inclusion_proof(i, 1500).unwrap())
            .collect();
        (l.root(1500).unwrap(), proofs)
    };
    {
        let db = open_sled(&dir.path().join("sled"));
        for kv in db.scan_prefix(b"d") {
            let (k, v) = kv.unwrap();
            let mut old = k.to_vec();
            old[0] = b'n';
            db.insert(old, v).unwrap();
            db.remove(k).unwrap();
        }
        // An incomplete level-1 tile, as the old layout kept them.
        let mut k = vec![b'n', 1];
        k.extend_from_slice(&2u64.to_be_bytes());
        db.insert(k, vec![7u8; 32 * 237]).unwrap();
        db.flush().unwrap();
    }
    {
        let l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.root(1500).unwrap(), root);
        for (n, i) in (0..1500).step_by(37).enumerate() {
            assert_eq!(l.inclusion_proof(i, 1500).unwrap(), proofs[n]);
        }
        l.append(entry(1500)).unwrap();
        l.checkpoint(key(), ORIGIN).unwrap();
        verify_ledger(&l, key().public_key()).unwrap();
    }
    let db = open_sled(&dir.path().join("sled"));
    assert_eq!(db.scan_prefix(b"n").count(), 0);
    // 1501 entries: 2 complete level-1 tiles, 1 level-2 tile.
    assert_eq!(db.scan_prefix(b"d").count(), 3);
}

#[test]
fn checkpoints_are_signed_consistent_and_refused_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.checkpoint(key(), ORIGIN).is_err(), "empty ledger");
    l.append_batch((0..5).map(entry).collect()).unwrap();
    let c1 = l.checkpoint(key(), ORIGIN).unwrap();
    assert_eq!(c1.checkpoint.size, 5);
    assert_eq!(
        l.checkpoint(key(), ORIGIN).unwrap(),
        c1,
        "no new entries: same checkpoint"
    );
    l.append(entry(5)).unwrap();
    let c2 = l.checkpoint(key(), ORIGIN).unwrap();
    assert_eq!(c2.checkpoint.size, 6);
    let err = l.checkpoint(key(), "other.example/log").unwrap_err();
    assert!(err.to_string().contains("origin"), "{err}");
    let report = verify_ledger(&l, key().public_key()).unwrap();
    assert_eq!((report.entries, report.checkpoints), (6, 2));
}

#[test]
fn checkpoint_refused_when_history_was_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    {
        let l = Ledger::open(dir.path()).unwrap();
        l.append_batch((0..4).map(entry).collect()).unwrap();
        l.checkpoint(key(), ORIGIN).unwrap();
        l.append(entry(4)).unwrap();
    }
    {
        // Fork the ledger's state record: its frontier (the left subtree
        // over entries 0..4) no longer matches what was signed at size 4.
        let db = open_sled(&dir.path().join("sled"));
        let mut v = db.get(b"m/state").unwrap().unwrap().to_vec();
        v[49] ^= 1;
        db.insert(b"m/state", v).unwrap();
        db.flush().unwrap();
    }
    let l = Ledger::open(dir.path()).unwrap();
    let err = l.checkpoint(key(), ORIGIN).unwrap_err();
    assert!(err.to_string().contains("not consistent"), "{err}");
}

#[test]
fn export_verify_prove_and_erase() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    l.append_batch((0..10).map(entry).collect()).unwrap();
    let with_payload = l
        .append(entry(10).payload(b"secret tool output 1234".to_vec()))
        .unwrap();
    l.checkpoint(key(), ORIGIN).unwrap();
    l.append_batch((11..20).map(entry).collect()).unwrap();
    l.checkpoint(key(), ORIGIN).unwrap();

    let mut bundle = Vec::new();
    let mut calls = 0;
    let s = export(
        &l,
        key().public_key(),
        &mut bundle,
        &ExportOptions::default(),
        &mut |_, _| calls += 1,
    )
    .unwrap();
    assert_eq!((s.from, s.to, s.checkpoints, s.payloads), (0, 20, 2, 1));
    assert!(calls > 0);
    let r = verify_bundle(&bundle[..], key().public_key()).unwrap();
    assert_eq!((r.entries, r.checkpoints, r.payloads_checked), (20, 2, 1));

    // A partial export from the middle verifies on its own.
    let mut part = Vec::new();
    let opts = ExportOptions {
        from: 7,
        to: Some(12),
        no_payloads: true,
    };
    let s = export(&l, key().public_key(), &mut part, &opts, &mut |_, _| {}).unwrap();
    assert_eq!((s.from, s.to), (7, 20), "extended to the next checkpoint");
    let r = verify_bundle(&part[..], key().public_key()).unwrap();
    assert_eq!((r.entries, r.payloads_absent), (13, 1));

    // Wrong pinned key.
    let other = vigil_crypto::SigningKey::generate();
    match verify_bundle(&bundle[..], other.public_key()) {
        Err(VerifyError::Failed(f)) => assert!(f.to_string().contains("pinned key"), "{f}"),
        other => panic!("expected a failure, got {other:?}"),
    }

    // Single-entry proof.
    let proof = EntryProof::build(&l, 3).unwrap();
    let text = proof.to_text();
    let (e, cp) = EntryProof::parse(&text)
        .unwrap()
        .verify(key().public_key())
        .unwrap();
    assert_eq!((e.index, cp.size), (3, 20));
    let forged = text.replacen("index 3", "index 4", 1);
    assert!(EntryProof::parse(&forged)
        .unwrap()
        .verify(key().public_key())
        .is_err());

    // Erasure: payload gone, erasure recorded, everything still verifies.
    let idx = l
        .erase_payload(with_payload, "operator", "GDPR request 7")
        .unwrap();
    assert_eq!(idx, 20);
    assert!(l.erase_payload(with_payload, "operator", "again").is_err());
    l.checkpoint(key(), ORIGIN).unwrap();
    let r = verify_ledger(&l, key().public_key()).unwrap();
    assert_eq!(
        (r.erasures, r.payloads_checked, r.payloads_absent),
        (1, 0, 1)
    );
    let bundle = export_bundle(&l);
    verify_bundle(&bundle[..], key().public_key()).unwrap();
}

#[test]
fn second_process_open_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let _l = Ledger::open(dir.path()).unwrap();
    // sled locks the database file per process; within one process a second
    // open of the same path is also refused.
    if let Err(e) = Ledger::open(dir.path()) {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn an_indexed_kind_is_found_without_reading_the_ledger_and_stays_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let mark = |i: u64| NewEntry::new("trust.changed", "operator", format!("key:{i}"), "record");
    {
        let l = Ledger::open(dir.path()).unwrap();
        l.append_batch(vec![entry(0), mark(1), entry(2)]).unwrap();
        assert_eq!(l.indices_of_kind("trust.changed").unwrap(), None);
        // The first call indexes the entries already there.
        l.index_kind("trust.changed").unwrap();
        assert_eq!(l.indices_of_kind("trust.changed").unwrap(), Some(vec![1]));
        l.append_batch(vec![mark(3), entry(4), mark(5)]).unwrap();
        assert_eq!(
            l.indices_of_kind("trust.changed").unwrap(),
            Some(vec![1, 3, 5])
        );
        assert_eq!(l.indices_of_kind("tool.call").unwrap(), None);
    }
    // Reopened without asking: the kind is still indexed, also for appends
    // made after the reopen.
    let l = Ledger::open(dir.path()).unwrap();
    l.append(mark(6)).unwrap();
    assert_eq!(
        l.indices_of_kind("trust.changed").unwrap(),
        Some(vec![1, 3, 5, 6])
    );
    for i in [1, 3, 5, 6] {
        assert_eq!(l.entry(i).unwrap().unwrap().kind, "trust.changed");
    }
}
