//! Fuzzes the single-entry proof parser and verifier, and the entry decoder.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_crypto::SigningKey;
use vigil_ledger::proof::EntryProof;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(SigningKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = vigil_ledger::Entry::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = EntryProof::parse(text) {
            let _ = p.verify(key().public_key());
        }
    }
});
