//! The link protocol messages (docs/link-protocol.md, version 1), without any
//! I/O: encoding, and strict decoding with length limits.
//!
//! Every message is one frame: `version (u8) | kind (u8) | length (u16 BE) |
//! body`. Each kind has its own body limit, checked from the header before
//! any body byte is read, and its body must be consumed exactly.

use vigil_crypto::composite::{PUBLIC_KEY_LEN, SIGNATURE_LEN};
use vigil_crypto::{CompositePublicKey, CompositeSignature};

use crate::binding::Role;
use crate::target::{Target, MAX_TARGET_LEN};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Length of the frame header.
pub const HEADER_LEN: usize = 4;
/// Exact body length of a binding: role, composite public key, signature.
pub const BINDING_BODY_LEN: usize = 1 + PUBLIC_KEY_LEN + SIGNATURE_LEN;
/// Exact body length of an identity announcement: role, composite public key.
pub const IDENTITY_BODY_LEN: usize = 1 + PUBLIC_KEY_LEN;
/// The longest reason text carried by a refusal.
pub const MAX_REASON_LEN: usize = 512;

/// Frame kinds on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageKind {
    Binding = 1,
    LinkRefused = 2,
    OpenTunnel = 3,
    TunnelAccepted = 4,
    TunnelRefused = 5,
    Identity = 6,
    LinkAccepted = 7,
}

impl MessageKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Binding,
            2 => Self::LinkRefused,
            3 => Self::OpenTunnel,
            4 => Self::TunnelAccepted,
            5 => Self::TunnelRefused,
            6 => Self::Identity,
            7 => Self::LinkAccepted,
            _ => return None,
        })
    }

    /// The smallest and largest body this kind may have.
    fn body_limits(self) -> (usize, usize) {
        match self {
            Self::Binding => (BINDING_BODY_LEN, BINDING_BODY_LEN),
            Self::LinkRefused | Self::TunnelRefused => (1, 1 + MAX_REASON_LEN),
            Self::OpenTunnel => (1, MAX_TARGET_LEN),
            Self::TunnelAccepted | Self::LinkAccepted => (0, 0),
            Self::Identity => (IDENTITY_BODY_LEN, IDENTITY_BODY_LEN),
        }
    }
}

/// Why the serving node refused a link (code on the wire in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkRefusalCode {
    /// (1) The composite key is not in the trust store.
    UnknownKey = 1,
    /// (2) The composite key was trusted once and has been revoked.
    RevokedKey = 2,
    /// (3) The binding signature does not verify for this connection.
    FailedBinding = 3,
    /// (4) The peer broke the protocol (wrong message, malformed bytes).
    ProtocolViolation = 4,
    /// (5) The serving node could not record its decision in its ledger.
    AuditUnavailable = 5,
}

/// Why the serving node refused a tunnel (code on the wire in parentheses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TunnelRefusalCode {
    /// (1) The target is not allowed for this peer.
    TargetNotAllowed = 1,
    /// (2) The target is allowed but could not be reached.
    TargetUnreachable = 2,
    /// (3) The peer's key is no longer trusted (revoked since the link opened).
    PeerNotTrusted = 3,
    /// (4) The open request was malformed.
    BadRequest = 4,
    /// (5) The serving node could not record its decision in its ledger.
    AuditUnavailable = 5,
}

macro_rules! code_from_byte {
    ($ty:ident { $($v:ident),* }) => {
        impl $ty {
            fn from_byte(b: u8) -> Option<Self> {
                $(if b == Self::$v as u8 { return Some(Self::$v); })*
                None
            }
        }
    };
}
code_from_byte!(LinkRefusalCode {
    UnknownKey,
    RevokedKey,
    FailedBinding,
    ProtocolViolation,
    AuditUnavailable
});
code_from_byte!(TunnelRefusalCode {
    TargetNotAllowed,
    TargetUnreachable,
    PeerNotTrusted,
    BadRequest,
    AuditUnavailable
});

/// One link protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkMessage {
    /// A side's identity binding: its composite key and its composite
    /// signature over the binding statement (see [`crate::binding`]).
    Binding {
        role: Role,
        key: Box<CompositePublicKey>,
        signature: CompositeSignature,
    },
    /// The client's first message: the composite key it will bind, sent
    /// before its signature so that the server can sign its own statement
    /// (which covers both keys) without waiting for the client's.
    Identity {
        role: Role,
        key: Box<CompositePublicKey>,
    },
    /// The serving node verified the client's binding and trusts its key:
    /// tunnels may be opened.
    LinkAccepted,
    /// The serving node refuses the link; the connection closes after it.
    LinkRefused {
        code: LinkRefusalCode,
        reason: String,
    },
    /// First message on a tunnel stream: connect me to this target.
    OpenTunnel { target: Target },
    /// The target is connected; raw bytes follow in both directions.
    TunnelAccepted,
    /// The tunnel is refused; the stream ends after it.
    TunnelRefused {
        code: TunnelRefusalCode,
        reason: String,
    },
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(
        "link protocol version {0} is not supported (this node speaks version {PROTOCOL_VERSION})"
    )]
    UnsupportedVersion(u8),
    #[error("unknown link message kind {0}")]
    UnknownKind(u8),
    #[error("{kind:?} message body is {len} bytes; allowed are {min} to {max}")]
    BadLength {
        kind: MessageKind,
        len: usize,
        min: usize,
        max: usize,
    },
    #[error("message is incomplete: {needed} more bytes needed")]
    Incomplete { needed: usize },
    #[error("unknown role {0} in binding")]
    UnknownRole(u8),
    #[error("unknown refusal code {0}")]
    UnknownCode(u8),
    #[error("reason text is not valid UTF-8")]
    ReasonNotUtf8,
    #[error("invalid key or signature in binding: {0}")]
    BadBinding(String),
    #[error("invalid tunnel target: {0}")]
    BadTarget(String),
}

/// A parsed frame header: which kind, and how many body bytes follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: MessageKind,
    pub body_len: usize,
}

impl Header {
    /// Parses and checks a header: version, kind and the kind's body limits.
    pub fn decode(bytes: [u8; HEADER_LEN]) -> Result<Self, MessageError> {
        if bytes[0] != PROTOCOL_VERSION {
            return Err(MessageError::UnsupportedVersion(bytes[0]));
        }
        let kind = MessageKind::from_byte(bytes[1]).ok_or(MessageError::UnknownKind(bytes[1]))?;
        let body_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let (min, max) = kind.body_limits();
        if body_len < min || body_len > max {
            return Err(MessageError::BadLength {
                kind,
                len: body_len,
                min,
                max,
            });
        }
        Ok(Self { kind, body_len })
    }
}

impl LinkMessage {
    /// The frame kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Binding { .. } => MessageKind::Binding,
            Self::LinkRefused { .. } => MessageKind::LinkRefused,
            Self::OpenTunnel { .. } => MessageKind::OpenTunnel,
            Self::TunnelAccepted => MessageKind::TunnelAccepted,
            Self::TunnelRefused { .. } => MessageKind::TunnelRefused,
            Self::Identity { .. } => MessageKind::Identity,
            Self::LinkAccepted => MessageKind::LinkAccepted,
        }
    }

    /// Encodes the message as one frame. Reason texts longer than
    /// [`MAX_REASON_LEN`] are cut at a character boundary.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            Self::Binding {
                role,
                key,
                signature,
            } => {
                body.push(*role as u8);
                body.extend_from_slice(key.as_bytes());
                body.extend_from_slice(signature.as_bytes());
            }
            Self::LinkRefused { code, reason } => {
                body.push(*code as u8);
                body.extend_from_slice(truncate(reason).as_bytes());
            }
            Self::OpenTunnel { target } => body.extend_from_slice(target.to_string().as_bytes()),
            Self::TunnelAccepted | Self::LinkAccepted => {}
            Self::Identity { role, key } => {
                body.push(*role as u8);
                body.extend_from_slice(key.as_bytes());
            }
            Self::TunnelRefused { code, reason } => {
                body.push(*code as u8);
                body.extend_from_slice(truncate(reason).as_bytes());
            }
        }
        // Every body is bounded well below u16::MAX by construction.
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(PROTOCOL_VERSION);
        out.push(self.kind() as u8);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes the body of a frame whose header was already checked.
    pub fn decode_body(header: Header, body: &[u8]) -> Result<Self, MessageError> {
        let (min, max) = header.kind.body_limits();
        if body.len() < min || body.len() > max {
            return Err(MessageError::BadLength {
                kind: header.kind,
                len: body.len(),
                min,
                max,
            });
        }
        if body.len() != header.body_len {
            return Err(MessageError::Incomplete {
                needed: header.body_len.saturating_sub(body.len()),
            });
        }
        match header.kind {
            MessageKind::Binding => {
                let role = Role::from_byte(body[0]).ok_or(MessageError::UnknownRole(body[0]))?;
                let (key, signature) = body[1..].split_at(PUBLIC_KEY_LEN);
                let key = CompositePublicKey::from_bytes(key)
                    .map(Box::new)
                    .map_err(|e| MessageError::BadBinding(e.to_string()))?;
                let signature = CompositeSignature::from_bytes(signature)
                    .map_err(|e| MessageError::BadBinding(e.to_string()))?;
                Ok(Self::Binding {
                    role,
                    key,
                    signature,
                })
            }
            MessageKind::LinkRefused => Ok(Self::LinkRefused {
                code: LinkRefusalCode::from_byte(body[0])
                    .ok_or(MessageError::UnknownCode(body[0]))?,
                reason: reason_text(&body[1..])?,
            }),
            MessageKind::TunnelRefused => Ok(Self::TunnelRefused {
                code: TunnelRefusalCode::from_byte(body[0])
                    .ok_or(MessageError::UnknownCode(body[0]))?,
                reason: reason_text(&body[1..])?,
            }),
            MessageKind::OpenTunnel => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| MessageError::BadTarget("not ASCII".into()))?;
                let target =
                    Target::parse(text).map_err(|e| MessageError::BadTarget(e.to_string()))?;
                Ok(Self::OpenTunnel { target })
            }
            MessageKind::TunnelAccepted => Ok(Self::TunnelAccepted),
            MessageKind::LinkAccepted => Ok(Self::LinkAccepted),
            MessageKind::Identity => {
                let role = Role::from_byte(body[0]).ok_or(MessageError::UnknownRole(body[0]))?;
                let key = CompositePublicKey::from_bytes(&body[1..])
                    .map(Box::new)
                    .map_err(|e| MessageError::BadBinding(e.to_string()))?;
                Ok(Self::Identity { role, key })
            }
        }
    }

    /// Decodes one frame from the start of `bytes`, returning the message
    /// and the number of bytes it used. Trailing bytes are left alone.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), MessageError> {
        let head: [u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| MessageError::Incomplete {
                needed: HEADER_LEN.saturating_sub(bytes.len()),
            })?;
        let header = Header::decode(head)?;
        let end = HEADER_LEN + header.body_len;
        let body = bytes
            .get(HEADER_LEN..end)
            .ok_or_else(|| MessageError::Incomplete {
                needed: end.saturating_sub(bytes.len()),
            })?;
        Ok((Self::decode_body(header, body)?, end))
    }
}

fn truncate(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut cut = MAX_REASON_LEN;
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    &reason[..cut]
}

fn reason_text(bytes: &[u8]) -> Result<String, MessageError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| MessageError::ReasonNotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_crypto::SigningKey;

    fn roundtrip(m: &LinkMessage) {
        let bytes = m.encode();
        let (back, used) = LinkMessage::decode(&bytes).unwrap();
        assert_eq!(&back, m);
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn every_kind_roundtrips() {
        let key = SigningKey::generate();
        let signature = key.sign(b"x", b"ctx").unwrap();
        roundtrip(&LinkMessage::Binding {
            role: Role::Client,
            key: Box::new(key.public_key().clone()),
            signature,
        });
        roundtrip(&LinkMessage::LinkRefused {
            code: LinkRefusalCode::RevokedKey,
            reason: "key revoked".into(),
        });
        roundtrip(&LinkMessage::OpenTunnel {
            target: Target::parse("db.internal:5432").unwrap(),
        });
        roundtrip(&LinkMessage::TunnelAccepted);
        roundtrip(&LinkMessage::Identity {
            role: Role::Client,
            key: Box::new(key.public_key().clone()),
        });
        roundtrip(&LinkMessage::LinkAccepted);
        roundtrip(&LinkMessage::TunnelRefused {
            code: TunnelRefusalCode::TargetNotAllowed,
            reason: String::new(),
        });
    }

    #[test]
    fn header_limits_are_checked_before_the_body() {
        assert_eq!(
            Header::decode([2, 1, 0, 0]),
            Err(MessageError::UnsupportedVersion(2))
        );
        assert_eq!(
            Header::decode([1, 9, 0, 0]),
            Err(MessageError::UnknownKind(9))
        );
        assert!(matches!(
            Header::decode([1, 1, 0xff, 0xff]),
            Err(MessageError::BadLength { .. })
        ));
        assert!(matches!(
            Header::decode([1, 4, 0, 1]),
            Err(MessageError::BadLength { .. })
        ));
        assert!(matches!(
            Header::decode([1, 3, 0, 0]),
            Err(MessageError::BadLength { .. })
        ));
        let max = u16::try_from(1 + MAX_REASON_LEN + 1).unwrap().to_be_bytes();
        assert!(Header::decode([1, 2, max[0], max[1]]).is_err());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        // Unknown refusal code.
        assert_eq!(
            LinkMessage::decode(&[1, 2, 0, 1, 99]),
            Err(MessageError::UnknownCode(99))
        );
        // Reason not UTF-8.
        assert_eq!(
            LinkMessage::decode(&[1, 5, 0, 2, 1, 0xff]),
            Err(MessageError::ReasonNotUtf8)
        );
        // Target without a port.
        let mut open = vec![1, 3, 0, 4];
        open.extend_from_slice(b"host");
        assert!(matches!(
            LinkMessage::decode(&open),
            Err(MessageError::BadTarget(_))
        ));
        // Binding with an unknown role.
        let key = SigningKey::generate();
        let mut bytes = LinkMessage::Binding {
            role: Role::Server,
            key: Box::new(key.public_key().clone()),
            signature: key.sign(b"x", b"").unwrap(),
        }
        .encode();
        bytes[HEADER_LEN] = 7;
        assert_eq!(
            LinkMessage::decode(&bytes),
            Err(MessageError::UnknownRole(7))
        );
        // Truncated frames say how much is missing.
        assert_eq!(
            LinkMessage::decode(&bytes[..100]),
            Err(MessageError::Incomplete {
                needed: bytes.len() - 100
            })
        );
        assert_eq!(
            LinkMessage::decode(&[1]),
            Err(MessageError::Incomplete { needed: 3 })
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let m = LinkMessage::TunnelRefused {
            code: TunnelRefusalCode::BadRequest,
            reason: "é".repeat(400),
        };
        let (back, _) = LinkMessage::decode(&m.encode()).unwrap();
        match back {
            LinkMessage::TunnelRefused { reason, .. } => {
                assert_eq!(reason.len(), MAX_REASON_LEN);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn trailing_bytes_are_not_consumed() {
        let mut bytes = LinkMessage::TunnelAccepted.encode();
        bytes.extend_from_slice(b"payload");
        let (m, used) = LinkMessage::decode(&bytes).unwrap();
        assert_eq!(m, LinkMessage::TunnelAccepted);
        assert_eq!(used, HEADER_LEN);
    }
}
