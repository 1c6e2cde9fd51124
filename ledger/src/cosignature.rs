//! Witness cosignatures on checkpoints (C2SP tlog-cosignature) and the
//! verifier keys ("vkeys", C2SP signed-note) that name them.
//!
//! A cosigner has a name and a key: Ed25519 for `cosignature/v1` (signature
//! type `0x04`), ML-DSA-44 for `subtree/v1` checkpoint cosignatures (type
//! `0x06`). Its signature line is `— <name> base64(key ID || timestamp (u64
//! big-endian) || signature)` with `key ID = SHA-256(name || "\n" || type ||
//! public key)[:4]`. A vkey is `<name>+<hex key ID>+base64(type || public
//! key)`. Logs that sign with plain Ed25519 note keys (type `0x01`) can be
//! witnessed too; their vkeys use the same form.

use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use pqcrypto_mldsa::mldsa44;
use pqcrypto_traits::sign::{DetachedSignature as _, PublicKey as _, SecretKey as _};
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SIG_PREFIX: &str = "\u{2014} ";

/// Signed-note signature type of plain Ed25519 note signatures.
pub const TYPE_ED25519_NOTE: u8 = 0x01;
/// Signature type of Ed25519 `cosignature/v1` cosignatures.
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Signature type of ML-DSA-44 `subtree/v1` cosignatures.
pub const TYPE_SUBTREE_V1: u8 = 0x06;
const SUBTREE_LABEL: &[u8; 12] = b"subtree/v1\n\0";

/// Why a key or cosignature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CosignatureError(pub String);

fn err(msg: impl Into<String>) -> CosignatureError {
    CosignatureError(msg.into())
}

/// `SHA-256(name || "\n" || type || key)[:4]`.
pub fn key_id(name: &str, kind: u8, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind]);
    h.update(key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn check_name(name: &str) -> Result<(), CosignatureError> {
    if name.is_empty()
        || name.len() > 255
        || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'+')
    {
        return Err(err(format!(
            "key name `{name}` is not allowed: use 1 to 255 printable ASCII characters without spaces or `+`"
        )));
    }
    Ok(())
}

/// A public key of a cosigner or of an Ed25519-signing log.
#[derive(Clone)]
pub enum PublicKey {
    /// An Ed25519 key: a log's note key (`0x01`) or a `cosignature/v1`
    /// cosigner (`0x04`).
    Ed25519(u8, ed25519_dalek::VerifyingKey),
    /// An ML-DSA-44 `subtree/v1` cosigner.
    MlDsa44(Box<mldsa44::PublicKey>),
}

/// A named verifier key.
#[derive(Clone)]
pub struct VerifierKey {
    /// The key name.
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifierKey({})", self.to_vkey())
    }
}

impl VerifierKey {
    /// The signature type byte.
    pub fn kind(&self) -> u8 {
        match &self.key {
            PublicKey::Ed25519(kind, _) => *kind,
            PublicKey::MlDsa44(_) => TYPE_SUBTREE_V1,
        }
    }

    fn key_bytes(&self) -> Vec<u8> {
        match &self.key {
            PublicKey::Ed25519(_, k) => k.as_bytes().to_vec(),
            PublicKey::MlDsa44(k) => k.as_bytes().to_vec(),
        }
    }

    /// Its signed-note key ID.
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, self.kind(), &self.key_bytes())
    }

    /// `<name>+<hex key ID>+base64(type || key)`.
    pub fn to_vkey(&self) -> String {
        let mut material = vec![self.kind()];
        material.extend(self.key_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id()),
            B64.encode(material)
        )
    }

    /// Parses a vkey, checking that its key ID matches.
    pub fn parse(vkey: &str) -> Result<Self, CosignatureError> {
        let vkey = vkey.trim();
        let bad = || {
            err(format!(
                "`{vkey}` is not a verifier key `<name>+<key id>+<base64 key>`"
            ))
        };
        let (name, rest) = vkey.split_once('+').ok_or_else(bad)?;
        let (id, material) = rest.split_once('+').ok_or_else(bad)?;
        check_name(name)?;
        let material = B64.decode(material).map_err(|_| bad())?;
        let (&kind, key) = material.split_first().ok_or_else(bad)?;
        let key = match kind {
            TYPE_ED25519_NOTE | TYPE_COSIGNATURE_V1 => {
                let bytes: [u8; 32] = key
                    .try_into()
                    .map_err(|_| err("an Ed25519 verifier key must hold 32 bytes"))?;
                PublicKey::Ed25519(
                    kind,
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                        .map_err(|_| err("the Ed25519 key is not a valid point"))?,
                )
            }
            TYPE_SUBTREE_V1 => PublicKey::MlDsa44(Box::new(
                mldsa44::PublicKey::from_bytes(key)
                    .map_err(|_| err("an ML-DSA-44 verifier key must hold 1312 bytes"))?,
            )),
            other => {
                return Err(err(format!(
                    "verifier key type 0x{other:02x} is not supported (0x01 Ed25519 note keys, 0x04 cosignature/v1, 0x06 ML-DSA-44 subtree/v1)"
                )))
            }
        };
        let parsed = Self {
            name: name.to_string(),
            key,
        };
        if hex::encode(parsed.id()) != id.to_ascii_lowercase() {
            return Err(err(format!(
                "the key ID in `{vkey}` does not match its name and key"
            )));
        }
        Ok(parsed)
    }

    /// Verifies one signature line's blob (key ID already matched) over the
    /// note `text` of `checkpoint`. Returns the cosignature's timestamp (0
    /// for a note signature).
    fn verify_blob(
        &self,
        text: &str,
        cp: &Checkpoint,
        blob: &[u8],
    ) -> Result<u64, CosignatureError> {
        match &self.key {
            PublicKey::Ed25519(TYPE_ED25519_NOTE, k) => {
                let sig = ed25519_dalek::Signature::from_slice(blob)
                    .map_err(|_| err("an Ed25519 note signature must be 64 bytes"))?;
                k.verify(text.as_bytes(), &sig).map_err(|_| {
                    err(format!(
                        "the note signature of `{}` does not verify",
                        self.name
                    ))
                })?;
                Ok(0)
            }
            PublicKey::Ed25519(_, k) => {
                let (time, sig) = split_time(blob, 64)?;
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| err("malformed Ed25519 cosignature"))?;
                k.verify(cosignature_v1_message(time, text).as_bytes(), &sig)
                    .map_err(|_| {
                        err(format!(
                            "the cosignature of `{}` does not verify",
                            self.name
                        ))
                    })?;
                Ok(time)
            }
            PublicKey::MlDsa44(k) => {
                let (time, sig) = split_time(blob, 2420)?;
                let sig = mldsa44::DetachedSignature::from_bytes(sig)
                    .map_err(|_| err("malformed ML-DSA-44 cosignature"))?;
                mldsa44::verify_detached_signature(
                    &sig,
                    &subtree_v1_message(&self.name, time, cp),
                    k,
                )
                .map_err(|_| {
                    err(format!(
                        "the subtree cosignature of `{}` does not verify",
                        self.name
                    ))
                })?;
                Ok(time)
            }
        }
    }
}

fn split_time(blob: &[u8], sig_len: usize) -> Result<(u64, &[u8]), CosignatureError> {
    if blob.len() != 8 + sig_len {
        return Err(err(format!(
            "a cosignature holds a timestamp and a {sig_len}-byte signature, not {} bytes",
            blob.len()
        )));
    }
    let (time, sig) = blob.split_at(8);
    let time = u64::from_be_bytes(time.try_into().map_err(|_| err("bad timestamp"))?);
    if time > i64::MAX as u64 {
        return Err(err("a cosignature timestamp must not exceed 2^63 - 1"));
    }
    Ok((time, sig))
}

/// The `cosignature/v1` signed message over note `text`.
pub fn cosignature_v1_message(time: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// The `subtree/v1` signed message for a checkpoint (start 0).
pub fn subtree_v1_message(name: &str, time: u64, cp: &Checkpoint) -> Vec<u8> {
    let mut m = SUBTREE_LABEL.to_vec();
    m.push(name.len() as u8);
    m.extend(name.as_bytes());
    m.extend(time.to_be_bytes());
    m.push(cp.origin.len() as u8);
    m.extend(cp.origin.as_bytes());
    m.extend(0u64.to_be_bytes());
    m.extend(cp.size.to_be_bytes());
    m.extend(cp.root);
    m
}

/// A witness's signing keys: Ed25519 for `cosignature/v1` and ML-DSA-44 for
/// `subtree/v1`, under one name.
pub struct Cosigner {
    name: String,
    ed25519: ed25519_dalek::SigningKey,
    mldsa_public: mldsa44::PublicKey,
    mldsa_secret: mldsa44::SecretKey,
}

const KEY_FILE_HEADER: &str = "vigil-witness-key-v1";

impl Cosigner {
    /// New random keys named `name`.
    pub fn generate(name: &str) -> Result<Self, CosignatureError> {
        check_name(name)?;
        let (mldsa_public, mldsa_secret) = mldsa44::keypair();
        Ok(Self {
            name: name.to_string(),
            ed25519: ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng),
            mldsa_public,
            mldsa_secret,
        })
    }

    /// The key file text: a header line, the name, base64 of the Ed25519
    /// seed, of the ML-DSA-44 public key and of its secret key.
    pub fn to_file(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\n{}\n{}\n{}\n{}\n",
            self.name,
            B64.encode(self.ed25519.to_bytes()),
            B64.encode(self.mldsa_public.as_bytes()),
            B64.encode(self.mldsa_secret.as_bytes())
        )
    }

    /// Reads a key file written by [`Cosigner::to_file`].
    pub fn from_file(text: &str) -> Result<Self, CosignatureError> {
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(err(format!(
                "not a witness key file (no `{KEY_FILE_HEADER}` line)"
            )));
        }
        let mut next = |what: &str| {
            lines
                .next()
                .ok_or_else(|| err(format!("the witness key file lacks its {what}")))
        };
        let name = next("name")?.to_string();
        check_name(&name)?;
        let decode = |s: &str, what: &str| {
            B64.decode(s)
                .map_err(|_| err(format!("the witness key file's {what} is not base64")))
        };
        let seed: [u8; 32] = decode(next("Ed25519 seed")?, "Ed25519 seed")?
            .try_into()
            .map_err(|_| err("the Ed25519 seed must be 32 bytes"))?;
        let mldsa_public =
            mldsa44::PublicKey::from_bytes(&decode(next("ML-DSA-44 key")?, "ML-DSA-44 key")?)
                .map_err(|_| err("malformed ML-DSA-44 public key"))?;
        let mldsa_secret =
            mldsa44::SecretKey::from_bytes(&decode(next("ML-DSA-44 secret")?, "ML-DSA-44 secret")?)
                .map_err(|_| err("malformed ML-DSA-44 secret key"))?;
        Ok(Self {
            name,
            ed25519: ed25519_dalek::SigningKey::from_bytes(&seed),
            mldsa_public,
            mldsa_secret,
        })
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its two verifier keys: `cosignature/v1` (Ed25519), then `subtree/v1`
    /// (ML-DSA-44).
    pub fn verifier_keys(&self) -> [VerifierKey; 2] {
        [
            VerifierKey {
                name: self.name.clone(),
                key: PublicKey::Ed25519(TYPE_COSIGNATURE_V1, self.ed25519.verifying_key()),
            },
            VerifierKey {
                name: self.name.clone(),
                key: PublicKey::MlDsa44(Box::new(self.mldsa_public)),
            },
        ]
    }

    /// The two cosignature lines on the checkpoint note `text` (body
    /// including its final newline), at POSIX time `time`.
    pub fn cosign(&self, text: &str, cp: &Checkpoint, time: u64) -> Vec<String> {
        let [ed_key, ml_key] = self.verifier_keys();
        let ed_sig = self
            .ed25519
            .sign(cosignature_v1_message(time, text).as_bytes());
        let ml_sig = mldsa44::detached_sign(
            &subtree_v1_message(&self.name, time, cp),
            &self.mldsa_secret,
        );
        let line = |id: [u8; 4], sig: &[u8]| {
            let mut blob = id.to_vec();
            blob.extend(time.to_be_bytes());
            blob.extend(sig);
            format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob))
        };
        vec![
            line(ed_key.id(), &ed_sig.to_bytes()),
            line(ml_key.id(), ml_sig.as_bytes()),
        ]
    }
}

/// Splits a signed note into its text (ending in a newline) and signature
/// lines, and parses the checkpoint body.
pub fn split_note(note: &str) -> Result<(&str, Checkpoint, Vec<&str>), CosignatureError> {
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| err("the note has no blank line before its signatures"))?;
    let text = &note[..split + 1];
    let cp = Checkpoint::parse_body(text).map_err(|e| err(e.0))?;
    let sigs = note[split + 2..]
        .strip_suffix('\n')
        .ok_or_else(|| err("the note does not end in a newline"))?;
    Ok((text, cp, sigs.split('\n').collect()))
}

/// The keys among `keys` with a valid signature line on `note`; lines of
/// other keys are ignored. Each key counts once; a key with two lines, or
/// a line of a known key that does not verify, is an error.
pub fn verified_signers<'k>(
    note: &str,
    keys: &'k [VerifierKey],
) -> Result<Vec<&'k VerifierKey>, CosignatureError> {
    let (text, cp, lines) = split_note(note)?;
    let mut found: Vec<&VerifierKey> = Vec::new();
    for line in lines {
        let Some((name, b64)) = line
            .strip_prefix(SIG_PREFIX)
            .and_then(|r| r.split_once(' '))
        else {
            return Err(err("a malformed signature line"));
        };
        let Ok(blob) = B64.decode(b64) else {
            return Err(err("a signature line is not base64"));
        };
        if blob.len() < 4 {
            return Err(err("a signature line is too short"));
        }
        let Some(key) = keys.iter().find(|k| k.name == name && k.id() == blob[..4]) else {
            continue;
        };
        if found.iter().any(|k| std::ptr::eq(*k, key)) {
            return Err(err(format!("two signature lines from the key of `{name}`")));
        }
        key.verify_blob(text, &cp, &blob[4..])?;
        found.push(key);
    }
    Ok(found)
}

/// The distinct cosigner names among `keys` with at least one valid
/// cosignature on `note`.
pub fn cosigners(note: &str, keys: &[VerifierKey]) -> Result<Vec<String>, CosignatureError> {
    let mut names: Vec<String> = verified_signers(note, keys)?
        .into_iter()
        .filter(|k| k.kind() != TYPE_ED25519_NOTE)
        .map(|k| k.name.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_crypto::SigningKey;

    #[test]
    fn cosignatures_roundtrip_and_tampering_fails() {
        let node = SigningKey::generate();
        let cp = Checkpoint {
            origin: "log.example/a".into(),
            size: 7,
            root: [3; 32],
            previous: None,
        };
        let note = cp.sign(&node).unwrap().note;
        let (text, _, _) = split_note(&note).unwrap();
        let w = Cosigner::generate("witness.example/w1").unwrap();
        let again = Cosigner::from_file(&w.to_file()).unwrap();
        assert_eq!(
            again.verifier_keys()[0].to_vkey(),
            w.verifier_keys()[0].to_vkey()
        );
        let keys: Vec<VerifierKey> = w
            .verifier_keys()
            .iter()
            .map(|k| VerifierKey::parse(&k.to_vkey()).unwrap())
            .collect();
        let lines = w.cosign(text, &cp, 1_700_000_000);
        let cosigned = format!("{note}{}", lines.concat());
        assert_eq!(verified_signers(&cosigned, &keys).unwrap().len(), 2);
        assert_eq!(
            cosigners(&cosigned, &keys).unwrap(),
            vec!["witness.example/w1"]
        );
        // The node's own line is still there and still verifies.
        crate::SignedCheckpoint::open(&cosigned, node.public_key()).unwrap();
        // Another checkpoint's cosignatures do not verify on this one.
        let other = Checkpoint {
            size: 8,
            ..cp.clone()
        };
        let moved = format!("{}{}", other.sign(&node).unwrap().note, lines.concat());
        assert!(verified_signers(&moved, &keys).is_err());
        // Unknown keys are ignored.
        let stranger = Cosigner::generate("witness.example/w2").unwrap();
        let theirs: Vec<VerifierKey> = stranger.verifier_keys().to_vec();
        assert!(cosigners(&cosigned, &theirs).unwrap().is_empty());
        // A vkey with a wrong ID is refused.
        let vkey = keys[0].to_vkey();
        let mut parts: Vec<&str> = vkey.split('+').collect();
        parts[1] = "00000000";
        assert!(VerifierKey::parse(&parts.join("+")).is_err());
    }
}
