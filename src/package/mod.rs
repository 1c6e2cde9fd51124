//! Tool packages: the manifest (`vigil-tool.toml`), the signed package file
//! (`.vpkg`), building one from a directory's manifest and module, and
//! inspecting one. Nothing here decides whether a package may run; that is
//! the gatekeeper's job (`crate::gatekeeper`).

pub mod format;
pub mod inspect;
pub mod manifest;

use sha2::{Digest, Sha256};
use vigil_crypto::{context, SigningKey};

pub use format::{ContentHash, FormatError, PackageFile};
pub use manifest::{Manifest, ManifestError};

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot encode the package: {0}")]
    Encode(String),
    #[error(transparent)]
    Crypto(#[from] vigil_crypto::CryptoError),
}

/// Builds a package file from manifest bytes and module bytes, signed by
/// `key` under the package context. The output is a pure function of the
/// inputs and the key: the signature uses ML-DSA-65's deterministic variant,
/// so building the same input twice gives identical bytes.
pub fn build(manifest: &[u8], module: &[u8], key: &SigningKey) -> Result<Vec<u8>, BuildError> {
    let parsed = Manifest::parse(manifest)?;
    let content = format::encode_content(manifest, module).map_err(BuildError::Encode)?;
    let hash: ContentHash = Sha256::digest(&content).into();
    let public = key.public_key();
    let statement = format::signed_statement(
        format::FORMAT_VERSION,
        &parsed.package.name,
        &parsed.package.version,
        &hash,
        &public.key_id(),
    );
    let signature = key.sign_deterministic(&statement, context::PACKAGE)?;
    format::encode_tail(content, &hash, public.as_bytes(), signature.as_bytes())
        .map_err(BuildError::Encode)
}

/// The statement a package file's signature must cover, rebuilt from the
/// file's own fields (`None` when the manifest does not parse).
pub fn statement_of(file: &PackageFile<'_>, manifest: &Manifest) -> Vec<u8> {
    let key_id = vigil_crypto::CompositePublicKey::from_bytes(file.public_key)
        .map(|k| k.key_id())
        .unwrap_or(vigil_crypto::KeyId([0; 16]));
    format::signed_statement(
        file.format_version,
        &manifest.package.name,
        &manifest.package.version,
        &file.content_hash,
        &key_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MANIFEST: &str = "[package]\nname = \"acme/echo\"\nversion = \"1.0.0\"\ndescription = \"Echoes its input.\"\n\n[[tools]]\nname = \"echo\"\ndescription = \"Returns the input unchanged.\"\ninput_schema = { type = \"object\" }\n";

    #[test]
    fn build_is_deterministic() {
        let key = SigningKey::generate();
        let a = build(MANIFEST.as_bytes(), b"\0asm\x01\0\0\0", &key).expect("build");
        let b = build(MANIFEST.as_bytes(), b"\0asm\x01\0\0\0", &key).expect("build");
        let fa = PackageFile::parse(&a, u64::MAX).expect("parse");
        let fb = PackageFile::parse(&b, u64::MAX).expect("parse");
        assert_eq!(fa.content, fb.content);
        assert_eq!(fa.content_hash, fb.content_hash);
        assert_eq!(fa.computed_hash(), fa.content_hash);
        assert_eq!(a, b, "same input and key, identical bytes");
        let m = Manifest::parse(fa.manifest).expect("manifest");
        key.public_key()
            .verify_bytes(&statement_of(&fa, &m), context::PACKAGE, fa.signature)
            .expect("signature verifies");
    }

    #[test]
    fn build_refuses_bad_manifest() {
        let key = SigningKey::generate();
        assert!(matches!(
            build(b"[package]\n", b"", &key),
            Err(BuildError::Manifest(_))
        ));
    }
}
