//! Reading passphrases for sealed key files from an environment variable
//! named on the command line (`--passphrase-env NAME`) or in `vigil.toml`
//! (`[node] passphrase_env`), never from argv; and loading the node key
//! with it.

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

/// Loads the node's signing key, unsealing it with the passphrase from
/// `[node] passphrase_env` when the config names one.
pub fn node_key(
    home: &crate::node::home::Home,
    config: &crate::node::config::Config,
) -> anyhow::Result<vigil_crypto::SigningKey> {
    let pass = from_env(config.node.passphrase_env.as_deref())?;
    Ok(home.node_signing_key(pass.as_deref().map(|p| p.as_slice()))?)
}

/// Finishes or discards a node key rotation that stopped half-way
/// (`node.next.*` left in the home), before the node key is loaded. Only
/// opens the ledger when such a file is there.
pub fn settle_rotation(home: &crate::node::home::Home) -> anyhow::Result<()> {
    if !home.root().join("node.next.pub").exists() {
        return Ok(());
    }
    let ledger = vigil_ledger::Ledger::open_at(&home.ledger_dir(), &home.payloads_dir())
        .context("opening the audit ledger to finish a key rotation")?;
    let handovers = ledger.handovers()?;
    drop(ledger);
    let current = match handovers.last() {
        Some(h) => h.new.clone(),
        // Never handed over: the key in force is the one in node.pub.
        None => vigil_crypto::keyfile::read_public_key(&home.node_pub_path())?,
    };
    if let Some(done) = crate::node::rotation::settle(home, &current)? {
        eprintln!("warning: {done}");
    }
    Ok(())
}
