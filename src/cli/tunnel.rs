//! `vigil tunnel`: the client side of a TCP tunnel. Listens on a local TCP
//! address and carries every connection over one post-quantum link to the
//! peer node, which connects it to `--target` if its trust store allows.
//! Runs until Ctrl-C; a dropped link is redialled with backoff.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::Args;
use vigil_crypto::{keyfile, CompositePublicKey};
use vigil_transport::link::client_endpoint;
use vigil_transport::{
    Dialer, LinkConfig, LinkEvent, LinkIdentity, LinkObserver, ReconnectPolicy, Target,
    TunnelClient, TunnelSpec,
};

use super::passphrase;
use crate::node::config::Config;
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// The peer node's link address (UDP HOST:PORT)
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: String,
    /// The peer node's composite public key: a .pub file or its
    /// `vigil-mldsa65-ed25519 BASE64` line
    #[arg(long, value_name = "PUB")]
    pub peer_key: String,
    /// Local TCP address to accept connections on
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Where the peer should connect each tunnelled connection
    #[arg(long, value_name = "HOST:PORT")]
    pub target: String,
    /// Re-key by dialling a fresh link after this many seconds
    /// [default: `[links] link_lifetime_seconds`]
    #[arg(long, value_name = "SECONDS")]
    pub link_lifetime: Option<u64>,
}

/// Prints link events of the client side on stderr.
struct PrintEvents;

impl LinkObserver for PrintEvents {
    fn record(&self, event: LinkEvent) {
        match event {
            LinkEvent::LinkOpened { peer } => {
                eprintln!(
                    "vigil tunnel: link to {} open (peer key {})",
                    peer.remote, peer.key_id
                )
            }
            LinkEvent::LinkClosed { peer, reason } => {
                eprintln!("vigil tunnel: link to {} ended: {reason}", peer.remote)
            }
            _ => {}
        }
    }
}

pub fn run(home: &Home, args: TunnelArgs) -> anyhow::Result<ExitCode> {
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    let target = Target::parse(&args.target).map_err(|e| anyhow!("--target: {e}"))?;
    let peer_key = read_peer_key(&args.peer_key)?;
    let pass = passphrase::from_env(config.node.passphrase_env.as_deref())?;
    let key = home.node_signing_key(pass.as_deref().map(|p| p.as_slice()))?;
    let lifetime = args
        .link_lifetime
        .unwrap_or(config.links.link_lifetime_seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let peer_addr = tokio::net::lookup_host(&args.peer)
            .await
            .with_context(|| format!("--peer {}: cannot resolve", args.peer))?
            .next()
            .ok_or_else(|| anyhow!("--peer {} resolves to no address", args.peer))?;
        let bind = if peer_addr.is_ipv6() {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let identity = Arc::new(LinkIdentity::new(key)?);
        let dialer = Dialer::new(client_endpoint(bind)?, identity, LinkConfig::default())?;
        let spec = TunnelSpec {
            listen: args.listen,
            peer_addr,
            peer_key: peer_key.clone(),
            target: target.clone(),
            reconnect: ReconnectPolicy {
                link_lifetime: (lifetime > 0).then(|| Duration::from_secs(lifetime)),
                ..ReconnectPolicy::default()
            },
        };
        let tunnel = TunnelClient::start(dialer, spec, Arc::new(PrintEvents)).await?;
        println!(
            "vigil tunnel: listening on {} -> peer {} ({}) -> {}",
            tunnel.local_addr(),
            peer_addr,
            peer_key.key_id(),
            target
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        drop(tunnel);
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads `--peer-key`: a `.pub` file path, or the key line itself.
fn read_peer_key(arg: &str) -> anyhow::Result<CompositePublicKey> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    } else {
        arg.to_string()
    };
    let (key, _comment) = keyfile::parse_public_key_line(&text)
        .with_context(|| format!("--peer-key {arg}: not a public key file or key line"))?;
    Ok(key)
}
