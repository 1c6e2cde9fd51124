//! The package file format v1 (`.vpkg`, documented in
//! `docs/package-format.md`): one file holding manifest, module, content
//! hash, publisher key and composite signature. This module owns encoding,
//! bounds-checked decoding into borrowed slices (no copies of the module),
//! the content hash and the signed statement. It does no I/O.
//!
//! Layout (integers big-endian):
//! `magic "VIGILPKG" | format u16 | manifest_len u32 | manifest |
//! module_len u32 | module | content_hash [32] | key_len u16 | key |
//! sig_len u16 | signature`. The content hash is SHA-256 over every byte
//! from the magic through the module.

use sha2::{Digest, Sha256};
use vigil_crypto::KeyId;

/// First eight bytes of every package file.
pub const MAGIC: &[u8; 8] = b"VIGILPKG";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Default largest package file accepted (64 MiB); configurable in
/// `vigil.toml` (`[packages] max_package_bytes`).
pub const DEFAULT_MAX_PACKAGE_BYTES: u64 = 64 * 1024 * 1024;

/// A SHA-256 content hash.
pub type ContentHash = [u8; 32];

/// Why bytes are not a well-formed package file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("package file is {len} bytes; the limit is {max} bytes (raise [packages] max_package_bytes in vigil.toml to accept it)")]
    TooLarge { len: u64, max: u64 },
    #[error("not a vigil package (the file does not start with `VIGILPKG`)")]
    BadMagic,
    #[error("unsupported package format version {0}; this node reads version {FORMAT_VERSION}")]
    UnsupportedVersion(u16),
    #[error("package file is truncated: {what} needs {need} more bytes, {have} are left")]
    Truncated {
        what: &'static str,
        need: u64,
        have: usize,
    },
    #[error("package file has {0} unexpected bytes after the signature")]
    TrailingBytes(usize),
}

/// A decoded package file: slices into the original bytes.
#[derive(Debug, Clone, Copy)]
pub struct PackageFile<'a> {
    pub format_version: u16,
    pub manifest: &'a [u8],
    pub module: &'a [u8],
    /// The bytes the content hash covers: magic through module.
    pub content: &'a [u8],
    /// The content hash the file claims.
    pub content_hash: ContentHash,
    /// The publisher's composite public key, as embedded.
    pub public_key: &'a [u8],
    pub signature: &'a [u8],
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], FormatError> {
        let have = self.bytes.len() - self.pos;
        let truncated = FormatError::Truncated {
            what,
            need: n,
            have,
        };
        let n = usize::try_from(n).map_err(|_| truncated.clone())?;
        if n > have {
            return Err(truncated);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl<'a> PackageFile<'a> {
    /// Decodes `bytes`, refusing files over `max_len` bytes, anything
    /// truncated and anything trailing.
    pub fn parse(bytes: &'a [u8], max_len: u64) -> Result<Self, FormatError> {
        let len = bytes.len() as u64;
        if len > max_len {
            return Err(FormatError::TooLarge { len, max: max_len });
        }
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8, "magic").map_err(|_| FormatError::BadMagic)? != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let format_version = r.u16("format version")?;
        if format_version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(format_version));
        }
        let n = r.u32("manifest length")?;
        let manifest = r.take(n.into(), "manifest")?;
        let n = r.u32("module length")?;
        let module = r.take(n.into(), "module")?;
        let content = &bytes[..r.pos];
        let hash = r.take(32, "content hash")?;
        let mut content_hash = [0u8; 32];
        content_hash.copy_from_slice(hash);
        let n = r.u16("publisher key length")?;
        let public_key = r.take(n.into(), "publisher key")?;
        let n = r.u16("signature length")?;
        let signature = r.take(n.into(), "signature")?;
        let rest = bytes.len() - r.pos;
        if rest != 0 {
            return Err(FormatError::TrailingBytes(rest));
        }
        Ok(Self {
            format_version,
            manifest,
            module,
            content,
            content_hash,
            public_key,
            signature,
        })
    }

    /// SHA-256 of the content, computed now (compare with `content_hash`).
    pub fn computed_hash(&self) -> ContentHash {
        Sha256::digest(self.content).into()
    }
}

/// The content part of a package file (magic through module), whose
/// SHA-256 is the content hash.
pub fn encode_content(manifest: &[u8], module: &[u8]) -> Result<Vec<u8>, String> {
    let manifest_len = u32::try_from(manifest.len()).map_err(|_| "manifest is too large")?;
    let module_len = u32::try_from(module.len()).map_err(|_| "module is larger than 4 GiB")?;
    let mut out = Vec::with_capacity(8 + 2 + 8 + manifest.len() + module.len() + 4096);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&manifest_len.to_be_bytes());
    out.extend_from_slice(manifest);
    out.extend_from_slice(&module_len.to_be_bytes());
    out.extend_from_slice(module);
    Ok(out)
}

/// Appends hash, key and signature to `content`, giving the package file.
pub fn encode_tail(
    mut content: Vec<u8>,
    hash: &ContentHash,
    public_key: &[u8],
    signature: &[u8],
) -> Result<Vec<u8>, String> {
    let key_len = u16::try_from(public_key.len()).map_err(|_| "public key is too large")?;
    let sig_len = u16::try_from(signature.len()).map_err(|_| "signature is too large")?;
    content.extend_from_slice(hash);
    content.extend_from_slice(&key_len.to_be_bytes());
    content.extend_from_slice(public_key);
    content.extend_from_slice(&sig_len.to_be_bytes());
    content.extend_from_slice(signature);
    Ok(content)
}

/// The statement the publisher signs under `vigil_crypto::context::PACKAGE`:
/// `format u16 | name_len u8 | name | version_len u8 | version |
/// content_hash [32] | key_id [16]`. Name and version longer than 255 bytes
/// are refused by the manifest rules before this is built.
pub fn signed_statement(
    format_version: u16,
    name: &str,
    version: &str,
    hash: &ContentHash,
    key_id: &KeyId,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 + name.len() + version.len() + 32 + 16);
    out.extend_from_slice(&format_version.to_be_bytes());
    for field in [name, version] {
        let bytes = &field.as_bytes()[..field.len().min(255)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(hash);
    out.extend_from_slice(&key_id.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let content = encode_content(b"m = 1", b"\0asm\x01\0\0\0").expect("content");
        let hash: ContentHash = Sha256::digest(&content).into();
        encode_tail(content, &hash, &[7; 5], &[9; 3]).expect("tail")
    }

    #[test]
    fn round_trip_and_hash() {
        let bytes = sample();
        let f = PackageFile::parse(&bytes, 1 << 20).expect("parses");
        assert_eq!(f.manifest, b"m = 1");
        assert_eq!(f.module, b"\0asm\x01\0\0\0");
        assert_eq!(f.public_key, [7; 5]);
        assert_eq!(f.signature, [9; 3]);
        assert_eq!(f.computed_hash(), f.content_hash);
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(PackageFile::parse(&bytes[..cut], 1 << 20).is_err(), "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            PackageFile::parse(&longer, 1 << 20).expect_err("trailing"),
            FormatError::TrailingBytes(1)
        );
        assert!(matches!(
            PackageFile::parse(&bytes, 10),
            Err(FormatError::TooLarge { .. })
        ));
        let mut v2 = bytes;
        v2[9] = 2;
        assert_eq!(
            PackageFile::parse(&v2, 1 << 20).expect_err("version"),
            FormatError::UnsupportedVersion(2)
        );
    }

    #[test]
    fn huge_lengths_do_not_panic() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            PackageFile::parse(&bytes, 1 << 20),
            Err(FormatError::Truncated { .. })
        ));
    }
}
