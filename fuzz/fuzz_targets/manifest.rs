//! Fuzzes the manifest parser and the tool-poisoning scan of whatever
//! parses: neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::package::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data) {
        let _ = vigil::gatekeeper::poisoning::scan(&manifest);
        let _ = vigil::gatekeeper::names::check_syntax(&manifest.package.name);
        let _ = vigil::gatekeeper::names::name_skeleton(&manifest.package.name);
    }
});
