//! Ledger entries and their one canonical byte encoding (specified in
//! `docs/ledger-format.md`), the rules an entry must follow, the canonical
//! JSON form of `details`, and the salted payload commitment.
//!
//! Encoding (all integers big-endian):
//! `version:u8=1 | index:u64 | timestamp_ns:u64 | prev:[32] | kind:str8 |
//! actor:str16 | subject:str16 | decision:str8 | details:str32 |
//! payload_tag:u8 (0, or 1 followed by commitment:[32] | length:u64)`,
//! where `strN` is an N-bit length followed by that many UTF-8 bytes.
//! The entry hash is the RFC 6962 leaf hash `SHA-256(0x00 || encoding)`.

use sha2::{Digest, Sha256};

use crate::hash::{leaf_hash, Hash};

/// Version byte of the entry encoding.
pub const ENTRY_VERSION: u8 = 1;
/// Largest `details` JSON accepted, in bytes.
pub const MAX_DETAILS_LEN: usize = 64 * 1024;
/// Largest actor or subject, in bytes.
pub const MAX_NAME_LEN: usize = 4096;
/// Largest encoded entry a reader accepts.
pub const MAX_ENTRY_LEN: usize =
    1 + 8 + 8 + 32 + 1 + 255 + 2 * (2 + MAX_NAME_LEN) + 1 + 255 + 4 + MAX_DETAILS_LEN + 1 + 32 + 8;
/// Domain-separation tag of payload commitments.
pub const PAYLOAD_COMMITMENT_TAG: &[u8] = b"vigil/payload-commitment/v1";
/// Length of a payload salt.
pub const SALT_LEN: usize = 32;

/// Kind of the entry that records a payload erasure.
pub const KIND_PAYLOAD_ERASED: &str = "payload.erased";

/// The commitment to a payload stored beside the ledger:
/// `SHA-256(tag || salt || payload)` and the payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadCommitment {
    /// `SHA-256("vigil/payload-commitment/v1" || salt || payload)`.
    pub digest: Hash,
    /// Payload length in bytes.
    pub length: u64,
}

impl PayloadCommitment {
    /// Commits to `payload` under `salt`.
    pub fn compute(salt: &[u8; SALT_LEN], payload: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(PAYLOAD_COMMITMENT_TAG);
        h.update(salt);
        h.update(payload);
        Self {
            digest: h.finalize().into(),
            length: payload.len() as u64,
        }
    }

    /// True when `payload` under `salt` opens this commitment.
    pub fn opens(&self, salt: &[u8; SALT_LEN], payload: &[u8]) -> bool {
        Self::compute(salt, payload) == *self
    }
}

/// One ledger entry, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the ledger, from 0.
    pub index: u64,
    /// UTC nanoseconds since the Unix epoch; never decreases along the ledger.
    pub timestamp_ns: u64,
    /// Hash of the previous entry; 32 zero bytes for entry 0.
    pub prev: Hash,
    /// What happened (`tool.call`, `package.refused`, ...).
    pub kind: String,
    /// Who did it.
    pub actor: String,
    /// What it was done to.
    pub subject: String,
    /// The decision (`allow`, `deny`, `record`, ...).
    pub decision: String,
    /// A JSON object in canonical form.
    pub details: String,
    /// Commitment to a payload stored beside the ledger, if any.
    pub payload: Option<PayloadCommitment>,
}

/// Why bytes are not a valid entry, or a new entry breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EntryError(pub String);

fn err(msg: impl Into<String>) -> EntryError {
    EntryError(msg.into())
}

impl Entry {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            80 + self.kind.len() + self.actor.len() + self.subject.len() + self.details.len(),
        );
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ns.to_be_bytes());
        out.extend_from_slice(&self.prev);
        put_str(&mut out, &self.kind, 1);
        put_str(&mut out, &self.actor, 2);
        put_str(&mut out, &self.subject, 2);
        put_str(&mut out, &self.decision, 1);
        put_str(&mut out, &self.details, 4);
        match &self.payload {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c.digest);
                out.extend_from_slice(&c.length.to_be_bytes());
            }
        }
        out
    }

    /// The entry hash (RFC 6962 leaf hash of the encoding).
    pub fn hash(&self) -> Hash {
        leaf_hash(&self.encode())
    }

    /// Decodes and checks the canonical encoding: exact lengths, UTF-8,
    /// field rules, and no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let mut entry = Self {
            index: 0,
            timestamp_ns: 0,
            prev: [0; 32],
            kind: String::new(),
            actor: String::new(),
            subject: String::new(),
            decision: String::new(),
            details: String::new(),
            payload: None,
        };
        Self::decode_into(bytes, &mut entry)?;
        Ok(entry)
    }

    /// [`Entry::decode`] into `entry`, reusing the memory of its strings (a
    /// verifier decodes millions of entries one after the other). On error
    /// `entry` holds parts of the malformed entry.
    pub fn decode_into(bytes: &[u8], entry: &mut Self) -> Result<(), EntryError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != ENTRY_VERSION {
            return Err(err(format!(
                "unknown entry version {version} (expected {ENTRY_VERSION})"
            )));
        }
        entry.index = r.u64()?;
        entry.timestamp_ns = r.u64()?;
        entry.prev = r.hash()?;
        r.str_into(1, "kind", &mut entry.kind)?;
        r.str_into(2, "actor", &mut entry.actor)?;
        r.str_into(2, "subject", &mut entry.subject)?;
        r.str_into(1, "decision", &mut entry.decision)?;
        r.str_into(4, "details", &mut entry.details)?;
        entry.payload = match r.u8()? {
            0 => None,
            1 => Some(PayloadCommitment {
                digest: r.hash()?,
                length: r.u64()?,
            }),
            t => return Err(err(format!("unknown payload tag {t}"))),
        };
        if r.pos != bytes.len() {
            return Err(err(format!(
                "{} trailing bytes after the entry",
                bytes.len() - r.pos
            )));
        }
        entry.check_fields()
    }

    /// The field rules every entry follows (see `docs/ledger-format.md`).
    pub fn check_fields(&self) -> Result<(), EntryError> {
        self.check_field_shapes()?;
        // Checks the syntax without building a value.
        serde_json::from_str::<serde::de::IgnoredAny>(&self.details)
            .map(|_| ())
            .map_err(|e| err(format!("details are not valid JSON: {e}")))
    }

    /// [`Entry::check_fields`] but for the JSON syntax of `details`: for
    /// details the ledger wrote itself as canonical JSON of an object.
    pub(crate) fn check_field_shapes(&self) -> Result<(), EntryError> {
        check_token(&self.kind, "kind")?;
        check_token(&self.decision, "decision")?;
        if self.actor.len() > MAX_NAME_LEN || self.subject.len() > MAX_NAME_LEN {
            return Err(err(format!(
                "actor and subject are limited to {MAX_NAME_LEN} bytes"
            )));
        }
        if self.details.len() > MAX_DETAILS_LEN {
            return Err(err(format!(
                "details are limited to {MAX_DETAILS_LEN} bytes"
            )));
        }
        if !self.details.trim_start().starts_with('{') {
            return Err(err("details must be a JSON object"));
        }
        Ok(())
    }

    /// For a `payload.erased` entry: the index whose payload was erased.
    pub fn erased_index(&self) -> Option<u64> {
        if self.kind != KIND_PAYLOAD_ERASED {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&self.details).ok()?;
        v.get("index")?.as_u64()
    }
}

/// `kind` and `decision`: 1 to 64 bytes of `a-z 0-9 . _ -`, starting with a letter.
fn check_token(value: &str, what: &str) -> Result<(), EntryError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "{what} `{value}` is not allowed: use 1 to 64 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter"
        )))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, width: usize) {
    let len = s.len() as u64;
    out.extend_from_slice(&len.to_be_bytes()[8 - width..]);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| {
                err(format!(
                    "entry is truncated: needs {n} more bytes at offset {}",
                    self.pos
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, EntryError> {
        Ok(self.take(1)?[0])
    }
    fn uint(&mut self, width: usize) -> Result<u64, EntryError> {
        let mut buf = [0u8; 8];
        buf[8 - width..].copy_from_slice(self.take(width)?);
        Ok(u64::from_be_bytes(buf))
    }
    fn u64(&mut self) -> Result<u64, EntryError> {
        self.uint(8)
    }
    fn hash(&mut self) -> Result<Hash, EntryError> {
        let mut h = [0u8; 32];
        h.copy_from_slice(self.take(32)?);
        Ok(h)
    }
    fn str_into(&mut self, width: usize, what: &str, into: &mut String) -> Result<(), EntryError> {
        let len =
            usize::try_from(self.uint(width)?).map_err(|_| err(format!("{what} is too long")))?;
        let b = self.take(len)?;
        let text = std::str::from_utf8(b).map_err(|_| err(format!("{what} is not UTF-8")))?;
        into.clear();
        into.push_str(text);
        Ok(())
    }
}

/// An entry to append: everything but the index, timestamp and `prev`, which
/// the ledger assigns.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// What happened.
    pub kind: String,
    /// Who did it.
    pub actor: String,
    /// What it was done to.
    pub subject: String,
    /// The decision.
    pub decision: String,
    /// A JSON object (canonicalized on append).
    pub details: serde_json::Value,
    /// Bytes to store beside the ledger under a salted commitment.
    pub payload: Option<Vec<u8>>,
}

impl NewEntry {
    /// A new entry with empty details and no payload.
    pub fn new(
        kind: impl Into<String>,
        actor: impl Into<String>,
        subject: impl Into<String>,
        decision: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            actor: actor.into(),
            subject: subject.into(),
            decision: decision.into(),
            details: serde_json::Value::Object(Default::default()),
            payload: None,
        }
    }

    /// Sets the details (must be a JSON object).
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Attaches a payload.
    pub fn payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = Some(payload);
        self
    }
}

/// The canonical JSON text of a value: object keys sorted by their UTF-8
/// bytes, no insignificant whitespace, strings escaped as serde_json does,
/// numbers as serde_json prints them.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    // Only JSON text was written, which is UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes `value` canonically straight into `out` (serde_json's compact
/// writer for strings, keys and scalars: the same bytes as its
/// `to_string`, without a `String` per value).
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            out.push(b'{');
            let mut write = |i: usize, k: &String, v: &Value| {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            };
            // A map kept in key order (serde_json's default) needs no sort.
            if map.keys().is_sorted_by(|a, b| a.as_bytes() <= b.as_bytes()) {
                for (i, (k, v)) in map.iter().enumerate() {
                    write(i, k, v);
                }
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    write(i, k, v);
                }
            }
            out.push(b'}');
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        // Writing a scalar to a Vec cannot fail.
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// Writes a JSON string as serde_json does: copied as is when nothing in it
/// needs escaping (serde_json escapes only `"`, `\\` and control
/// characters below 0x20), else through serde_json.
fn write_string(text: &str, out: &mut Vec<u8>) {
    // A fold without an early exit, which the compiler vectorizes.
    let escapes = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !escapes {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            index: 7,
            timestamp_ns: 1_700_000_000_000_000_000,
            prev: [9u8; 32],
            kind: "tool.call".into(),
            actor: "agent:alice".into(),
            subject: "tool:fetch".into(),
            decision: "allow".into(),
            details: r#"{"a":1}"#.into(),
            payload: Some(PayloadCommitment {
                digest: [3u8; 32],
                length: 12,
            }),
        }
    }

    #[test]
    fn encoding_roundtrips_and_is_exact() {
        let e = sample();
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Entry::decode(&longer).is_err());
        for cut in 0..bytes.len() {
            assert!(
                Entry::decode(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn known_encoding_layout() {
        let mut e = sample();
        e.payload = None;
        let b = e.encode();
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..9], &7u64.to_be_bytes());
        assert_eq!(&b[17..49], &[9u8; 32]);
        assert_eq!(b[49], 9);
        assert_eq!(&b[50..59], b"tool.call");
        assert_eq!(*b.last().unwrap(), 0);
    }

    #[test]
    fn field_rules() {
        let mut e = sample();
        e.kind = "Tool".into();
        assert!(e.check_fields().is_err());
        let mut e = sample();
        e.details = "[1]".into();
        assert!(e.check_fields().is_err());
        let mut e = sample();
        e.decision = String::new();
        assert!(e.check_fields().is_err());
    }

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{ "b": [1, {"z":1,"a":"x\n"}], "a": null, "é": 1.5 }"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":null,"b":[1,{"a":"x\n","z":1}],"é":1.5}"#
        );
    }

    /// The canonical text as first written: a `String` per key and scalar.
    fn canonical_json_by_strings(value: &serde_json::Value) -> String {
        use serde_json::Value;
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
                let fields: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        format!(
                            "{}:{}",
                            Value::String((*k).clone()),
                            canonical_json_by_strings(&map[*k])
                        )
                    })
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(canonical_json_by_strings)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => other.to_string(),
        }
    }

    #[test]
    fn canonical_json_is_unchanged_by_writing_in_place() {
        let texts = [
            r#"{"z":"\u0000\u001f\"\\/\t","é":"ü😀","a":[1,-2,3.25,1e300,-0.0,18446744073709551615,-9223372036854775808]}"#,
            r#"{"":{"b":{"c":[true,false,null,{}]},"a":[]},"k\n":"line\u2028sep"}"#,
            r#"{"i":"0000000001","p":"xxxxxxxx"}"#,
            r#"{"del":"a\u007fb","plain":"no escapes here","ctl":"a\u0001"}"#,
            "[]",
            "\"just a string\"",
            "12.5",
        ];
        for t in texts {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            assert_eq!(canonical_json(&v), canonical_json_by_strings(&v), "{t}");
        }
    }

    /// Decoding into a reused entry leaves nothing of the one before.
    #[test]
    fn decode_into_reuses_an_entry_and_keeps_nothing_of_the_last() {
        let mut long = sample();
        long.details = format!(r#"{{"pad":"{}"}}"#, "p".repeat(300));
        let mut short = sample();
        short.kind = "x".into();
        short.actor = String::new();
        short.payload = None;
        let mut scratch = Entry::decode(&long.encode()).unwrap();
        assert_eq!(scratch, long);
        Entry::decode_into(&short.encode(), &mut scratch).unwrap();
        assert_eq!(scratch, short);
        assert!(Entry::decode_into(&short.encode()[1..], &mut scratch).is_err());
    }

    #[test]
    fn commitments_bind_salt_and_payload() {
        let c = PayloadCommitment::compute(&[1u8; 32], b"hello");
        assert!(c.opens(&[1u8; 32], b"hello"));
        assert!(!c.opens(&[2u8; 32], b"hello"));
        assert!(!c.opens(&[1u8; 32], b"hellp"));
    }
}
