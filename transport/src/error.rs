//! Typed errors of links and tunnels. Each says what failed in words an
//! operator can act on.

use std::net::SocketAddr;
use std::time::Duration;

use vigil_crypto::{CryptoError, KeyId};

use crate::message::{LinkRefusalCode, MessageError, TunnelRefusalCode};
use crate::target::Target;
use crate::tls::TlsError;

/// Everything that can go wrong while opening or using a link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("could not open the QUIC endpoint on {addr}: {source}")]
    Endpoint {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("could not start a QUIC connection to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: quinn::ConnectError,
    },
    #[error("QUIC connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("link setup did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the peer refused the link ({code:?}): {reason}")]
    Refused {
        code: LinkRefusalCode,
        reason: String,
    },
    #[error("the peer presented composite key {presented}, but {expected} was expected; check --peer-key")]
    PeerKeyMismatch { presented: KeyId, expected: KeyId },
    #[error("the peer's identity binding does not verify ({0}); the connection may be relayed")]
    BindingFailed(#[source] CryptoError),
    #[error("link protocol violation: {0}")]
    Protocol(String),
    #[error("malformed link message: {0}")]
    Message(#[from] MessageError),
    #[error("link stream failed: {0}")]
    Stream(String),
    #[error("could not derive the TLS exporter value: {0}")]
    Exporter(String),
    #[error("the peer refused the tunnel to {target} ({code:?}): {reason}")]
    TunnelRefused {
        target: Target,
        code: TunnelRefusalCode,
        reason: String,
    },
    #[error("could not listen for tunnel connections on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl LinkError {
    /// Whether the peer answered: it refused the link, or what it sent did
    /// not prove the expected identity. Such a failure says nothing against
    /// the network path, so dialling again would change nothing.
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. }
                | Self::PeerKeyMismatch { .. }
                | Self::BindingFailed(_)
                | Self::Protocol(_)
                | Self::Message(_)
        )
    }
}
