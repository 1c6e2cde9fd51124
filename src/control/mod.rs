//! The control socket: how an operator's command reaches the running node.
//! `vigil serve` and `vigil mcp` own the node home while they run (the
//! ledger has one writer); every command that touches the ledger, the
//! trust store, the packages or the approvals sends its request over
//! `control.sock` in the home when a node is running, and opens the home
//! itself when none is. [`protocol`] is the wire format (sans I/O,
//! `docs/control.md`), [`server`] the node's side, [`client`] the
//! command's side.

pub mod client;
pub mod protocol;
pub mod server;

use std::path::PathBuf;

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another node already serves {0}")]
    AlreadyServed(PathBuf),
    #[error("lost the connection to the running node: {0}")]
    Lost(#[source] std::io::Error),
    #[error(transparent)]
    Frame(#[from] protocol::FrameError),
}
