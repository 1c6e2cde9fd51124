//! Key files: `NAME.key` (secret, mode 0600, optionally passphrase-protected
//! with argon2id + XChaCha20-Poly1305) and `NAME.pub` (one line:
//! `vigil-mldsa65-ed25519 <base64 public key> [comment]`). Formats are
//! documented in `docs/key-files.md`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand_core::RngCore as _;
use zeroize::Zeroizing;

use crate::composite::{CompositePublicKey, SigningKey, ALGORITHM};
use crate::CryptoError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// First line of an unprotected secret key file.
pub const PLAIN_HEADER: &str = "vigil-secret-key-v1 plain";
/// Prefix of the first line of a passphrase-protected secret key file; the
/// argon2id parameters follow (`m=KiB t=passes p=lanes`).
pub const SEALED_HEADER: &str = "vigil-secret-key-v1 argon2id-xchacha20poly1305";

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
/// argon2id memory cost in KiB used for new files (64 MiB).
const ARGON2_M_KIB: u32 = 65_536;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;
/// Upper bound accepted when reading, so a hostile file cannot ask for
/// unbounded memory.
const ARGON2_M_KIB_MAX: u32 = 4 * 1024 * 1024;

fn format_err(path: &Path, message: impl Into<String>) -> CryptoError {
    CryptoError::KeyFileFormat {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CryptoError + '_ {
    move |source| CryptoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes a public key as a `.pub` line.
pub fn public_key_line(key: &CompositePublicKey, comment: Option<&str>) -> String {
    let mut line = format!("{ALGORITHM} {}", B64.encode(key.as_bytes()));
    if let Some(c) = comment.filter(|c| !c.trim().is_empty()) {
        line.push(' ');
        line.push_str(c.trim());
    }
    line
}

/// Parses a `.pub` line (`vigil-mldsa65-ed25519 <base64> [comment]`).
/// Returns the key and the comment, if any.
pub fn parse_public_key_line(
    text: &str,
) -> Result<(CompositePublicKey, Option<String>), CryptoError> {
    let line = text.trim();
    let mut parts = line.splitn(3, char::is_whitespace);
    let alg = parts.next().unwrap_or_default();
    if alg != ALGORITHM {
        return Err(CryptoError::BadPublicKey(
            "public key line (it must start with `vigil-mldsa65-ed25519`)",
        ));
    }
    let b64 = parts.next().ok_or(CryptoError::BadPublicKey(
        "public key line (no key after the algorithm)",
    ))?;
    let bytes = B64
        .decode(b64.trim())
        .map_err(|source| CryptoError::Base64 {
            what: "public key",
            source,
        })?;
    let key = CompositePublicKey::from_bytes(&bytes)?;
    let comment = parts
        .next()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Ok((key, comment))
}

/// Reads a `.pub` file.
pub fn read_public_key(path: &Path) -> Result<CompositePublicKey, CryptoError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    parse_public_key_line(&text)
        .map(|(k, _)| k)
        .map_err(|e| format_err(path, e.to_string()))
}

/// Writes `NAME.key` (mode 0600, never overwriting) and `NAME.pub`.
/// With a passphrase the secret is sealed with argon2id + XChaCha20-Poly1305.
pub fn write_key_pair(
    base: &Path,
    key: &SigningKey,
    comment: Option<&str>,
    passphrase: Option<&[u8]>,
) -> Result<(PathBuf, PathBuf), CryptoError> {
    let key_path = with_suffix(base, "key");
    let pub_path = with_suffix(base, "pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(CryptoError::AlreadyExists { path: p.clone() });
        }
    }
    let secret = encode_secret(key, passphrase)?;
    write_new(&key_path, secret.as_bytes(), 0o600)?;
    let line = public_key_line(key.public_key(), comment) + "\n";
    write_new(&pub_path, line.as_bytes(), 0o644)?;
    Ok((key_path, pub_path))
}

/// `base` with `.suffix` appended (not replacing an existing extension).
pub fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CryptoError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CryptoError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            io_err(path)(e)
        }
    })?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Encodes a secret key file body (header line + base64 line).
pub fn encode_secret(
    key: &SigningKey,
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<String>, CryptoError> {
    let secret = key.to_secret_bytes();
    let Some(passphrase) = passphrase else {
        return Ok(Zeroizing::new(format!(
            "{PLAIN_HEADER}\n{}\n",
            B64.encode(&*secret)
        )));
    };
    let header = format!("{SEALED_HEADER} m={ARGON2_M_KIB} t={ARGON2_T} p={ARGON2_P}");
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rand_core::OsRng.fill_bytes(&mut salt);
    rand_core::OsRng.fill_bytes(&mut nonce);
    let kek = derive_kek(passphrase, &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
    let cipher = XChaCha20Poly1305::new((&*kek).into());
    let sealed = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &secret,
                aad: header.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Kdf("encryption failed".into()))?;
    let mut body = Vec::with_capacity(SALT_LEN + NONCE_LEN + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&sealed);
    Ok(Zeroizing::new(format!("{header}\n{}\n", B64.encode(body))))
}

fn derive_kek(
    passphrase: &[u8],
    salt: &[u8],
    m: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let params =
        argon2::Params::new(m, t, p, Some(32)).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, &mut *out)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// True when the secret key file at `path` is passphrase-protected.
pub fn is_sealed(path: &Path) -> Result<bool, CryptoError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    Ok(text.starts_with(SEALED_HEADER))
}

/// Reads a `.key` file. Refuses files readable by group or others. A sealed
/// file needs `passphrase`.
pub fn read_secret_key(path: &Path, passphrase: Option<&[u8]>) -> Result<SigningKey, CryptoError> {
    check_private(path)?;
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    decode_secret(path, &text, passphrase)
}

/// Refuses a secret file whose mode grants any access to group or others.
pub fn check_private(path: &Path) -> Result<(), CryptoError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)
            .map_err(io_err(path))?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Decodes the text of a secret key file.
pub fn decode_secret(
    path: &Path,
    text: &str,
    passphrase: Option<&[u8]>,
) -> Result<SigningKey, CryptoError> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().trim();
    let body = lines.next().unwrap_or_default().trim();
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(format_err(path, "unexpected text after the key"));
    }
    let bytes = Zeroizing::new(B64.decode(body).map_err(|source| CryptoError::Base64 {
        what: "secret key",
        source,
    })?);
    if header == PLAIN_HEADER {
        return SigningKey::from_secret_bytes(&bytes);
    }
    let Some(params) = header.strip_prefix(SEALED_HEADER) else {
        return Err(format_err(
            path,
            format!("not a vigil secret key (first line must be `{PLAIN_HEADER}` or start with `{SEALED_HEADER}`)"),
        ));
    };
    let passphrase = passphrase.ok_or_else(|| CryptoError::PassphraseRequired {
        path: path.to_path_buf(),
    })?;
    let (m, t, p) = parse_params(path, params)?;
    if bytes.len() < SALT_LEN + NONCE_LEN + 16 {
        return Err(format_err(path, "sealed key is truncated"));
    }
    let (salt, rest) = bytes.split_at(SALT_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let kek = derive_kek(passphrase, salt, m, t, p)?;
    let cipher = XChaCha20Poly1305::new((&*kek).into());
    let secret = Zeroizing::new(
        cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::WrongPassphrase {
                path: path.to_path_buf(),
            })?,
    );
    SigningKey::from_secret_bytes(&secret)
}

fn parse_params(path: &Path, params: &str) -> Result<(u32, u32, u32), CryptoError> {
    let (mut m, mut t, mut p) = (None, None, None);
    for item in params.split_whitespace() {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format_err(path, format!("bad argon2 parameter `{item}`")))?;
        let value: u32 = value
            .parse()
            .map_err(|_| format_err(path, format!("bad argon2 parameter `{item}`")))?;
        match name {
            "m" => m = Some(value),
            "t" => t = Some(value),
            "p" => p = Some(value),
            _ => {
                return Err(format_err(
                    path,
                    format!("unknown argon2 parameter `{name}`"),
                ))
            }
        }
    }
    match (m, t, p) {
        (Some(m), Some(t), Some(p)) if m <= ARGON2_M_KIB_MAX && t <= 64 && p <= 16 => Ok((m, t, p)),
        (Some(_), Some(_), Some(_)) => Err(format_err(path, "argon2 parameters are out of range")),
        _ => Err(format_err(
            path,
            "argon2 parameters m, t and p are all required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_sealed_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::generate();
        let (k, p) = write_key_pair(&dir.path().join("a"), &key, Some("ops"), None).expect("write");
        assert_eq!(
            read_secret_key(&k, None).expect("read").public_key(),
            key.public_key()
        );
        assert_eq!(&read_public_key(&p).expect("pub"), key.public_key());

        let (k2, _) =
            write_key_pair(&dir.path().join("b"), &key, None, Some(b"hunter2")).expect("write");
        assert!(is_sealed(&k2).expect("sealed"));
        assert!(matches!(
            read_secret_key(&k2, None),
            Err(CryptoError::PassphraseRequired { .. })
        ));
        assert!(matches!(
            read_secret_key(&k2, Some(b"wrong")),
            Err(CryptoError::WrongPassphrase { .. })
        ));
        let loaded = read_secret_key(&k2, Some(b"hunter2")).expect("unseal");
        assert_eq!(loaded.public_key(), key.public_key());
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::generate();
        write_key_pair(&dir.path().join("a"), &key, None, None).expect("write");
        assert!(matches!(
            write_key_pair(&dir.path().join("a"), &key, None, None),
            Err(CryptoError::AlreadyExists { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_readable_secret() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::generate();
        let (k, _) = write_key_pair(&dir.path().join("a"), &key, None, None).expect("write");
        assert_eq!(
            fs::metadata(&k).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&k, fs::Permissions::from_mode(0o640)).expect("chmod");
        let err = read_secret_key(&k, None).expect_err("must refuse");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn malformed_files_are_errors() {
        let p = Path::new("x.key");
        for text in [
            "",
            "garbage\n",
            "vigil-secret-key-v1 plain\n!!!\n",
            "vigil-secret-key-v1 plain\nAAAA\n",
        ] {
            assert!(decode_secret(p, text, None).is_err(), "{text:?}");
        }
        let sealed = format!("{SEALED_HEADER} m=99999999 t=1 p=1\nAAAA\n");
        assert!(decode_secret(p, &sealed, Some(b"x")).is_err());
        for line in [
            "",
            "ssh-ed25519 AAAA",
            "vigil-mldsa65-ed25519",
            "vigil-mldsa65-ed25519 AAAA",
        ] {
            assert!(parse_public_key_line(line).is_err(), "{line:?}");
        }
    }
}
