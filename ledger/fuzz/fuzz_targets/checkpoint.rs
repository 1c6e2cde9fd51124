//! Fuzzes the checkpoint body and signed-note parsers.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_crypto::SigningKey;
use vigil_ledger::checkpoint::{Checkpoint, SignedCheckpoint};

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(SigningKey::generate)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Checkpoint::parse_body(text);
        let _ = SignedCheckpoint::open(text, key().public_key());
    }
});
