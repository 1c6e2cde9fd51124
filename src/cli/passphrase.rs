//! Reading passphrases for sealed key files from an environment variable
//! named on the command line (`--passphrase-env NAME`), never from argv.

use anyhow::{bail, Context as _};
use zeroize::Zeroizing;

/// Reads the passphrase from the env var `name`, if one was named.
pub fn from_env(name: Option<&str>) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    let Some(name) = name else { return Ok(None) };
    let value = std::env::var_os(name)
        .with_context(|| format!("--passphrase-env names {name}, but {name} is not set"))?;
    let bytes = Zeroizing::new(value.into_encoded_bytes());
    if bytes.is_empty() {
        bail!("{name} is set but empty; an empty passphrase is not allowed");
    }
    Ok(Some(bytes))
}
