//! vigil-transport: post-quantum QUIC links between vigil nodes and TCP
//! tunnels over them.
//!
//! - [`message`]: the link protocol messages, sans I/O (docs/link-protocol.md).
//! - [`binding`]: the identity binding statement each side signs.
//! - [`target`]: `HOST:PORT` tunnel targets.
//! - [`policy`]: what the node decides ([`PeerPolicy`]) and is told
//!   ([`LinkObserver`]).
//! - [`tls`]: rustls/aws-lc-rs configuration: TLS 1.3, X25519MLKEM768 only.
//! - [`link`]: dialling and admitting links.
//! - [`server`]: the serving node's link listener and tunnel endpoint.
//! - [`load`]: when new attempts must prove their address (busy, or many
//!   recent refusals).
//! - [`tunnel`]: the client side: local TCP listener, link keeper.
//! - [`splice`]: TCP <-> QUIC stream copying with TCP semantics.
//! - [`udp`]: the endpoint's UDP socket (large-packet batches split to fit).
//! - [`mtu`]: path MTU memory, so links to a known peer skip the search.

pub mod binding;
pub mod error;
pub mod link;
pub mod load;
pub mod message;
pub mod mtu;
pub mod policy;
pub mod server;
pub mod splice;
pub mod target;
pub mod tls;
pub mod tunnel;
pub mod udp;
pub mod wire;

pub use error::LinkError;
pub use link::{Dialer, Link, LinkConfig, LinkIdentity};
pub use policy::{
    IgnoreEvents, LinkEvent, LinkObserver, LinkRefusal, PeerInfo, PeerPolicy, PeerStatus, Recorded,
    TunnelRefusal, TunnelStats,
};
pub use server::{LinkServer, OpenLinks, ServerContext};
pub use target::Target;
pub use tls::KeyExchange;
pub use tunnel::{ReconnectPolicy, TunnelClient, TunnelSpec};
