//! Payload segments on a real directory: batched appends from many threads,
//! roll-over, erasure that leaves no byte of the payload or its salt on
//! disk, recovery of bytes written past the committed end, and ledgers
//! written with one file per payload.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng as _, RngCore as _};
use support::{export_bundle, key, open_sled};
use vigil_ledger::bundle::verify_bundle;
use vigil_ledger::payloads::{scan_segment, segment_name, segment_number};
use vigil_ledger::verify::verify_ledger;
use vigil_ledger::{Ledger, NewEntry};

const ORIGIN: &str = "payloads.example/ledger";

fn entry(i: u64) -> NewEntry {
    NewEntry::new("tool.call", "agent:a", format!("call:{i}"), "allow")
        .details(serde_json::json!({ "i": i }))
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

/// The segment files of a ledger directory, by number.
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join("payloads"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            segment_number(&e.file_name().to_string_lossy()).map(|n| (n, e.path()))
        })
        .collect();
    out.sort();
    out
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` (sled's included) lacks `needle`.
fn nowhere_under(dir: &Path, needle: &[u8], what: &str) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    for f in files {
        assert!(
            !contains(&std::fs::read(&f).unwrap(), needle),
            "{} still holds the {what}",
            f.display()
        );
    }
}

/// The payload of entry `i` as stored, checked against its commitment.
fn stored(l: &Ledger, i: u64) -> Option<Vec<u8>> {
    let e = l.entry(i).unwrap().unwrap();
    let p = l.payload_of(&e).unwrap()?;
    assert!(
        e.payload.unwrap().opens(&p.salt, &p.data),
        "payload of entry {i} does not open its commitment"
    );
    Some(p.data)
}

#[test]
fn concurrent_payloads_read_back_after_reopen_from_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let written: HashMap<u64, Vec<u8>> = {
        let l = Arc::new(Ledger::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..16u64)
            .map(|t| {
                let l = l.clone();
                std::thread::spawn(move || {
                    (0..50u64)
                        .map(|i| {
                            let len = rand::thread_rng().gen_range(0..3000);
                            let p = random_bytes(len);
                            let idx = l.append(entry(t * 100 + i).payload(p.clone())).unwrap();
                            (idx, p)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    };
    assert_eq!(written.len(), 800);
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.size(), 800);
    for (idx, p) in &written {
        assert_eq!(stored(&l, *idx).as_ref(), Some(p), "entry {idx}");
    }
    // Every payload went into one segment file; beside it only the entry
    // file and the commit journal.
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(
        file_names(&dir.path().join("payloads")),
        vec![
            "entries".to_string(),
            "journal".to_string(),
            segment_name(0)
        ]
    );
    let records = scan_segment(&std::fs::read(&segs[0].1).unwrap());
    assert_eq!(records.len(), 800);
    l.checkpoint(key(), ORIGIN).unwrap();
    let r = verify_ledger(&l, key().public_key()).unwrap();
    assert_eq!(r.payloads_checked, 800);
}

#[test]
fn a_batch_that_would_pass_64_mib_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(24 << 20)).collect();
    {
        let l = Ledger::open(dir.path()).unwrap();
        for (i, p) in big.iter().enumerate() {
            l.append(entry(i as u64).payload(p.clone())).unwrap();
        }
    }
    // 24 + 24 MiB in the first; the third would pass 64 MiB.
    let segs = segments(dir.path());
    assert_eq!(
        segs.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![0, 1],
        "{segs:?}"
    );
    let l = Ledger::open(dir.path()).unwrap();
    for (i, p) in big.iter().enumerate() {
        assert!(stored(&l, i as u64).as_ref() == Some(p), "entry {i}");
    }
    l.append(entry(4).payload(b"small".to_vec())).unwrap();
    assert_eq!(stored(&l, 4).unwrap(), b"small");
    assert_eq!(segments(dir.path()).len(), 2);
}

#[test]
fn erase_overwrites_payload_and_salt_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let secret = random_bytes(4096);
    let l = Ledger::open(dir.path()).unwrap();
    // Neighbours in the same batch and segment must survive the erase.
    let r = l
        .append_batch(vec![
            entry(0).payload(b"before".to_vec()),
            entry(1).payload(secret.clone()),
            entry(2).payload(b"after".to_vec()),
        ])
        .unwrap();
    assert_eq!(r, 0..3);
    l.append(entry(3).payload(b"next batch".to_vec())).unwrap();
    l.checkpoint(key(), ORIGIN).unwrap();
    let e1 = l.entry(1).unwrap().unwrap();
    let salt = l.payload_of(&e1).unwrap().unwrap().salt;
    let seg = segments(dir.path())[0].1.clone();
    let before = std::fs::read(&seg).unwrap();
    assert!(contains(&before, &secret) && contains(&before, &salt));
    let records = scan_segment(&before);
    assert_eq!(records.len(), 4);
    let erased = records
        .iter()
        .find(|r| Some(r.commitment) == e1.payload)
        .unwrap()
        .offset as usize;

    assert_eq!(l.erase_payload(1, "operator", "GDPR request 9").unwrap(), 4);
    assert!(l.payload_of(&e1).unwrap().is_none());
    assert!(l.erase_payload(1, "operator", "again").is_err());

    let after = std::fs::read(&seg).unwrap();
    assert_eq!(after.len(), before.len(), "erased in place");
    let record_len = 44 + 32 + secret.len();
    assert!(after[erased..erased + record_len].iter().all(|&b| b == 0));
    assert_eq!(after[..erased], before[..erased]);
    assert_eq!(after[erased + record_len..], before[erased + record_len..]);
    assert_eq!(scan_segment(&after).len(), 3);
    drop(l);
    nowhere_under(dir.path(), &secret, "payload");
    nowhere_under(dir.path(), &salt, "salt");

    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.payload_of(&e1).unwrap().is_none());
    assert_eq!(stored(&l, 0).unwrap(), b"before");
    assert_eq!(stored(&l, 2).unwrap(), b"after");
    assert_eq!(stored(&l, 3).unwrap(), b"next batch");
    l.checkpoint(key(), ORIGIN).unwrap();
    let r = verify_ledger(&l, key().public_key()).unwrap();
    assert_eq!(
        (r.erasures, r.payloads_checked, r.payloads_absent),
        (1, 3, 1)
    );
    let bundle = export_bundle(&l);
    assert!(!contains(&bundle, &secret) && !contains(&bundle, &salt));
    let r = verify_bundle(&bundle[..], key().public_key()).unwrap();
    assert_eq!((r.erasures, r.payloads_checked), (1, 3));
}

#[test]
fn bytes_past_the_committed_end_are_destroyed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let l = Ledger::open(dir.path()).unwrap();
        for i in 0..5 {
            l.append(entry(i).payload(format!("payload {i}").into_bytes()))
                .unwrap();
        }
    }
    let seg = segments(dir.path())[0].1.clone();
    let committed = std::fs::metadata(&seg).unwrap().len();
    // What a crash after the payload write but before the sled batch
    // leaves: bytes past the committed end, and a segment the batch began.
    let lost = random_bytes(5000);
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&lost).unwrap();
    }
    let next_seg = dir.path().join("payloads").join(segment_name(1));
    std::fs::write(&next_seg, &lost).unwrap();
    let tmp = dir
        .path()
        .join("payloads")
        .join(format!("{}.tmp", "ab".repeat(32)));
    std::fs::write(&tmp, &lost).unwrap();

    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), committed);
    assert!(!next_seg.exists() && !tmp.exists());
    nowhere_under(dir.path(), &lost[..64], "lost bytes");
    for i in 0..5 {
        assert_eq!(stored(&l, i).unwrap(), format!("payload {i}").into_bytes());
    }
    let more = random_bytes(700);
    let idx = l.append(entry(5).payload(more.clone())).unwrap();
    assert_eq!(stored(&l, idx).unwrap(), more);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        committed + 44 + 32 + 700
    );
    drop(l);
    let l = Ledger::open(dir.path()).unwrap();
    for i in 0..5 {
        assert_eq!(stored(&l, i).unwrap(), format!("payload {i}").into_bytes());
    }
    assert_eq!(stored(&l, 5).unwrap(), more);
    l.checkpoint(key(), ORIGIN).unwrap();
    assert_eq!(
        verify_ledger(&l, key().public_key())
            .unwrap()
            .payloads_checked,
        6
    );
}

#[test]
fn segments_written_before_any_committed_batch_are_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path()).unwrap());
    let first = dir.path().join("payloads").join(segment_name(0));
    std::fs::write(&first, random_bytes(300)).unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    assert!(!first.exists());
    l.append(entry(0).payload(b"p".to_vec())).unwrap();
    assert_eq!(stored(&l, 0).unwrap(), b"p");
    assert_eq!(std::fs::metadata(&first).unwrap().len(), 44 + 32 + 1);
}

/// Ledgers written before segments kept `payloads/<hex of commitment>`
/// holding `salt || payload`, and no payload index. Turn a fresh ledger
/// into that layout by hand, then read, append and erase through it.
#[test]
fn payload_files_of_the_earlier_layout_are_read_and_erased() {
    let dir = tempfile::tempdir().unwrap();
    let secret = random_bytes(2000);
    let (legacy_files, salt) = {
        let l = Ledger::open(dir.path()).unwrap();
        l.append(entry(0).payload(secret.clone())).unwrap();
        l.append(entry(1)).unwrap();
        l.append(entry(2).payload(b"kept".to_vec())).unwrap();
        let mut files = Vec::new();
        for i in [0, 2] {
            let e = l.entry(i).unwrap().unwrap();
            let p = l.payload_of(&e).unwrap().unwrap();
            let name = hex::encode(e.payload.unwrap().digest);
            files.push((name, [&p.salt[..], &p.data].concat()));
        }
        let salt = files[0].1[..32].to_vec();
        (files, salt)
    };
    {
        let db = open_sled(&dir.path().join("sled"));
        let index: Vec<_> = db.scan_prefix(b"p/").map(|kv| kv.unwrap().0).collect();
        assert_eq!(index.len(), 2);
        for k in index {
            db.remove(k).unwrap();
        }
        db.remove(b"m/payload-end").unwrap();
        db.flush().unwrap();
    }
    for (_, path) in segments(dir.path()) {
        std::fs::remove_file(path).unwrap();
    }
    let payloads = dir.path().join("payloads");
    for (name, bytes) in &legacy_files {
        std::fs::write(payloads.join(name), bytes).unwrap();
    }

    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(stored(&l, 0).unwrap(), secret);
    assert_eq!(stored(&l, 2).unwrap(), b"kept");
    // New payloads go to segments beside the old files.
    l.append(entry(3).payload(b"new".to_vec())).unwrap();
    assert_eq!(stored(&l, 3).unwrap(), b"new");
    assert_eq!(segments(dir.path()).len(), 1);

    assert_eq!(l.erase_payload(0, "operator", "GDPR").unwrap(), 4);
    assert!(!payloads.join(&legacy_files[0].0).exists());
    assert!(l.erase_payload(0, "operator", "again").is_err());
    drop(l);
    nowhere_under(dir.path(), &secret, "payload");
    nowhere_under(dir.path(), &salt, "salt");

    let l = Ledger::open(dir.path()).unwrap();
    assert!(stored(&l, 0).is_none());
    assert_eq!(stored(&l, 2).unwrap(), b"kept");
    assert_eq!(stored(&l, 3).unwrap(), b"new");
    l.checkpoint(key(), ORIGIN).unwrap();
    let r = verify_ledger(&l, key().public_key()).unwrap();
    assert_eq!(
        (r.erasures, r.payloads_checked, r.payloads_absent),
        (1, 2, 1)
    );
}
