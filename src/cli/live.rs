//! The running node's side of administration: the control socket's
//! [`Handler`] (operator requests answered by the node's one [`Admin`],
//! MCP sessions of a second `vigil mcp` served by the node's pipeline) and
//! the [`Live`] hooks that make a change take effect at once: newly
//! admitted or withdrawn tools served and announced to connected MCP
//! clients, a revoked peer's links closed.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rmcp::ServiceExt as _;
use tokio::net::UnixStream;
use vigil_transport::OpenLinks;

use super::admin::{Admin, Live};
use crate::control::protocol::{Event, Reply, Request};
use crate::control::server::{ControlServer, Handler, McpSession};
use crate::gatekeeper::Occasion;
use crate::mcp::server::{AgentSource, VigilServer};
use crate::mcp::{Catalog, Pipeline};
use crate::node::config::Config;
use crate::node::home::Home;
use crate::sandbox::Sandbox;
use crate::trust::{SharedTrust, TrustStore};

use super::serve::Started;

/// The state of a running node that administration changes.
pub struct LiveNode {
    home: Home,
    config: Config,
    pipeline: Arc<Pipeline>,
    sandbox: Arc<Sandbox>,
    /// The trust store the node decides with.
    trust: Arc<SharedTrust>,
    /// The link listener's open links, once it runs.
    links: Mutex<Option<OpenLinks>>,
    runtime: tokio::runtime::Handle,
}

impl LiveNode {
    /// The live state of a node serving `pipeline` on the current runtime.
    pub fn new(home: &Home, config: &Config, started: Started) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            home: home.clone(),
            config: config.clone(),
            pipeline: started.pipeline,
            sandbox: started.sandbox,
            trust: started.trust,
            links: Mutex::new(None),
            runtime: tokio::runtime::Handle::try_current()
                .context("the live node needs a tokio runtime")?,
        }))
    }

    /// Tells the node its link listener's open links.
    pub fn set_links(&self, links: OpenLinks) {
        *self.links.lock().unwrap_or_else(|p| p.into_inner()) = Some(links);
    }

    /// Starts the control socket of the home; commands reach the node
    /// through it until the returned server is dropped.
    pub fn serve_control(self: &Arc<Self>) -> anyhow::Result<ControlServer> {
        let admin = Admin::new(
            self.home.clone(),
            self.config.clone(),
            self.pipeline.auditor().clone(),
            Some(Arc::clone(self) as Arc<dyn Live>),
        );
        let handler = Arc::new(ControlHandler {
            admin,
            node: Arc::clone(self),
        });
        let path = self.home.control_socket();
        ControlServer::start(&path, handler)
            .with_context(|| format!("opening the control socket {}", path.display()))
    }
}

impl Live for LiveNode {
    fn tools_changed(&self) -> anyhow::Result<()> {
        let trust = self.trust.get();
        let (catalog, skipped) = Catalog::load(&self.home, &self.config, &self.sandbox, &trust)
            .context("loading the admitted tools anew")?;
        for check in skipped {
            let path = check.path.display().to_string();
            tracing::warn!(%path, "stored package no longer verifies; its tools are not served");
            let record = check.decision.audit_record(Occasion::Reload, &path);
            self.pipeline
                .auditor()
                .record(record.event("node"))
                .context("recording a stored package that no longer verifies")?;
        }
        self.pipeline.replace_catalog(catalog);
        let pipeline = Arc::clone(&self.pipeline);
        self.runtime.spawn(async move {
            let told = pipeline.notify_tools_changed().await;
            tracing::info!(
                clients = told,
                "told connected MCP clients the tool list changed"
            );
        });
        Ok(())
    }

    fn peer_revoked(&self, key_id: &str, reason: &str) -> u64 {
        let links = self.links.lock().unwrap_or_else(|p| p.into_inner()).clone();
        links.map_or(0, |l| {
            l.close_peer(key_id, &format!("peer key revoked: {reason}"))
        })
    }

    fn approvals(&self) -> crate::policy::ApprovalQueue {
        self.pipeline.approvals().clone()
    }

    fn pipeline(&self) -> Arc<crate::mcp::Pipeline> {
        Arc::clone(&self.pipeline)
    }

    fn trust_changed(&self, store: TrustStore) {
        self.trust.set(store);
    }

    fn call(
        &self,
        caller: &crate::mcp::pipeline::Caller,
        tool: &str,
        arguments: serde_json::Value,
    ) -> crate::mcp::pipeline::CallReply {
        // On a blocking thread of the control socket: wait for the call.
        self.runtime.block_on(self.pipeline.call_as(
            caller,
            tool,
            arguments,
            &crate::mcp::pipeline::QueueOnly,
        ))
    }
}

/// Answers control requests in the running node.
struct ControlHandler {
    admin: Admin,
    node: Arc<LiveNode>,
}

impl Handler for ControlHandler {
    fn handle(&self, request: Request, emit: &mut dyn FnMut(Event) -> bool) -> Reply {
        match self.admin.handle(request, emit) {
            Ok(reply) => reply,
            // The same line the command prints when it runs on the home.
            Err(e) => Reply::Error {
                message: super::error_line(&e),
            },
        }
    }

    fn mcp_allowed(&self, agent: &str) -> Result<(), String> {
        if self.node.config.agents.iter().any(|a| a.name == agent) {
            Ok(())
        } else {
            Err(format!(
                "agent `{agent}` is not in [[agents]] of vigil.toml; add it with the tools it may call"
            ))
        }
    }

    fn serve_mcp(&self, agent: String, stream: UnixStream) -> McpSession {
        let pipeline = Arc::clone(&self.node.pipeline);
        Box::pin(async move {
            let server = VigilServer::new(pipeline, AgentSource::Fixed(agent));
            match server.serve(stream.into_split()).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::warn!(error = %e, "MCP session over the control socket failed"),
            }
        })
    }
}
