//! `vigil package inspect`: everything a package file says about itself,
//! read without trusting it (it works on packages the gatekeeper would
//! refuse): name, version, publisher key, hashes, whether the signature
//! verifies under the embedded key, tools, capabilities, limits and the
//! findings of the tool-poisoning scan.

use serde::ser::SerializeMap as _;
use serde::{Serialize, Serializer};
use vigil_crypto::{context, CompositePublicKey};

use super::{FormatError, Manifest, PackageFile};
use crate::gatekeeper::poisoning::{self, Finding};
use crate::sandbox::capabilities::{Capabilities, Limits};

/// What `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub format_version: u16,
    pub file_bytes: u64,
    pub manifest_bytes: u64,
    pub module_bytes: u64,
    /// Content hash the file claims (hex).
    pub content_hash: String,
    /// True when the manifest and module hash to the claimed hash.
    pub hash_matches: bool,
    /// Key id of the embedded publisher key, if it parses.
    pub publisher_key_id: Option<String>,
    pub publisher_fingerprint: Option<String>,
    /// `valid under the embedded key`, or why not. Says nothing about
    /// whether the publisher is trusted.
    pub signature: String,
    /// True when the signature verifies under the embedded key.
    pub signature_valid: bool,
    /// The manifest, or why it does not parse. In JSON: the manifest's
    /// fields with `"valid": true`, or `{"valid": false, "error": "..."}`.
    #[serde(serialize_with = "manifest_json")]
    pub manifest: Result<ManifestView, String>,
    pub findings: Vec<Finding>,
}

/// The parts of a manifest shown by `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestView {
    pub name: String,
    pub version: String,
    pub description: String,
    pub tools: Vec<ToolView>,
    pub capabilities: Capabilities,
    pub limits: Limits,
}

/// One tool as shown by `inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct ToolView {
    pub name: String,
    pub description: String,
    pub sensitivity: &'static str,
    pub input_schema: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
}

/// The manifest of an [`Inspection`] as one JSON object with a `valid` flag
/// (a serialized `Result` would read `{"Ok": ...}`).
fn manifest_json<S: Serializer>(
    manifest: &Result<ManifestView, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Valid<'a> {
        valid: bool,
        #[serde(flatten)]
        manifest: &'a ManifestView,
    }
    match manifest {
        Ok(manifest) => Valid {
            valid: true,
            manifest,
        }
        .serialize(serializer),
        Err(error) => {
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_entry("valid", &false)?;
            map.serialize_entry("error", error)?;
            map.end()
        }
    }
}

/// Inspects a package file. Only bytes that are not a package file at all
/// (wrong magic, truncated, too large) are errors.
pub fn inspect(bytes: &[u8], max_len: u64) -> Result<Inspection, FormatError> {
    let file = PackageFile::parse(bytes, max_len)?;
    let key = CompositePublicKey::from_bytes(file.public_key);
    let manifest = Manifest::parse(file.manifest);
    let (signature, signature_valid) = match (&key, &manifest) {
        (Err(e), _) => (format!("not checked: embedded key is invalid ({e})"), false),
        (_, Err(_)) => (
            "not checked: the manifest does not parse".to_string(),
            false,
        ),
        (Ok(k), Ok(m)) => match k.verify_bytes(
            &super::statement_of(&file, m),
            context::PACKAGE,
            file.signature,
        ) {
            Ok(()) => ("valid under the embedded key".to_string(), true),
            Err(e) => (format!("INVALID: {e}"), false),
        },
    };
    let findings = manifest.as_ref().map(poisoning::scan).unwrap_or_default();
    Ok(Inspection {
        format_version: file.format_version,
        file_bytes: bytes.len() as u64,
        manifest_bytes: file.manifest.len() as u64,
        module_bytes: file.module.len() as u64,
        content_hash: hex::encode(file.content_hash),
        hash_matches: file.computed_hash() == file.content_hash,
        publisher_key_id: key.as_ref().ok().map(|k| k.key_id().to_string()),
        publisher_fingerprint: key.as_ref().ok().map(|k| k.fingerprint()),
        signature,
        signature_valid,
        manifest: manifest.map(view).map_err(|e| e.to_string()),
        findings,
    })
}

fn view(m: Manifest) -> ManifestView {
    ManifestView {
        name: m.package.name,
        version: m.package.version,
        description: m.package.description,
        tools: m
            .tools
            .into_iter()
            .map(|t| ToolView {
                name: t.name,
                description: t.description,
                sensitivity: t.sensitivity.as_str(),
                input_schema: t.input_schema,
                output_schema: t.output_schema,
            })
            .collect(),
        capabilities: m.capabilities,
        limits: m.limits,
    }
}
