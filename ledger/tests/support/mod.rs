//! Helpers shared by the ledger's integration tests.
#![allow(dead_code)]

use vigil_crypto::SigningKey;

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
