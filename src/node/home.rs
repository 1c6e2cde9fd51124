//! The node home: the one directory holding a node's keys, configuration,
//! trust store, ledger, payloads, admitted packages and compiled-code cache.
//! This module owns the layout (which file lives where) and `vigil init`'s
//! creation of it; nothing else in the code builds paths under the home.

use std::fs;
use std::path::{Path, PathBuf};

use vigil_crypto::keyfile;
use vigil_crypto::SigningKey;

use crate::node::config;

/// File name stem of the node key pair (`node.key`, `node.pub`).
pub const NODE_KEY_STEM: &str = "node";

/// Errors while creating or opening a node home.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("{0} already holds a node key; `vigil init` never overwrites keys (use another --home, or keep this one)")]
    AlreadyInitialized(PathBuf),
    #[error(
        "{0} is not an initialized vigil home (no node key): run `vigil init --home {0}` first"
    )]
    NotInitialized(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Crypto(#[from] vigil_crypto::CryptoError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A node home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home at `root` (not checked).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default home: `$VIGIL_HOME` is handled by the CLI; this is
    /// `$HOME/.vigil`, or `./.vigil` when `$HOME` is unset.
    pub fn default_root() -> PathBuf {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".vigil")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `vigil.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("vigil.toml")
    }
    /// Path stem of the node key pair; `.key` / `.pub` are appended.
    pub fn node_key_stem(&self) -> PathBuf {
        self.root.join(NODE_KEY_STEM)
    }
    /// The node's secret key file.
    pub fn node_key_path(&self) -> PathBuf {
        keyfile::with_suffix(&self.node_key_stem(), "key")
    }
    /// The node's public key file.
    pub fn node_pub_path(&self) -> PathBuf {
        keyfile::with_suffix(&self.node_key_stem(), "pub")
    }
    /// The trust store (publishers and peers).
    pub fn trust_path(&self) -> PathBuf {
        self.root.join("trust.toml")
    }
    /// The sled directory of the audit ledger.
    pub fn ledger_dir(&self) -> PathBuf {
        self.root.join("ledger")
    }
    /// Tool inputs and outputs stored beside the ledger.
    pub fn payloads_dir(&self) -> PathBuf {
        self.root.join("payloads")
    }
    /// Admitted packages, stored by content hash.
    pub fn packages_dir(&self) -> PathBuf {
        self.root.join("packages")
    }
    /// Compiled-code cache of the sandbox.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
    /// Pending human approvals.
    pub fn approvals_dir(&self) -> PathBuf {
        self.root.join("approvals")
    }

    /// Agent access state: revoked tokens and suspended agents.
    pub fn access_path(&self) -> PathBuf {
        self.root.join("agents.json")
    }

    /// The control socket of the running node (`vigil serve`, `vigil mcp`).
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// True when the home holds a node key.
    pub fn is_initialized(&self) -> bool {
        self.node_key_path().exists()
    }

    /// Fails with an actionable message unless the home was initialized.
    pub fn require_initialized(&self) -> Result<(), HomeError> {
        if self.is_initialized() {
            Ok(())
        } else {
            Err(HomeError::NotInitialized(self.root.clone()))
        }
    }

    /// Loads the node's signing key (sealed keys need `passphrase`).
    pub fn node_signing_key(&self, passphrase: Option<&[u8]>) -> Result<SigningKey, HomeError> {
        self.require_initialized()?;
        Ok(keyfile::read_secret_key(&self.node_key_path(), passphrase)?)
    }

    /// Creates a new home: the directory (mode 0700), the node key pair,
    /// a commented `vigil.toml` and an empty trust store. Refuses, changing
    /// nothing, when the home already holds a node key.
    pub fn init(&self, passphrase: Option<&[u8]>) -> Result<InitReport, HomeError> {
        if self.is_initialized() || self.node_pub_path().exists() {
            return Err(HomeError::AlreadyInitialized(self.root.clone()));
        }
        create_private_dir(&self.root)?;
        let key = SigningKey::generate();
        keyfile::write_key_pair(&self.node_key_stem(), &key, Some("vigil node"), passphrase)?;
        let config_path = self.config_path();
        if !config_path.exists() {
            fs::write(&config_path, config::TEMPLATE).map_err(io_err(&config_path))?;
        }
        let trust = self.trust_path();
        if !trust.exists() {
            fs::write(&trust, EMPTY_TRUST_STORE).map_err(io_err(&trust))?;
        }
        Ok(InitReport {
            key_id: key.public_key().key_id().to_string(),
            fingerprint: key.public_key().fingerprint(),
        })
    }
}

/// What `vigil init` created, for printing.
#[derive(Debug)]
pub struct InitReport {
    pub key_id: String,
    pub fingerprint: String,
}

/// The trust store written by `vigil init`: no publishers, no peers.
pub const EMPTY_TRUST_STORE: &str = "# vigil trust store: publishers and peers this node trusts.\n\
# Change it with `vigil trust ...`; every change is recorded in the ledger.\n\
version = 1\n";

/// Creates `dir` (and parents) with mode 0700 for the last component.
pub fn create_private_dir(dir: &Path) -> Result<(), HomeError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}
