//! Fuzzes the bundle parser and verifier: any input must give a result or a
//! typed error, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_crypto::SigningKey;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(SigningKey::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = vigil_ledger::bundle::verify_bundle(data, key().public_key());
});
