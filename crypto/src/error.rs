//! Typed errors of vigil-crypto. Every variant says what was wrong in words an
//! operator can act on.

use std::path::PathBuf;

/// Everything that can go wrong while handling keys and signatures.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{what} has the wrong length: expected {expected} bytes, got {actual}")]
    WrongLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("context is {0} bytes long; at most 255 bytes are allowed")]
    ContextTooLong(usize),
    #[error("signature does not verify: {0}")]
    BadSignature(&'static str),
    #[error("{0} is not a valid public key")]
    BadPublicKey(&'static str),
    #[error("{0} is not a valid secret key")]
    BadSecretKey(&'static str),
    #[error("invalid base64 in {what}: {source}")]
    Base64 {
        what: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    #[error("{path}: {message}")]
    KeyFileFormat { path: PathBuf, message: String },
    #[error(
        "{path} is readable by group or others (mode {mode:04o}); secret keys must be private: run `chmod 600 {path}`"
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error("{path} is protected by a passphrase; pass --passphrase-env NAME with NAME holding the passphrase")]
    PassphraseRequired { path: PathBuf },
    #[error("wrong passphrase for {path}, or the key file is corrupted")]
    WrongPassphrase { path: PathBuf },
    #[error("{path} already exists; refusing to overwrite a key file")]
    AlreadyExists { path: PathBuf },
    #[error("passphrase key derivation failed: {0}")]
    Kdf(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
