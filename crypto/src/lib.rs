//! vigil-crypto: the one signature scheme every part of vigil uses, and the
//! key files operators handle.
//!
//! - [`composite`]: id-MLDSA65-Ed25519-SHA512 composite signatures
//!   (draft-ietf-lamps-pq-composite-sigs-19): key generation, signing and
//!   verification, key ids and fingerprints.
//! - [`context`]: the application context (`ctx`) of every internal use, so a
//!   signature made for one use never verifies for another.
//! - [`keyfile`]: the `.key` / `.pub` file formats, permissions checks and
//!   optional passphrase protection.

pub mod composite;
pub mod context;
pub mod error;
pub mod keyfile;

pub use composite::{CompositePublicKey, CompositeSignature, KeyId, SigningKey};
pub use error::CryptoError;
