//! MCP sessions of `vigil serve`: rmcp's session manager, whose idle
//! sessions end (and their memory goes) after `[mcp]
//! session_idle_timeout_seconds`, and the caps on sessions in total
//! (`max_sessions`) and per agent (`max_sessions_per_agent`). A request
//! that would open a session (a POST to `/mcp` without `Mcp-Session-Id`)
//! past a cap is refused with HTTP 429 (per agent) or 503 (in total) and a
//! JSON-RPC error, and logged; it is not a tool call, so it has no ledger
//! entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionId;

use crate::mcp::caps::{Caps, Full, Held};
use crate::mcp::server::HttpAgent;

/// The header naming an MCP session (MCP streamable HTTP).
const SESSION_HEADER: &str = "mcp-session-id";

/// JSON-RPC error code of a session refused for a limit (implementation
/// defined server error range).
pub const SESSION_LIMIT_CODE: i64 = -32001;

/// The sessions of a node and what each agent holds.
#[derive(Debug)]
pub struct Sessions {
    manager: Arc<LocalSessionManager>,
    caps: Arc<Caps>,
    /// Open sessions by id, each holding its agent's unit.
    held: Mutex<HashMap<String, Held>>,
}

impl Sessions {
    /// A session manager whose sessions end after `idle_timeout` without
    /// requests, and caps of `max_total` and `max_per_agent` sessions.
    pub fn new(idle_timeout: Duration, max_total: usize, max_per_agent: usize) -> Self {
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(idle_timeout);
        Self {
            manager: Arc::new(manager),
            caps: Arc::new(Caps::new(
                "MCP sessions",
                (max_total, "max_sessions"),
                (max_per_agent, "max_sessions_per_agent"),
            )),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The session manager to give rmcp.
    pub fn manager(&self) -> Arc<LocalSessionManager> {
        Arc::clone(&self.manager)
    }

    /// Sessions counted now.
    pub fn count(&self) -> usize {
        self.caps.total()
    }

    /// A unit for a new session of `agent`; when a cap is reached, first
    /// forgets sessions that ended (idle timeout, DELETE, client gone).
    async fn reserve(&self, agent: &str) -> Result<Held, Full> {
        match self.caps.take(agent) {
            Ok(held) => Ok(held),
            Err(_) => {
                self.forget_ended().await;
                self.caps.take(agent)
            }
        }
    }

    /// Binds `held` to the session `id` rmcp just opened.
    async fn bind(&self, id: &str, held: Held) {
        self.lock().insert(id.to_string(), held);
        // It may have ended already, before it was bound.
        let ended = !self
            .manager
            .sessions
            .read()
            .await
            .contains_key(&SessionId::from(id));
        if ended {
            self.lock().remove(id);
        }
    }

    /// Gives back the units of sessions rmcp no longer has.
    async fn forget_ended(&self) {
        let live = self.manager.sessions.read().await;
        self.lock()
            .retain(|id, _| live.contains_key(&SessionId::from(id.as_str())));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Middleware (after the bearer check): counts a request that opens a
/// session against the caps, refusing it past them.
pub async fn cap(State(sessions): State<Arc<Sessions>>, request: Request, next: Next) -> Response {
    let opens = request.method() == Method::POST && !request.headers().contains_key(SESSION_HEADER);
    let agent = request
        .extensions()
        .get::<HttpAgent>()
        .map(|a| a.0.agent.clone());
    let (true, Some(agent)) = (opens, agent) else {
        return next.run(request).await;
    };
    let held = match sessions.reserve(&agent).await {
        Ok(held) => held,
        Err(full) => return refused(&agent, &full),
    };
    let response = next.run(request).await;
    let opened = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(id) = opened {
        sessions.bind(&id, held).await;
    }
    response
}

/// The refusal of a session past a cap: 429 (the agent's own cap) or 503
/// (the node's), with a JSON-RPC error saying which limit.
fn refused(agent: &str, full: &Full) -> Response {
    let status = match full {
        Full::Agent { .. } => StatusCode::TOO_MANY_REQUESTS,
        Full::Total { .. } => StatusCode::SERVICE_UNAVAILABLE,
    };
    eprintln!("vigil: refused a new MCP session for agent `{agent}`: {full}");
    let message = format!(
        "new MCP session refused: {full}; close unused sessions (HTTP DELETE) or retry later"
    );
    crate::mcp::requests::jsonrpc_error(status, SESSION_LIMIT_CODE, &message)
}
