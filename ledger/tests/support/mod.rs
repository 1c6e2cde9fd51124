//! Helpers shared by the ledger's integration tests.
#![allow(dead_code)]

use vigil_crypto::SigningKey;
use vigil_ledger::bundle::{BundleReader, MAGIC};
use vigil_ledger::entry::SALT_LEN;
use vigil_ledger::hash::Hash;
use vigil_ledger::verify::{Earlier, Header};

/// An entry's payload as a bundle carries it.
pub type Payload = Option<([u8; SALT_LEN], Vec<u8>)>;

/// A bundle taken apart, to be written back (changed) with [`Parts::encode`].
pub struct Parts {
    pub header: Header,
    pub checkpoints: Vec<(String, Vec<Hash>)>,
    pub earlier: Vec<Earlier>,
    pub entries: Vec<(Vec<u8>, Payload)>,
}

impl Parts {
    pub fn decode(bundle: &[u8]) -> Self {
        let mut r = BundleReader::new(bundle);
        let header = r.header().expect("header");
        let checkpoints = r.checkpoints().expect("checkpoints");
        let earlier = r
            .earlier()
            .expect("earlier")
            .expect("a version-2 or later bundle");
        let entries = (header.from..header.to)
            .map(|_| r.entry().expect("entry"))
            .collect();
        r.end().expect("end");
        Self {
            header,
            checkpoints,
            earlier,
            entries,
        }
    }

    /// The bundle bytes as docs/ledger-format.md §4 lays them out.
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.header;
        let mut b = MAGIC.to_vec();
        b.extend((h.origin.len() as u16).to_be_bytes());
        b.extend(h.origin.as_bytes());
        b.extend((h.public_key.len() as u32).to_be_bytes());
        b.extend(&h.public_key);
        b.extend(h.from.to_be_bytes());
        b.extend(h.to.to_be_bytes());
        b.extend(h.prefix_prev);
        hashes(&mut b, &h.frontier);
        b.push(h.handovers.len() as u8);
        for r in &h.handovers {
            b.extend(r.index.to_be_bytes());
            b.extend((r.new_key.len() as u32).to_be_bytes());
            b.extend(&r.new_key);
            b.extend((r.signature.len() as u32).to_be_bytes());
            b.extend(&r.signature);
        }
        b.extend((self.checkpoints.len() as u32).to_be_bytes());
        for (note, proof) in &self.checkpoints {
            b.extend((note.len() as u32).to_be_bytes());
            b.extend(note.as_bytes());
            hashes(&mut b, proof);
        }
        b.extend((self.earlier.len() as u32).to_be_bytes());
        for e in &self.earlier {
            b.extend(e.size.to_be_bytes());
            b.extend(e.root);
            hashes(&mut b, &e.proof);
        }
        for (raw, payload) in &self.entries {
            b.extend((raw.len() as u32).to_be_bytes());
            b.extend(raw);
            match payload {
                Some((salt, data)) => {
                    b.push(1);
                    b.extend(salt);
                    b.extend((data.len() as u64).to_be_bytes());
                    b.extend(data);
                }
                None => b.push(0),
            }
        }
        b
    }
}

fn hashes(b: &mut Vec<u8>, hs: &[Hash]) {
    b.push(hs.len() as u8);
    for h in hs {
        b.extend(h);
    }
}

/// Opens the ledger's sled database directly. sled lets go of its file lock
/// a moment after the last handle is dropped (its background threads still
/// hold the file), so retry briefly, as `Ledger::open` does.
pub fn open_sled(path: &std::path::Path) -> sled::Db {
    for _ in 0..40 {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(e) => panic!("sled open: {e}"),
        }
    }
    panic!("sled stayed locked")
}

/// One signing key per test binary (generating ML-DSA keys is not free).
pub fn key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(SigningKey::generate)
}

/// The whole ledger exported as a bundle with default options, signed
/// checkpoints under the test key.
pub fn export_bundle(l: &vigil_ledger::Ledger) -> Vec<u8> {
    let mut bundle = Vec::new();
    vigil_ledger::bundle::export(
        l,
        key().public_key(),
        &mut bundle,
        &vigil_ledger::bundle::ExportOptions::default(),
        &mut |_, _| {},
    )
    .expect("export");
    bundle
}
