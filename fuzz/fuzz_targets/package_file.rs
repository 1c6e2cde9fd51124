//! Fuzzes the package file parser, `inspect` (manifest, embedded key,
//! signature, poisoning scan) and the gatekeeper's admission of arbitrary
//! bytes: none of them may panic, and nothing untrusted may be admitted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::gatekeeper::history::AdmissionHistory;
use vigil::gatekeeper::{Decision, Gatekeeper};
use vigil::trust::TrustStore;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::package::inspect::inspect(data, 1 << 24);
    let trust = TrustStore::default();
    let history = AdmissionHistory::default();
    let gatekeeper = Gatekeeper {
        trust: &trust,
        history: &history,
        max_package_bytes: 1 << 24,
    };
    // The trust store is empty: nothing may ever be admitted.
    assert!(matches!(gatekeeper.admit(data, &Default::default()), Decision::Refused(_)));
});
