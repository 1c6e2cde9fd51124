//! Tools for tests and benches that run wasm without a node home: the wasm
//! is packaged with a manifest declaring the given capabilities and limits,
//! signed by a test publisher, and admitted by the real gatekeeper (trust
//! store and history in memory). The sandbox loads only what the gatekeeper
//! verified, so tests take the same road as the node.
#![allow(dead_code)]

use std::sync::OnceLock;

use vigil::gatekeeper::history::AdmissionHistory;
use vigil::gatekeeper::{AdmitOptions, Decision, Gatekeeper, VerifiedPackage};
use vigil::package::manifest::{Manifest, PackageInfo, Sensitivity, ToolSpec};
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::trust::TrustStore;
use vigil_crypto::SigningKey;

/// The test publisher's key, made once per process.
fn publisher() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(SigningKey::generate)
}

/// The signed package file of `wasm` as `test/NAME@1.0.0` providing tool
/// `name`, with `caps` and `limits`.
pub fn package_bytes(name: &str, wasm: &[u8], caps: &Capabilities, limits: Limits) -> Vec<u8> {
    let manifest = Manifest {
        package: PackageInfo {
            name: format!("test/{name}"),
            version: "1.0.0".into(),
            description: "A tool under test.".into(),
            module: None,
        },
        tools: vec![ToolSpec {
            name: name.into(),
            description: "Runs the tool under test.".into(),
            input_schema: serde_json::json!({ "type": "object" }),
            output_schema: None,
            sensitivity: Sensitivity::Low,
        }],
        capabilities: caps.clone(),
        limits,
    };
    let text = toml::to_string(&manifest).expect("manifest as TOML");
    vigil::package::build(text.as_bytes(), wasm, publisher()).expect("build the package")
}

/// `wasm` as the gatekeeper admits it (see [`package_bytes`]); panics
/// with the refusal if the gatekeeper refuses it.
pub fn verified(name: &str, wasm: &[u8], caps: &Capabilities, limits: Limits) -> VerifiedPackage {
    let bytes = package_bytes(name, wasm, caps, limits);
    let mut trust = TrustStore::default();
    trust
        .add_publisher(publisher().public_key(), "test", &["test/*".into()], 0)
        .expect("trust the test publisher");
    let history = AdmissionHistory::default();
    let gatekeeper = Gatekeeper {
        trust: &trust,
        history: &history,
        max_package_bytes: 64 << 20,
    };
    match gatekeeper.admit(&bytes, &AdmitOptions::default()) {
        Decision::Admitted(a) => a.verified,
        Decision::Refused(r) => panic!("the gatekeeper refused test/{name}: {}", r.reason),
    }
}
