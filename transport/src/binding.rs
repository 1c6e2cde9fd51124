//! Identity binding: the statement each side of a link signs with its
//! composite key, tying that key to this one TLS session.
//!
//! The statement covers a domain label, the signer's role, the TLS exporter
//! value of the connection (RFC 9266 style, label
//! [`EXPORTER_LABEL`], 32 bytes), the SHA-256 of both TLS transport
//! certificates and both composite public keys. It is signed under
//! [`vigil_crypto::context::LINK_IDENTITY`]. A signature made for another
//! connection (a relay) carries another exporter value and fails.

use sha2::{Digest, Sha256};
use vigil_crypto::context::LINK_IDENTITY;
use vigil_crypto::{CompositePublicKey, CompositeSignature, CryptoError, SigningKey};

/// The TLS exporter label (RFC 5705 / RFC 8446 section 7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-vigil-link-binding";
/// Length of the exporter value.
pub const EXPORTER_LEN: usize = 32;
/// Domain label at the start of every statement.
pub const STATEMENT_LABEL: &[u8] = b"vigil link binding v1";

/// Which end of the link a side is: the one that dialled (client) or the
/// one that accepted (server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    Client = 1,
    Server = 2,
}

impl Role {
    /// The role's byte on the wire.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Client),
            2 => Some(Self::Server),
            _ => None,
        }
    }

    /// The role label inside the statement.
    pub fn label(self) -> &'static [u8] {
        match self {
            Self::Client => b"client",
            Self::Server => b"server",
        }
    }
}

/// Everything a binding signature covers, as both sides see it.
#[derive(Clone, Debug)]
pub struct BindingStatement<'a> {
    pub role: Role,
    pub exporter: [u8; EXPORTER_LEN],
    pub client_certificate: &'a [u8],
    pub server_certificate: &'a [u8],
    pub client_key: &'a CompositePublicKey,
    pub server_key: &'a CompositePublicKey,
}

impl BindingStatement<'_> {
    /// The signed bytes:
    /// `len(label) || label || len(role) || role || exporter ||
    /// SHA-256(client cert) || SHA-256(server cert) || client key || server key`
    /// (lengths as one byte).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + 2 * vigil_crypto::composite::PUBLIC_KEY_LEN);
        push_labelled(&mut out, STATEMENT_LABEL);
        push_labelled(&mut out, self.role.label());
        out.extend_from_slice(&self.exporter);
        out.extend_from_slice(&Sha256::digest(self.client_certificate));
        out.extend_from_slice(&Sha256::digest(self.server_certificate));
        out.extend_from_slice(self.client_key.as_bytes());
        out.extend_from_slice(self.server_key.as_bytes());
        out
    }

    /// Signs the statement; `key` must be the key of the statement's role.
    pub fn sign(&self, key: &SigningKey) -> Result<CompositeSignature, CryptoError> {
        key.sign(&self.to_bytes(), LINK_IDENTITY)
    }

    /// Verifies a signature by the key of the statement's role.
    pub fn verify(&self, signature: &CompositeSignature) -> Result<(), CryptoError> {
        let signer = match self.role {
            Role::Client => self.client_key,
            Role::Server => self.server_key,
        };
        signer.verify(&self.to_bytes(), LINK_IDENTITY, signature)
    }
}

fn push_labelled(out: &mut Vec<u8>, label: &[u8]) {
    // Labels are compile-time constants well below 256 bytes.
    out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(label);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        client: SigningKey,
        server: SigningKey,
    }

    fn statement<'a>(f: &'a Fixture, role: Role, exporter: u8) -> BindingStatement<'a> {
        BindingStatement {
            role,
            exporter: [exporter; EXPORTER_LEN],
            client_certificate: b"client cert",
            server_certificate: b"server cert",
            client_key: f.client.public_key(),
            server_key: f.server.public_key(),
        }
    }

    #[test]
    fn binding_verifies_only_for_its_own_session_and_role() {
        let f = Fixture {
            client: SigningKey::generate(),
            server: SigningKey::generate(),
        };
        let signed = statement(&f, Role::Client, 7);
        let sig = signed.sign(&f.client).unwrap();
        signed.verify(&sig).unwrap();

        // Relayed into another session: another exporter value.
        assert!(statement(&f, Role::Client, 8).verify(&sig).is_err());
        // Replayed as the other role.
        assert!(statement(&f, Role::Server, 7).verify(&sig).is_err());
        // Other transport certificate.
        let mut other = statement(&f, Role::Client, 7);
        other.server_certificate = b"mallory cert";
        assert!(other.verify(&sig).is_err());
        // Signed with the wrong key for the role.
        let wrong = statement(&f, Role::Server, 7).sign(&f.client).unwrap();
        assert!(statement(&f, Role::Server, 7).verify(&wrong).is_err());
        // Signed under another context.
        let other_ctx = f
            .client
            .sign(&signed.to_bytes(), vigil_crypto::context::PACKAGE)
            .unwrap();
        assert!(signed.verify(&other_ctx).is_err());
    }

    #[test]
    fn statement_layout_is_stable() {
        let f = Fixture {
            client: SigningKey::generate(),
            server: SigningKey::generate(),
        };
        let bytes = statement(&f, Role::Server, 1).to_bytes();
        assert_eq!(bytes[0] as usize, STATEMENT_LABEL.len());
        let role_at = 1 + STATEMENT_LABEL.len();
        assert_eq!(&bytes[role_at + 1..role_at + 7], b"server");
        let expected_len = 1 + STATEMENT_LABEL.len() + 1 + 6 + 32 + 32 + 32 + 2 * 1984;
        assert_eq!(bytes.len(), expected_len);
    }
}
