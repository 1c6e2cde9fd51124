//! Signed operator decisions on held tool calls: the statement an operator
//! signs (`vigil approve --key`, `vigil deny --key`), and the rule a
//! verifier applies to each `approval.decided` entry: a signature in it
//! must verify, with the composite key the entry names, over the exact
//! statement text it carries, and the statement must say what the entry
//! says (same held call, same answer). docs/ledger-format.md §1.6.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use vigil_crypto::{context, keyfile, CompositePublicKey, SigningKey};

use crate::entry::Entry;

/// The kind of the entry recording an operator's decision.
pub const KIND_APPROVAL_DECIDED: &str = "approval.decided";

/// The statement format version this code writes and reads.
pub const STATEMENT_VERSION: u32 = 1;

/// What an operator signs: one answer to one held call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub v: u32,
    /// The held call's id (`vigil approvals`).
    pub approval_id: String,
    pub agent: String,
    pub tool: String,
    /// Hex SHA-256 of the held call's arguments (their JSON text).
    pub arguments_sha256: String,
    /// `approve` or `deny`.
    pub answer: String,
    pub reason: String,
    /// Unix seconds when the operator signed.
    pub decided_at: u64,
}

/// A statement, its signature and the signer's public key, as stored in
/// the `approval.decided` entry's details (`statement`, `signature`,
/// `key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// The statement's JSON text exactly as signed.
    pub statement: String,
    /// The composite signature, base64.
    pub signature: String,
    /// The signer's public key as a `.pub` line.
    pub key: String,
}

/// Why a signed statement does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error("the statement is not valid: {0}")]
    Malformed(String),
    #[error("statement version {0} is not supported")]
    Version(u32),
    #[error("the signer's key is not a composite public key line")]
    BadKey,
    #[error("the signature does not verify for the named key")]
    BadSignature,
}

impl SignedStatement {
    /// Signs the JSON text of `statement` with `key` under `ctx`.
    pub fn sign_json<T: Serialize>(
        statement: &T,
        key: &SigningKey,
        ctx: &[u8],
    ) -> Result<Self, StatementError> {
        let text = serde_json::to_string(statement)
            .map_err(|e| StatementError::Malformed(e.to_string()))?;
        let signature = key
            .sign(text.as_bytes(), ctx)
            .map_err(|e| StatementError::Malformed(e.to_string()))?;
        Ok(Self {
            statement: text,
            signature: base64::engine::general_purpose::STANDARD.encode(signature.as_bytes()),
            key: keyfile::public_key_line(key.public_key(), None),
        })
    }

    /// Verifies the signature under `ctx`; returns the signer's key.
    pub fn verify(&self, ctx: &[u8]) -> Result<CompositePublicKey, StatementError> {
        let (key, _) =
            keyfile::parse_public_key_line(&self.key).map_err(|_| StatementError::BadKey)?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| StatementError::BadSignature)?;
        key.verify_bytes(self.statement.as_bytes(), ctx, &signature)
            .map_err(|_| StatementError::BadSignature)?;
        Ok(key)
    }

    /// Signs an approval `statement` with `key`.
    pub fn sign(statement: &Statement, key: &SigningKey) -> Result<Self, StatementError> {
        Self::sign_json(statement, key, context::APPROVAL)
    }

    /// Verifies an approval's signature and returns the statement and the
    /// key.
    pub fn open(&self) -> Result<(Statement, CompositePublicKey), StatementError> {
        let key = self.verify(context::APPROVAL)?;
        let statement: Statement = serde_json::from_str(&self.statement)
            .map_err(|e| StatementError::Malformed(e.to_string()))?;
        if statement.v != STATEMENT_VERSION {
            return Err(StatementError::Version(statement.v));
        }
        Ok((statement, key))
    }
}

/// The verifier's rule for one entry: `Ok(true)` for an `approval.decided`
/// entry with a signature that holds, `Ok(false)` for any other entry or
/// an unsigned decision, `Err` with the reason otherwise.
pub fn check_entry(e: &Entry) -> Result<bool, String> {
    if e.kind != KIND_APPROVAL_DECIDED {
        return Ok(false);
    }
    let details: serde_json::Value =
        serde_json::from_str(&e.details).map_err(|e| format!("its details are not JSON: {e}"))?;
    if details.get("signature").is_none() {
        return Ok(false);
    }
    let signed: SignedStatement = serde_json::from_value(details.clone())
        .map_err(|e| format!("its signed decision is incomplete: {e}"))?;
    let (statement, key) = signed
        .open()
        .map_err(|e| format!("operator decision: {e}"))?;
    let field = |name: &str| details.get(name).and_then(|v| v.as_str()).unwrap_or("");
    if field("key_id") != key.key_id().to_string() {
        return Err("operator decision: `key_id` is not the id of the signing key".into());
    }
    if field("approval_id") != statement.approval_id {
        return Err("operator decision: the signed statement is for another held call".into());
    }
    let decision = match statement.answer.as_str() {
        "approve" => "allow",
        "deny" => "deny",
        other => return Err(format!("operator decision: unknown answer `{other}`")),
    };
    if e.decision != decision {
        return Err(format!(
            "operator decision: the entry says `{}` but the operator signed `{}`",
            e.decision, statement.answer
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(answer: &str) -> Statement {
        Statement {
            v: STATEMENT_VERSION,
            approval_id: "0a1b2c".into(),
            agent: "alice".into(),
            tool: "wire".into(),
            arguments_sha256: "00".repeat(32),
            answer: answer.into(),
            reason: "ticket 7".into(),
            decided_at: 1,
        }
    }

    fn entry(signed: &SignedStatement, key_id: &str, decision: &str) -> Entry {
        let mut details = serde_json::to_value(signed).unwrap();
        details["approval_id"] = "0a1b2c".into();
        details["key_id"] = key_id.into();
        Entry {
            index: 3,
            timestamp_ns: 1,
            prev: [0; 32],
            kind: KIND_APPROVAL_DECIDED.into(),
            actor: "operator:jane".into(),
            subject: "tool:wire".into(),
            decision: decision.into(),
            details: details.to_string(),
            payload: None,
        }
    }

    #[test]
    fn a_signed_decision_verifies_and_every_forgery_is_named() {
        let jane = SigningKey::generate();
        let id = jane.public_key().key_id().to_string();
        let signed = SignedStatement::sign(&statement("approve"), &jane).unwrap();
        assert_eq!(check_entry(&entry(&signed, &id, "allow")), Ok(true));

        // The entry says deny, the operator signed approve.
        let err = check_entry(&entry(&signed, &id, "deny")).unwrap_err();
        assert!(err.contains("signed `approve`"), "{err}");

        // The statement edited after signing.
        let mut edited = signed.clone();
        edited.statement = edited.statement.replace("ticket 7", "ticket 8");
        let err = check_entry(&entry(&edited, &id, "allow")).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");

        // Another key named as the signer.
        let mallory = SigningKey::generate();
        let mut swapped = signed.clone();
        swapped.key = keyfile::public_key_line(mallory.public_key(), None);
        let mallory_id = mallory.public_key().key_id().to_string();
        let err = check_entry(&entry(&swapped, &mallory_id, "allow")).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");

        // The right key, but the entry names another key id.
        let err = check_entry(&entry(&signed, &mallory_id, "allow")).unwrap_err();
        assert!(err.contains("key_id"), "{err}");
    }
}
