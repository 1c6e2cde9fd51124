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
pub(crate) struct PrintEvents;

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

/// Prints what an operator must see and records every event in the node's
/// ledger (the tunnels `vigil serve` keeps open).
pub(crate) struct PrintAndRecord {
    ledger: crate::node::links::LedgerObserver,
}

impl PrintAndRecord {
    pub(crate) fn new(sink: crate::node::links::LinkAuditSink) -> Self {
        Self {
            ledger: crate::node::links::LedgerObserver::start(sink, None),
        }
    }

    /// A handle to wait until every event handed over is recorded.
    pub(crate) fn progress(&self) -> crate::node::links::RecorderProgress {
        self.ledger.progress()
    }
}

impl LinkObserver for PrintAndRecord {
    fn record(&self, event: LinkEvent) {
        PrintEvents.record(event.clone());
        self.ledger.record(event);
    }
}

pub fn run(home: &Home, args: TunnelArgs) -> anyhow::Result<ExitCode> {
    home.require_initialized()?;
    let config = Config::load(&home.config_path())?;
    let target = Target::parse(&args.target).map_err(|e| anyhow!("--target: {e}"))?;
    let peer_key = read_peer_key(&args.peer_key)?;
    let key = passphrase::node_key(home, &config)?;
    let lifetime = args
        .link_lifetime
        .unwrap_or(config.links.link_lifetime_seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let identity = Arc::new(LinkIdentity::new(key)?);
        let spec = TunnelPlan {
            peer: args.peer.clone(),
            peer_key,
            listen: args.listen,
            target,
            link_lifetime_seconds: lifetime,
        };
        let tunnel = start_tunnel(identity, &spec, Arc::new(PrintEvents)).await?;
        println!("vigil tunnel: {}", describe(&tunnel, &spec));
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        drop(tunnel);
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One tunnel to start: from `vigil tunnel`'s flags or a `[[tunnels]]` table.
#[derive(Debug, Clone)]
pub(crate) struct TunnelPlan {
    /// The peer node's link address (UDP HOST:PORT).
    pub peer: String,
    pub peer_key: CompositePublicKey,
    pub listen: SocketAddr,
    pub target: Target,
    /// Re-key after this many seconds (0: never).
    pub link_lifetime_seconds: u64,
}

impl TunnelPlan {
    /// Reads one `[[tunnels]]` table; `default_lifetime` is `[links]`'s.
    pub(crate) fn from_config(
        t: &crate::node::links::TunnelConfig,
        default_lifetime: u64,
    ) -> anyhow::Result<Self> {
        let what = format!("[[tunnels]] with listen = {:?}", t.listen);
        Ok(Self {
            peer: t.peer.clone(),
            peer_key: read_peer_key(&t.peer_key).with_context(|| format!("{what}: peer_key"))?,
            listen: t.listen.parse().map_err(|e| {
                anyhow!("{what}: listen is not an address like 127.0.0.1:5433: {e}")
            })?,
            target: Target::parse(&t.target).map_err(|e| anyhow!("{what}: target: {e}"))?,
            link_lifetime_seconds: t.link_lifetime_seconds.unwrap_or(default_lifetime),
        })
    }
}

/// One line saying what a started tunnel carries.
pub(crate) fn describe(tunnel: &TunnelClient, plan: &TunnelPlan) -> String {
    format!(
        "listening on {} -> peer {} ({}) -> {}",
        tunnel.local_addr(),
        plan.peer,
        plan.peer_key.key_id(),
        plan.target
    )
}

/// Resolves the peer, dials it over a post-quantum link and starts
/// accepting local TCP connections (on the current tokio runtime).
pub(crate) async fn start_tunnel(
    identity: Arc<LinkIdentity>,
    plan: &TunnelPlan,
    observer: Arc<dyn LinkObserver>,
) -> anyhow::Result<TunnelClient> {
    let peer_addr = tokio::net::lookup_host(&plan.peer)
        .await
        .with_context(|| format!("peer {}: cannot resolve", plan.peer))?
        .next()
        .ok_or_else(|| anyhow!("peer {} resolves to no address", plan.peer))?;
    let bind = if peer_addr.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    let dialer = Dialer::new(client_endpoint(bind)?, identity, LinkConfig::default())?;
    let lifetime = plan.link_lifetime_seconds;
    let spec = TunnelSpec {
        listen: plan.listen,
        peer_addr,
        peer_key: plan.peer_key.clone(),
        target: plan.target.clone(),
        reconnect: ReconnectPolicy {
            link_lifetime: (lifetime > 0).then(|| Duration::from_secs(lifetime)),
            ..ReconnectPolicy::default()
        },
    };
    Ok(TunnelClient::start(dialer, spec, observer).await?)
}

/// Reads `--peer-key`: a `.pub` file path, or the key line itself.
pub(crate) fn read_peer_key(arg: &str) -> anyhow::Result<CompositePublicKey> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {arg}"))?
    } else {
        arg.to_string()
    };
    let (key, _comment) = keyfile::parse_public_key_line(&text)
        .with_context(|| format!("--peer-key {arg}: not a public key file or key line"))?;
    Ok(key)
}
