//! Unit tests of the composite scheme, including the draft's published vector.

use super::*;
use base64::Engine as _;

struct Vector {
    message: Vec<u8>,
    ctx: Vec<u8>,
    public_key: Vec<u8>,
    signature: Vec<u8>,
    signature_with_ctx: Vec<u8>,
}

fn published_vector() -> Vector {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/composite-mldsa65-ed25519.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the published vector {} must exist: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("vector is JSON");
    assert_eq!(json["tcId"], "id-MLDSA65-Ed25519-SHA512");
    let field = |name: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(json[name].as_str().expect("field is a string"))
            .expect("field is base64")
    };
    Vector {
        message: field("m"),
        ctx: field("ctx"),
        public_key: field("pk"),
        signature: field("s"),
        signature_with_ctx: field("sWithContext"),
    }
}

#[test]
fn published_vector_verifies_with_empty_ctx() {
    let v = published_vector();
    let pk = CompositePublicKey::from_bytes(&v.public_key).expect("vector key parses");
    pk.verify_bytes(&v.message, b"", &v.signature)
        .expect("`s` verifies with empty ctx");
    assert!(pk.verify_bytes(&v.message, &v.ctx, &v.signature).is_err());
}

#[test]
fn published_vector_verifies_with_ctx() {
    let v = published_vector();
    let pk = CompositePublicKey::from_bytes(&v.public_key).expect("vector key parses");
    pk.verify_bytes(&v.message, &v.ctx, &v.signature_with_ctx)
        .expect("`sWithContext` verifies with the given ctx");
    assert!(pk
        .verify_bytes(&v.message, b"", &v.signature_with_ctx)
        .is_err());
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

fn verifies(pk: &[u8], message: &[u8], ctx: &[u8], sig: &[u8]) -> bool {
    CompositePublicKey::from_bytes(pk)
        .and_then(|pk| pk.verify_bytes(message, ctx, sig))
        .is_ok()
}

#[test]
fn every_single_bit_flip_fails() {
    let v = published_vector();
    assert!(verifies(&v.public_key, &v.message, b"", &v.signature));
    for bit in 0..v.public_key.len() * 8 {
        let pk = flip(&v.public_key, bit);
        assert!(
            !verifies(&pk, &v.message, b"", &v.signature),
            "public key bit {bit}"
        );
    }
    for bit in 0..v.signature.len() * 8 {
        let sig = flip(&v.signature, bit);
        assert!(
            !verifies(&v.public_key, &v.message, b"", &sig),
            "signature bit {bit}"
        );
    }
    for bit in 0..v.message.len() * 8 {
        let m = flip(&v.message, bit);
        assert!(
            !verifies(&v.public_key, &m, b"", &v.signature),
            "message bit {bit}"
        );
    }
}

#[test]
fn sign_then_verify_round_trip() {
    let key = SigningKey::generate();
    let sig = key.sign(b"hello", b"app").expect("sign");
    assert_eq!(sig.as_bytes().len(), SIGNATURE_LEN);
    assert_eq!(key.public_key().as_bytes().len(), PUBLIC_KEY_LEN);
    key.public_key()
        .verify(b"hello", b"app", &sig)
        .expect("verify");
    let other = SigningKey::generate();
    assert!(other.public_key().verify(b"hello", b"app", &sig).is_err());
}

#[test]
fn deterministic_signatures_repeat_and_verify() {
    let key = SigningKey::generate();
    let a = key.sign_deterministic(b"package", b"app").expect("sign");
    let b = key.sign_deterministic(b"package", b"app").expect("sign");
    assert_eq!(a.as_bytes(), b.as_bytes(), "same input, same bytes");
    key.public_key()
        .verify(b"package", b"app", &a)
        .expect("the randomized-path verifier accepts it");
    let other_message = key.sign_deterministic(b"packagf", b"app").expect("sign");
    assert_ne!(a.as_bytes(), other_message.as_bytes());
    let other_ctx = key.sign_deterministic(b"package", b"apq").expect("sign");
    assert_ne!(a.as_bytes(), other_ctx.as_bytes());
    assert!(key.public_key().verify(b"package", b"apq", &a).is_err());
    // The hedged signer draws fresh randomness: it differs in the ML-DSA half
    // only (Ed25519 is deterministic either way).
    let hedged = key.sign(b"package", b"app").expect("sign");
    assert_ne!(
        a.as_bytes()[..MLDSA_SIGNATURE_LEN],
        hedged.as_bytes()[..MLDSA_SIGNATURE_LEN]
    );
    assert_eq!(
        a.as_bytes()[MLDSA_SIGNATURE_LEN..],
        hedged.as_bytes()[MLDSA_SIGNATURE_LEN..]
    );
}

#[test]
fn out_of_range_secret_coefficients_are_refused() {
    let key = SigningKey::generate();
    let sk = key.to_secret_bytes();
    let ml_sk = &sk[..MLDSA_SECRET_KEY_LEN];
    assert!(secret_coefficients_in_range(ml_sk));
    for at in [128, 128 + 639, 128 + 640, 128 + 1407] {
        let mut bad = ml_sk.to_vec();
        bad[at] = 0x9f;
        assert!(!secret_coefficients_in_range(&bad), "byte {at}");
    }
    // t0 is not range-limited: a high nibble there is fine.
    let mut t0 = ml_sk.to_vec();
    t0[128 + 1408] = 0xff;
    assert!(secret_coefficients_in_range(&t0));
    assert!(!secret_coefficients_in_range(&ml_sk[1..]));
}

/// Splices the halves of two signatures over different messages.
fn spliced(mldsa_from: &CompositeSignature, ed_from: &CompositeSignature) -> Vec<u8> {
    let mut out = mldsa_from.as_bytes()[..MLDSA_SIGNATURE_LEN].to_vec();
    out.extend_from_slice(&ed_from.as_bytes()[MLDSA_SIGNATURE_LEN..]);
    out
}

#[test]
fn one_valid_half_is_not_enough() {
    let key = SigningKey::generate();
    let good = key.sign(b"pay 10", b"").expect("sign");
    let other = key.sign(b"pay 10000", b"").expect("sign");

    let only_ed = spliced(&other, &good);
    match key.public_key().verify_bytes(b"pay 10", b"", &only_ed) {
        Err(CryptoError::BadSignature(reason)) => assert!(reason.contains("ML-DSA"), "{reason}"),
        other => panic!("expected ML-DSA half failure, got {other:?}"),
    }

    let only_mldsa = spliced(&good, &other);
    match key.public_key().verify_bytes(b"pay 10", b"", &only_mldsa) {
        Err(CryptoError::BadSignature(reason)) => assert!(reason.contains("Ed25519"), "{reason}"),
        other => panic!("expected Ed25519 half failure, got {other:?}"),
    }
}

#[test]
fn signature_under_one_ctx_fails_under_another() {
    let key = SigningKey::generate();
    let sig = key
        .sign(b"checkpoint body", crate::context::CHECKPOINT)
        .expect("sign");
    key.public_key()
        .verify(b"checkpoint body", crate::context::CHECKPOINT, &sig)
        .expect("same ctx verifies");
    for ctx in crate::context::ALL
        .iter()
        .filter(|c| **c != crate::context::CHECKPOINT)
    {
        assert!(key
            .public_key()
            .verify(b"checkpoint body", ctx, &sig)
            .is_err());
    }
    assert!(key
        .public_key()
        .verify(b"checkpoint body", b"", &sig)
        .is_err());
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    for len in [0, 1, 32, PUBLIC_KEY_LEN - 1, PUBLIC_KEY_LEN + 1, 10_000] {
        assert!(matches!(
            CompositePublicKey::from_bytes(&vec![7u8; len]),
            Err(CryptoError::WrongLength { .. })
        ));
    }
    for len in [0, 64, SIGNATURE_LEN - 1, SIGNATURE_LEN + 1] {
        assert!(matches!(
            CompositeSignature::from_bytes(&vec![7u8; len]),
            Err(CryptoError::WrongLength { .. })
        ));
    }
    for len in [0, SECRET_KEY_LEN - 1, SECRET_KEY_LEN + 1] {
        assert!(matches!(
            SigningKey::from_secret_bytes(&vec![7u8; len]),
            Err(CryptoError::WrongLength { .. })
        ));
    }
    let key = SigningKey::generate();
    assert!(matches!(
        key.sign(b"m", &[0u8; 256]),
        Err(CryptoError::ContextTooLong(256))
    ));
    key.sign(b"m", &[0u8; 255])
        .expect("255-byte ctx is allowed");
    // Garbage of the right length parses or fails cleanly, never panics.
    let garbage_pk = vec![0xffu8; PUBLIC_KEY_LEN];
    let _ = CompositePublicKey::from_bytes(&garbage_pk)
        .and_then(|pk| pk.verify_bytes(b"m", b"", &[0u8; SIGNATURE_LEN]));
}

#[test]
fn secret_key_round_trip_and_mismatch() {
    let key = SigningKey::generate();
    let bytes = key.to_secret_bytes();
    let loaded = SigningKey::from_secret_bytes(&bytes).expect("round trip");
    assert_eq!(loaded.public_key(), key.public_key());
    // Pair the ML-DSA secret with someone else's ML-DSA public key.
    let other = SigningKey::generate();
    let mut mixed = bytes.to_vec();
    mixed[MLDSA_SECRET_KEY_LEN..MLDSA_SECRET_KEY_LEN + MLDSA_PUBLIC_KEY_LEN]
        .copy_from_slice(&other.public_key().as_bytes()[..MLDSA_PUBLIC_KEY_LEN]);
    assert!(SigningKey::from_secret_bytes(&mixed).is_err());
}

#[test]
fn key_id_and_fingerprint_are_stable() {
    let v = published_vector();
    let pk = CompositePublicKey::from_bytes(&v.public_key).expect("parse");
    let id = pk.key_id();
    assert_eq!(id.to_string().len(), 32);
    assert_eq!(KeyId::parse(&id.to_string()), Some(id));
    assert!(pk.fingerprint().starts_with("SHA256:"));
    assert_eq!(
        pk.key_id(),
        CompositePublicKey::from_bytes(&v.public_key)
            .expect("parse")
            .key_id()
    );
}
