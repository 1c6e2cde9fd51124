//! The witness side of C2SP tlog-witness (`add-checkpoint`), without I/O:
//! parse a request body, check it against the logs the witness trusts and
//! the latest checkpoint it cosigned for the origin, and either cosign
//! ([`crate::cosignature::Cosigner`]) or refuse with the status code the
//! spec names. The caller persists [`Outcome::Cosigned::latest`] before
//! answering, atomically with the check (one request at a time per
//! witness), and records each decision.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use vigil_crypto::CompositePublicKey;

use crate::checkpoint::{Checkpoint, SignedCheckpoint, MAX_NOTE_LEN};
use crate::cosignature::{split_note, verified_signers, Cosigner, VerifierKey};
use crate::hash::Hash;
use crate::merkle::verify_consistency;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Most consistency proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = MAX_NOTE_LEN + 64 * (MAX_PROOF_LINES + 1);
/// The `Content-Type` of a 409 answer naming the latest cosigned size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A key a witnessed log signs its checkpoints with.
#[derive(Clone)]
pub enum LogKey {
    /// A vigil node's composite key (its note key name is the origin).
    Composite(Box<CompositePublicKey>),
    /// A plain Ed25519 signed-note key (type 0x01), as other logs use.
    Note(Box<VerifierKey>),
}

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Composite(k) => write!(f, "Composite({})", k.fingerprint()),
            Self::Note(k) => write!(f, "Note({})", k.to_vkey()),
        }
    }
}

/// A log this witness cosigns for.
#[derive(Debug, Clone)]
pub struct TrustedLog {
    /// Its origin.
    pub origin: String,
    /// The keys it may sign with (any one valid signature suffices).
    pub keys: Vec<LogKey>,
}

/// The latest checkpoint cosigned for one origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// Its tree size.
    pub size: u64,
    /// Its root, base64.
    pub root: String,
}

/// What the witness remembers: the latest cosigned checkpoint per origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessState {
    /// Format version (1).
    pub version: u32,
    /// By origin.
    pub logs: BTreeMap<String, Latest>,
}

/// A request the witness refuses: the HTTP answer and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The answer's content type.
    pub content_type: &'static str,
    /// The answer's body.
    pub body: String,
    /// Why, for the ledger and the log.
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    let reason = reason.into();
    Refusal {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{reason}\n"),
        reason,
    }
}

/// A parsed `add-checkpoint` request.
#[derive(Debug, Clone)]
pub struct AddCheckpoint {
    /// The size of the previous checkpoint the client believes cosigned.
    pub old: u64,
    /// Consistency proof from `old` to the checkpoint.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

/// Parses a request body (`old N`, proof lines, an empty line, the note).
pub fn parse_request(body: &[u8]) -> Result<AddCheckpoint, Refusal> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(refuse(
            413,
            format!("the request is larger than {MAX_REQUEST_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| refuse(400, "the request is not UTF-8"))?;
    let (head, note) = text
        .split_once("\n\n")
        .ok_or_else(|| refuse(400, "the request has no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    let old = lines
        .next()
        .and_then(|l| l.strip_prefix("old "))
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && (*n == "0" || !n.starts_with('0')))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| refuse(400, "the first line must be `old <size>` in decimal"))?;
    let mut proof = Vec::new();
    for line in lines {
        if proof.len() == MAX_PROOF_LINES {
            return Err(refuse(
                400,
                format!("more than {MAX_PROOF_LINES} consistency proof lines"),
            ));
        }
        let hash: Hash = B64
            .decode(line)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| refuse(400, "a consistency proof line is not a base64 hash"))?;
        proof.push(hash);
    }
    Ok(AddCheckpoint {
        old,
        proof,
        note: note.to_string(),
    })
}

/// The witness's decision on one request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Cosigned: persist `latest` for the origin, then answer 200 with
    /// `lines` (each a signature line ending in a newline).
    Cosigned {
        /// The cosigned checkpoint.
        checkpoint: Checkpoint,
        /// The request's old size.
        old: u64,
        /// The new latest checkpoint of the origin.
        latest: Latest,
        /// The cosignature lines.
        lines: Vec<String>,
    },
    /// Refused, with nothing changed.
    Refused {
        /// The checkpoint, when it could be parsed.
        checkpoint: Option<Checkpoint>,
        /// The request's old size, when it could be parsed.
        old: Option<u64>,
        /// The answer.
        refusal: Refusal,
    },
}

/// Decides an `add-checkpoint` request `body` at POSIX time `now`, given
/// the trusted `logs` and the current `state`. Changes nothing itself.
pub fn add_checkpoint(
    state: &WitnessState,
    logs: &[TrustedLog],
    cosigner: &Cosigner,
    body: &[u8],
    now: u64,
) -> Outcome {
    let req = match parse_request(body) {
        Ok(r) => r,
        Err(refusal) => {
            return Outcome::Refused {
                checkpoint: None,
                old: None,
                refusal,
            }
        }
    };
    let (text, cp) = match split_note(&req.note) {
        Ok((text, cp, _)) => (text.to_string(), cp),
        Err(e) => {
            return Outcome::Refused {
                checkpoint: None,
                old: Some(req.old),
                refusal: refuse(400, format!("the checkpoint is malformed: {e}")),
            }
        }
    };
    let refused = |refusal: Refusal| Outcome::Refused {
        checkpoint: Some(cp.clone()),
        old: Some(req.old),
        refusal,
    };
    match decide(state, logs, &req, &cp) {
        Ok(()) => Outcome::Cosigned {
            lines: cosigner.cosign(&text, &cp, now),
            latest: Latest {
                size: cp.size,
                root: B64.encode(cp.root),
            },
            old: req.old,
            checkpoint: cp,
        },
        Err(refusal) => refused(refusal),
    }
}

fn decide(
    state: &WitnessState,
    logs: &[TrustedLog],
    req: &AddCheckpoint,
    cp: &Checkpoint,
) -> Result<(), Refusal> {
    let log = logs.iter().find(|l| l.origin == cp.origin).ok_or_else(|| {
        refuse(
            404,
            format!("this witness does not witness the log `{}`", cp.origin),
        )
    })?;
    let signed = log.keys.iter().any(|k| match k {
        LogKey::Composite(key) => SignedCheckpoint::open(&req.note, key).is_ok(),
        LogKey::Note(key) => verified_signers(&req.note, std::slice::from_ref(key.as_ref()))
            .is_ok_and(|found| !found.is_empty()),
    });
    if !signed {
        return Err(refuse(
            403,
            format!(
                "the checkpoint carries no valid signature by a key of the log `{}`",
                cp.origin
            ),
        ));
    }
    if req.old > cp.size {
        return Err(refuse(
            400,
            format!(
                "old size {} is larger than the checkpoint's size {}",
                req.old, cp.size
            ),
        ));
    }
    let latest = state.logs.get(&cp.origin);
    let latest_size = latest.map_or(0, |l| l.size);
    if req.old != latest_size {
        return Err(Refusal {
            status: 409,
            content_type: SIZE_CONTENT_TYPE,
            body: format!("{latest_size}\n"),
            reason: format!(
                "old size {} is not the size of the latest checkpoint cosigned for `{}`, {latest_size}",
                req.old, cp.origin
            ),
        });
    }
    let latest_root: Option<Hash> = latest.and_then(|l| B64.decode(&l.root).ok()?.try_into().ok());
    if req.old == 0 {
        if !req.proof.is_empty() {
            return Err(refuse(
                400,
                "the consistency proof must be empty when the old size is 0",
            ));
        }
        return Ok(());
    }
    let Some(latest_root) = latest_root else {
        return Err(refuse(500, "the witness state holds a malformed root"));
    };
    if req.old == cp.size {
        if latest_root != cp.root {
            return Err(refuse(
                409,
                format!(
                    "the checkpoint of size {} has another root than the one cosigned at that size: the log forked",
                    cp.size
                ),
            ));
        }
        return Ok(());
    }
    if !verify_consistency(req.old, &latest_root, cp.size, &cp.root, &req.proof) {
        return Err(refuse(
            422,
            format!(
                "the consistency proof from the cosigned checkpoint of size {} to size {} does not verify: the log forked or the proof is wrong",
                req.old, cp.size
            ),
        ));
    }
    Ok(())
}

/// The request body for `note` from `old` with `proof` (log side).
pub fn request_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&B64.encode(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, Hash};
    use crate::merkle::{consistency_proof, MemoryTree};
    use vigil_crypto::SigningKey;

    fn tree(leaves: &[&[u8]]) -> MemoryTree {
        let mut t = MemoryTree::new();
        for l in leaves {
            t.push(leaf_hash(l));
        }
        t
    }

    fn root(leaves: &[&[u8]]) -> Hash {
        tree(leaves).root()
    }

    fn note(key: &SigningKey, size: u64, root: Hash) -> String {
        Checkpoint {
            origin: "log.example/a".into(),
            size,
            root,
            previous: None,
        }
        .sign(key)
        .unwrap()
        .note
    }

    fn status(o: &Outcome) -> u16 {
        match o {
            Outcome::Cosigned { .. } => 200,
            Outcome::Refused { refusal, .. } => refusal.status,
        }
    }

    fn apply(state: &mut WitnessState, o: &Outcome) {
        if let Outcome::Cosigned {
            checkpoint, latest, ..
        } = o
        {
            state.logs.insert(checkpoint.origin.clone(), latest.clone());
        }
    }

    #[test]
    fn cosigns_consistent_checkpoints_and_refuses_forks() {
        let log = SigningKey::generate();
        let w = Cosigner::generate("witness.example/w").unwrap();
        let logs = vec![TrustedLog {
            origin: "log.example/a".into(),
            keys: vec![LogKey::Composite(Box::new(log.public_key().clone()))],
        }];
        let mut state = WitnessState::default();
        let leaves: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"e"];
        let honest = tree(&leaves);
        let n3 = note(&log, 3, root(&leaves[..3]));
        let o = add_checkpoint(&state, &logs, &w, request_body(0, &[], &n3).as_bytes(), 1);
        assert_eq!(status(&o), 200);
        apply(&mut state, &o);
        // The same request again: the old size is now stale.
        let o = add_checkpoint(&state, &logs, &w, request_body(0, &[], &n3).as_bytes(), 2);
        assert_eq!(status(&o), 409);
        let n5 = note(&log, 5, honest.root());
        let proof = consistency_proof(&honest, 3, 5).unwrap();
        let o = add_checkpoint(
            &state,
            &logs,
            &w,
            request_body(3, &proof, &n5).as_bytes(),
            3,
        );
        assert_eq!(status(&o), 200);
        apply(&mut state, &o);
        // A fork: another history of 6 entries, signed by the same key.
        let forked: [&[u8]; 6] = [b"a", b"b", b"c", b"x", b"y", b"z"];
        let fork = tree(&forked);
        let n6 = note(&log, 6, fork.root());
        let proof = consistency_proof(&fork, 5, 6).unwrap();
        let o = add_checkpoint(
            &state,
            &logs,
            &w,
            request_body(5, &proof, &n6).as_bytes(),
            4,
        );
        assert_eq!(status(&o), 422);
        // Same size, other root.
        let n5f = note(&log, 5, root(&forked[..5]));
        let o = add_checkpoint(&state, &logs, &w, request_body(5, &[], &n5f).as_bytes(), 5);
        assert_eq!(status(&o), 409);
        // Unknown origin, unknown key, bad old size, malformed.
        let stranger = SigningKey::generate();
        let o = add_checkpoint(
            &state,
            &logs,
            &w,
            request_body(5, &[], &note(&stranger, 5, honest.root())).as_bytes(),
            6,
        );
        assert_eq!(status(&o), 403);
        let other = Checkpoint {
            origin: "log.example/b".into(),
            size: 1,
            root: [0; 32],
            previous: None,
        }
        .sign(&log)
        .unwrap()
        .note;
        assert_eq!(
            status(&add_checkpoint(
                &state,
                &logs,
                &w,
                request_body(0, &[], &other).as_bytes(),
                7
            )),
            404
        );
        assert_eq!(
            status(&add_checkpoint(
                &state,
                &logs,
                &w,
                request_body(9, &[], &n5).as_bytes(),
                8
            )),
            400
        );
        assert_eq!(
            status(&add_checkpoint(&state, &logs, &w, b"old 01\n\nx", 9)),
            400
        );
        assert_eq!(state.logs["log.example/a"].size, 5);
    }
}
