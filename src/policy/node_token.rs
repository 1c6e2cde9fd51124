//! Bearer tokens this node mints for its own agents (`vigil agent token`),
//! for nodes without an identity provider. Sans I/O: the format, minting
//! with a signing function and opening with the node's public key.
//!
//! A token is `vgt1.` + base64url(claims JSON) + `.` + base64url(composite
//! ML-DSA-65 + Ed25519 signature over the text before the second dot, ctx
//! `vigil/agent-token/v1`). Format: docs/agents.md.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use vigil_crypto::{CompositePublicKey, CompositeSignature};

/// The prefix (and format version) of node tokens.
pub const PREFIX: &str = "vgt1.";

/// Longest token text accepted (a signature is about 4.5 KB encoded).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a node token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTokenClaims {
    /// The minting node (`[node] name`).
    pub iss: String,
    /// The agent of `[[agents]]`.
    pub sub: String,
    /// Space-separated scopes (`tools:NAME`, `tools:*`).
    pub scope: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The token's id, for revocation.
    pub jti: String,
}

/// Why a node token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeTokenError {
    #[error("not a node token (it must start with `{PREFIX}`)")]
    NotNodeToken,
    #[error("malformed node token: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify with this node's key")]
    BadSignature,
    #[error("the token was issued by node `{0}`, not this one")]
    WrongIssuer(String),
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is issued in the future ({iat}, now {now})")]
    NotYetValid { iat: i64, now: i64 },
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Mints a token for `claims`, signed by `sign` (the node key with ctx
/// [`vigil_crypto::context::AGENT_TOKEN`]).
pub fn mint(
    claims: &NodeTokenClaims,
    sign: impl FnOnce(&[u8]) -> Result<CompositeSignature, String>,
) -> Result<String, NodeTokenError> {
    let json = serde_json::to_vec(claims).map_err(|e| NodeTokenError::Signing(e.to_string()))?;
    let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let signature = sign(signed.as_bytes()).map_err(NodeTokenError::Signing)?;
    Ok(format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_bytes())
    ))
}

/// Opens `token`: its signature verifies with `key`, it names `issuer`, and
/// it is valid at `now` (with `leeway` seconds for clock skew).
pub fn open(
    token: &str,
    key: &CompositePublicKey,
    issuer: &str,
    now: i64,
    leeway: i64,
) -> Result<NodeTokenClaims, NodeTokenError> {
    if !token.starts_with(PREFIX) {
        return Err(NodeTokenError::NotNodeToken);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(NodeTokenError::Malformed(format!(
            "{} bytes, more than {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    let (signed, signature) = token
        .rsplit_once('.')
        .filter(|(signed, _)| signed.len() > PREFIX.len())
        .ok_or_else(|| NodeTokenError::Malformed("no signature".into()))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| NodeTokenError::Malformed(format!("signature: {e}")))?;
    key.verify_bytes(
        signed.as_bytes(),
        vigil_crypto::context::AGENT_TOKEN,
        &signature,
    )
    .map_err(|_| NodeTokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(&signed[PREFIX.len()..])
        .map_err(|e| NodeTokenError::Malformed(format!("claims: {e}")))?;
    let claims: NodeTokenClaims = serde_json::from_slice(&json)
        .map_err(|e| NodeTokenError::Malformed(format!("claims: {e}")))?;
    if claims.iss != issuer {
        return Err(NodeTokenError::WrongIssuer(claims.iss));
    }
    if claims.exp + leeway <= now {
        return Err(NodeTokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.iat - leeway > now {
        return Err(NodeTokenError::NotYetValid {
            iat: claims.iat,
            now,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_crypto::SigningKey;

    fn claims(exp: i64) -> NodeTokenClaims {
        NodeTokenClaims {
            iss: "node-a".into(),
            sub: "finance".into(),
            scope: "tools:echo".into(),
            iat: 1_000,
            exp,
            jti: "t1".into(),
        }
    }

    fn minted(key: &SigningKey, c: &NodeTokenClaims) -> String {
        mint(c, |m| {
            key.sign(m, vigil_crypto::context::AGENT_TOKEN)
                .map_err(|e| e.to_string())
        })
        .unwrap()
    }

    #[test]
    fn a_minted_token_opens_and_every_change_is_refused() {
        let key = SigningKey::generate();
        let token = minted(&key, &claims(2_000));
        assert!(token.len() < MAX_TOKEN_BYTES);
        let pk = key.public_key();
        assert_eq!(open(&token, pk, "node-a", 1_500, 0), Ok(claims(2_000)));
        assert_eq!(
            open(&token, pk, "node-b", 1_500, 0),
            Err(NodeTokenError::WrongIssuer("node-a".into()))
        );
        assert!(matches!(
            open(&token, pk, "node-a", 2_000, 0),
            Err(NodeTokenError::Expired { .. })
        ));
        assert!(matches!(
            open(&token, pk, "node-a", 900, 30),
            Err(NodeTokenError::NotYetValid { .. })
        ));
        // Claims swapped under the same signature: a longer lifetime.
        let forged_claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999)).unwrap());
        let sig = token.rsplit_once('.').unwrap().1;
        let forged = format!("{PREFIX}{forged_claims}.{sig}");
        assert_eq!(
            open(&forged, pk, "node-a", 1_500, 0),
            Err(NodeTokenError::BadSignature)
        );
        // Another node's key.
        let other = SigningKey::generate();
        assert_eq!(
            open(&token, other.public_key(), "node-a", 1_500, 0),
            Err(NodeTokenError::BadSignature)
        );
        assert!(matches!(
            open("vgt1.", pk, "node-a", 0, 0),
            Err(NodeTokenError::Malformed(_))
        ));
        assert_eq!(
            open("eyJhbGciOi.x.y", pk, "node-a", 0, 0),
            Err(NodeTokenError::NotNodeToken)
        );
    }
}
