//! Checkpoints: the C2SP `tlog-checkpoint` body (origin, tree size, root hash)
//! inside a C2SP signed note, signed with the node's composite key.
//!
//! Signed-note rules applied here (c2sp.org/signed-note): the note text ends
//! in a newline and is followed by a blank line and signature lines
//! `— <key name> base64(key ID[4] || signature)`. The key name is the
//! checkpoint origin. The composite scheme has no signature type byte assigned
//! by the spec, so it uses the reserved `0xff` followed by the identifier
//! string `id-MLDSA65-Ed25519-SHA512`:
//! `key ID = SHA-256(name || 0x0A || 0xff || "id-MLDSA65-Ed25519-SHA512" || composite public key)[:4]`.
//! The signature is the 3373-byte composite signature over the note text with
//! the application context `vigil/checkpoint/v1`.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use vigil_crypto::{context, CompositePublicKey, SigningKey};

use crate::hash::Hash;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The signature type identifier: `0xff` then the scheme name.
pub const SIGNATURE_TYPE: &[u8] = b"\xffid-MLDSA65-Ed25519-SHA512";
/// Largest signed note accepted, in bytes.
pub const MAX_NOTE_LEN: usize = 64 * 1024;
/// Most signature lines accepted in one note.
pub const MAX_SIGNATURES: usize = 16;
const SIG_PREFIX: &str = "\u{2014} ";
/// The extension line naming the previous checkpoint the node signed.
pub const PREVIOUS_LINE: &str = "vigil-previous ";

/// A checkpoint body: the tree of `size` entries of the log `origin` has
/// root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (also the signing key's name in the note).
    pub origin: String,
    /// Number of entries covered.
    pub size: u64,
    /// RFC 6962 tree head over entries `0..size`.
    pub root: Hash,
    /// The checkpoint the node signed just before this one, as `(size,
    /// root)` (`(0, MTH({}))` for its first), carried in the extension line
    /// `vigil-previous <size> <base64 root>`. `None` for notes signed before
    /// nodes wrote that line.
    pub previous: Option<(u64, Hash)>,
}

/// A checkpoint and the signed note that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed body.
    pub checkpoint: Checkpoint,
    /// The whole signed note, as stored and exported.
    pub note: String,
}

/// Why a checkpoint or its note is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);

fn err(msg: impl Into<String>) -> CheckpointError {
    CheckpointError(msg.into())
}

/// Checks an origin: non-empty, at most 255 bytes, printable ASCII without
/// spaces or `+` (it is also the signed-note key name).
pub fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    let ok = !origin.is_empty()
        && origin.len() <= 255
        && origin.bytes().all(|b| b.is_ascii_graphic() && b != b'+');
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "origin `{origin}` is not allowed: use 1 to 255 printable ASCII characters without spaces or `+`"
        )))
    }
}

/// A tree size: decimal digits, no leading zeros.
fn parse_size(text: &str) -> Result<u64, CheckpointError> {
    text.parse()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .filter(|_| text == "0" || !text.starts_with('0'))
        .ok_or_else(|| {
            err(format!(
                "checkpoint tree size `{text}` is not a decimal number"
            ))
        })
}

/// A root hash: 32 bytes of base64.
fn parse_root(text: &str) -> Result<Hash, CheckpointError> {
    B64.decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| err("checkpoint root hash is not 32 bytes of base64"))
}

/// The signed-note key ID of `key` under the key name `name`.
pub fn key_id(name: &str, key: &CompositePublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a]);
    h.update(SIGNATURE_TYPE);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`, then the
    /// `vigil-previous` extension line when there is one.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        if let Some((size, root)) = &self.previous {
            body.push_str(&format!("{PREVIOUS_LINE}{size} {}\n", B64.encode(root)));
        }
        body
    }

    /// Parses a note text. Extension lines after the root are accepted and
    /// ignored, as tlog-checkpoint says.
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| err("checkpoint body does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        check_origin(origin)?;
        let size = parse_size(
            lines
                .next()
                .ok_or_else(|| err("checkpoint has no tree size line"))?,
        )?;
        let root = parse_root(
            lines
                .next()
                .ok_or_else(|| err("checkpoint has no root hash line"))?,
        )?;
        let mut previous = None;
        for line in lines {
            if line.is_empty() {
                return Err(err("checkpoint has an empty extension line"));
            }
            let Some(rest) = line.strip_prefix(PREVIOUS_LINE) else {
                continue;
            };
            let (s, r) = rest
                .split_once(' ')
                .ok_or_else(|| err("malformed `vigil-previous` line"))?;
            let (s, r) = (parse_size(s)?, parse_root(r)?);
            if previous.replace((s, r)).is_some() {
                return Err(err("checkpoint has two `vigil-previous` lines"));
            }
            if s >= size {
                return Err(err(format!(
                    "checkpoint of size {size} names a previous checkpoint of size {s}, not smaller"
                )));
            }
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
            previous,
        })
    }

    /// Signs this checkpoint with the node's composite key.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedCheckpoint, CheckpointError> {
        self.sign_all(&[key])
    }

    /// Signs this checkpoint with each of `keys` (one signature line each,
    /// in order): the checkpoint covering a key handover carries both the
    /// old and the new node key's signatures.
    pub fn sign_all(&self, keys: &[&SigningKey]) -> Result<SignedCheckpoint, CheckpointError> {
        check_origin(&self.origin)?;
        if keys.is_empty() || keys.len() > MAX_SIGNATURES {
            return Err(err(format!(
                "a checkpoint is signed by 1 to {MAX_SIGNATURES} keys, not {}",
                keys.len()
            )));
        }
        let body = self.body();
        let mut note = format!("{body}\n");
        for key in keys {
            let sig = key
                .sign(body.as_bytes(), context::CHECKPOINT)
                .map_err(|e| err(format!("signing the checkpoint failed: {e}")))?;
            let mut blob = key_id(&self.origin, key.public_key()).to_vec();
            blob.extend_from_slice(sig.as_bytes());
            note.push_str(&format!(
                "{SIG_PREFIX}{} {}\n",
                self.origin,
                B64.encode(blob)
            ));
        }
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            note,
        })
    }
}

impl SignedCheckpoint {
    /// Parses `note` and verifies it against the pinned `key`: the signature
    /// line whose key name is the origin and whose key ID matches `key` must
    /// be present and verify; lines of unknown keys are ignored.
    pub fn open(note: &str, key: &CompositePublicKey) -> Result<Self, CheckpointError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(err(format!(
                "signed note is longer than {MAX_NOTE_LEN} bytes"
            )));
        }
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(err("signed note contains control characters"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| err("signed note has no blank line before its signatures"))?;
        let text = &note[..split + 1];
        let sigs = &note[split + 2..];
        let checkpoint = Checkpoint::parse_body(text)?;
        let sigs = sigs
            .strip_suffix('\n')
            .ok_or_else(|| err("signed note does not end in a newline"))?;
        let want_id = key_id(&checkpoint.origin, key);
        let mut verified = false;
        let mut count = 0usize;
        for line in sigs.split('\n') {
            count += 1;
            if count > MAX_SIGNATURES {
                return Err(err(format!(
                    "signed note has more than {MAX_SIGNATURES} signatures"
                )));
            }
            let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
                err("malformed signature line (it must start with an em dash and a space)")
            })?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| err("malformed signature line (no space after the key name)"))?;
            let blob = B64
                .decode(b64)
                .map_err(|_| err("signature line is not valid base64"))?;
            if blob.len() < 5 {
                return Err(err("signature line is too short"));
            }
            if name != checkpoint.origin || blob[..4] != want_id {
                continue;
            }
            if verified {
                return Err(err(format!(
                    "signed note has two signature lines from the same key (key name `{name}`, key ID {})",
                    hex::encode(want_id)
                )));
            }
            key.verify_bytes(text.as_bytes(), context::CHECKPOINT, &blob[4..])
                .map_err(|e| {
                    err(format!(
                        "checkpoint signature does not verify against the pinned key: {e}"
                    ))
                })?;
            verified = true;
        }
        if !verified {
            return Err(err(format!(
                "checkpoint carries no signature by the pinned key (key name `{}`, key ID {})",
                checkpoint.origin,
                hex::encode(want_id)
            )));
        }
        Ok(Self {
            checkpoint,
            note: note.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate()
    }

    #[test]
    fn sign_open_roundtrip_and_tamper() {
        let k = key();
        let cp = Checkpoint {
            origin: "example.org/log".into(),
            size: 42,
            root: [7u8; 32],
            previous: Some((40, [6u8; 32])),
        };
        let s = cp.sign(&k).unwrap();
        assert!(s.note.starts_with("example.org/log\n42\n"));
        assert_eq!(
            SignedCheckpoint::open(&s.note, k.public_key())
                .unwrap()
                .checkpoint,
            cp
        );
        // Another key: no signature by the pinned key.
        let other = key();
        assert!(SignedCheckpoint::open(&s.note, other.public_key()).is_err());
        // Changed size.
        let forged = s.note.replacen("\n42\n", "\n43\n", 1);
        assert!(SignedCheckpoint::open(&forged, k.public_key()).is_err());
        // An unknown extra signature is ignored.
        let extra = format!("{}\u{2014} other.example AAAAAAAA\n", s.note);
        assert!(SignedCheckpoint::open(&extra, k.public_key()).is_ok());
        // The same key's signature line twice is refused.
        let sig_line = s.note.rsplit_once("\n\n").unwrap().1;
        let twice = format!("{}{sig_line}", s.note);
        let e = SignedCheckpoint::open(&twice, k.public_key()).unwrap_err();
        assert!(e.0.contains("two signature lines"), "{e}");
    }

    #[test]
    fn previous_line_roundtrips_and_is_checked() {
        let cp = Checkpoint {
            origin: "o".into(),
            size: 9,
            root: [1u8; 32],
            previous: Some((4, [2u8; 32])),
        };
        assert_eq!(Checkpoint::parse_body(&cp.body()).unwrap(), cp);
        let not_smaller = Checkpoint {
            previous: Some((9, [2u8; 32])),
            ..cp.clone()
        };
        assert!(Checkpoint::parse_body(&not_smaller.body()).is_err());
        let doubled = format!("{}vigil-previous 3 {}\n", cp.body(), B64.encode([2u8; 32]));
        assert!(Checkpoint::parse_body(&doubled).is_err());
    }

    #[test]
    fn body_parsing_is_strict() {
        assert!(Checkpoint::parse_body("o\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n1\n").is_err());
        assert!(
            Checkpoint::parse_body("o o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
                .is_err()
        );
        let ok =
            Checkpoint::parse_body("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n")
                .unwrap();
        assert_eq!(ok.size, 1);
    }
}
