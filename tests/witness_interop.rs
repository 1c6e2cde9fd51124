//! The vigil witness against implementations not written in this project
//! (issue 19 item 2): a log built with `tlog_tiles` (a Rust port of Go's
//! `golang.org/x/mod/sumdb/tlog`: record hashes, tree hashes, consistency
//! proofs, the C2SP checkpoint text) and signed with `signed_note` (a port
//! of Go's `note` package: Ed25519 note keys, vkeys, signature lines)
//! submits its checkpoints to a real `vigil serve` over HTTP, C2SP
//! tlog-witness `add-checkpoint`. The witness checks the outside signature
//! and proofs; its cosignatures parse as `signed_note` signature lines with
//! the key IDs `signed_note` computes, and `signed_note` verifies the note
//! carrying them. A fork's proof, made by `tlog_tiles`, is refused (422).

use std::io::{BufReader, Write as _};
use std::net::TcpStream;
use std::process::Command;

use base64::Engine as _;
use ed25519_dalek::Verifier as _;
use signed_note::{Note, Signature, StandardSigner, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::tlog::{self, Hash, HashReader};

#[path = "mcp_support/raw.rs"]
mod raw;
mod verify_support;
use verify_support::vigil;

fn ok(cmd: &mut Command) -> String {
    verify_support::ok(cmd.output().expect("run vigil"))
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const ORIGIN: &str = "outside.example/log";

/// A tlog_tiles tree: the stored hashes of `n` records.
#[derive(Default)]
struct Tree {
    stored: Vec<Hash>,
    n: u64,
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        Ok(indexes.iter().map(|&i| self.stored[i as usize]).collect())
    }
}

impl Tree {
    fn push(&mut self, record: &[u8]) {
        let hashes = tlog::stored_hashes(self.n, record, self).expect("stored hashes");
        self.stored.extend(hashes);
        self.n += 1;
    }
    fn root(&self) -> Hash {
        tlog::tree_hash(self.n, self).expect("tree hash")
    }
}

/// The outside log's signed checkpoint note of `tree`.
fn signed_checkpoint(tree: &Tree, signer: &StandardSigner) -> Vec<u8> {
    let text = tlog_tiles::Checkpoint::new(ORIGIN, tree.n, tree.root(), "")
        .expect("checkpoint")
        .to_bytes();
    let mut note = Note::new(&text, &[]).expect("note");
    note.add_sigs(&[signer]).expect("sign");
    note.to_bytes()
}

/// POSTs an add-checkpoint body; returns status and body.
fn add_checkpoint(url: &str, old: u64, proof: &[Hash], note: &[u8]) -> (u16, String) {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&B64.encode(h.0));
        body.push('\n');
    }
    body.push('\n');
    let mut body = body.into_bytes();
    body.extend(note);
    let addr = raw::addr(url);
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST /witness/add-checkpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(&body).expect("write body");
    let reply = raw::read_reply(&mut BufReader::new(stream)).expect("reply");
    (reply.status, reply.text())
}

/// A signed_note verifier for Ed25519 `cosignature/v1` lines (type 0x04).
struct CosignatureV1 {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl Verifier for CosignatureV1 {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, sig)) = sig.split_first_chunk::<8>() else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        let mut m = format!("cosignature/v1\ntime {}\n", u64::from_be_bytes(*time)).into_bytes();
        m.extend(msg);
        self.key.verify(&m, &sig).is_ok()
    }
}

#[test]
fn an_outside_log_is_witnessed_over_http_and_its_fork_refused() {
    let (skey, vkey) = signed_note::generate_key(&mut rand::rngs::OsRng, ORIGIN);
    let signer = StandardSigner::new(&skey).expect("signer");

    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("witness");
    ok(vigil(&home).arg("init"));
    let vkeys: Vec<String> =
        ok(vigil(&home).args(["witness", "init", "--name", "witness.example/w"]))
            .lines()
            .map(String::from)
            .collect();
    let config = home.join("vigil.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[[witness.logs]]\norigin = \"{ORIGIN}\"\nkeys = [\"{vkey}\"]\n"
    ));
    std::fs::write(&config, text).expect("config");
    let served = verify_support::Served::start(&home);
    let url = format!("{}/mcp", served.url);

    // The witness's cosigner keys, read as signed_note reads verifier keys.
    let (name, id_hex, material) = {
        let mut parts = vkeys[0].splitn(3, '+');
        (
            parts.next().expect("name").to_string(),
            parts.next().expect("id").to_string(),
            B64.decode(parts.next().expect("key")).expect("base64"),
        )
    };
    assert_eq!(
        material[0], 0x04,
        "the first vkey is the cosignature/v1 key"
    );
    let id = signed_note::key_id(&name, &material);
    assert_eq!(
        format!("{id:08x}"),
        id_hex,
        "signed_note computes the same key ID"
    );
    let cosigner = CosignatureV1 {
        name: name.clone(),
        id,
        key: ed25519_dalek::VerifyingKey::from_bytes(&material[1..].try_into().expect("32 bytes"))
            .expect("key"),
    };
    let mldsa = B64
        .decode(vkeys[1].splitn(3, '+').nth(2).expect("key"))
        .expect("base64");
    assert_eq!(
        mldsa[0], 0x06,
        "the second vkey is the ML-DSA-44 subtree key"
    );
    let mldsa_id = signed_note::key_id(&name, &mldsa);

    let mut tree = Tree::default();
    for i in 0..4u8 {
        tree.push(&[i]);
    }
    let first = signed_checkpoint(&tree, &signer);
    let (status, body) = add_checkpoint(&url, 0, &[], &first);
    assert_eq!(status, 200, "{body}");
    let sigs: Vec<Signature> = body
        .lines()
        .map(|l| Signature::from_bytes(l.as_bytes()).expect("a signature line"))
        .collect();
    assert_eq!(sigs.len(), 2);
    assert!(sigs.iter().all(|s| s.name() == name));
    assert_eq!(sigs[0].id(), id);
    assert_eq!(sigs[1].id(), mldsa_id);
    // signed_note verifies the note with the log's and the witness's lines.
    let mut cosigned = first.clone();
    cosigned.extend(body.as_bytes());
    let note = Note::from_bytes(&cosigned).expect("note");
    let known = VerifierList::new(vec![
        Box::new(StandardVerifier::new(&vkey).expect("log verifier")),
        Box::new(cosigner),
    ]);
    let (verified, _unverified) = note.verify(&known).expect("the cosigned note verifies");
    assert_eq!(verified.len(), 2, "the log's signature and the cosignature");

    // The log grows; tlog_tiles proves 4 -> 10.
    for i in 4..10u8 {
        tree.push(&[i]);
    }
    let proof = tlog::prove_tree(10, 4, &tree).expect("proof");
    let (status, body) = add_checkpoint(&url, 4, &proof, &signed_checkpoint(&tree, &signer));
    assert_eq!(status, 200, "{body}");
    // A stale old size names the witness's latest in text/x.tlog.size.
    let (status, body) = add_checkpoint(&url, 4, &proof, &signed_checkpoint(&tree, &signer));
    assert_eq!((status, body.as_str()), (409, "10\n"));

    // A fork: the same first 9 records, another tenth, an eleventh.
    let mut fork = Tree::default();
    for i in 0..9u8 {
        fork.push(&[i]);
    }
    fork.push(b"rewritten");
    fork.push(b"more");
    let proof = tlog::prove_tree(11, 10, &fork).expect("fork proof");
    let (status, body) = add_checkpoint(&url, 10, &proof, &signed_checkpoint(&fork, &signer));
    assert_eq!(status, 422, "{body}");
    // An unknown key's checkpoint.
    let (other, _) = signed_note::generate_key(&mut rand::rngs::OsRng, ORIGIN);
    let stranger = StandardSigner::new(&other).expect("signer");
    let (status, _) = add_checkpoint(&url, 10, &[], &signed_checkpoint(&tree, &stranger));
    assert_eq!(status, 403);
}
