//! MCP over streamable HTTP (`vigil serve`): rmcp's streamable HTTP service
//! at `/mcp`, behind a bearer-token check that maps each token to its agent
//! (a missing or unknown token gets `401` before any MCP message is read).
//! rmcp checks the `Host` header (loopback by default, DNS rebinding) and the
//! `Origin` header against the allowed origins, as the MCP spec requires.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::mcp::pipeline::Pipeline;
use crate::mcp::server::{AgentSource, HttpAgent, VigilServer};

/// Origins always accepted: browsers on this machine.
const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// The axum router serving MCP at `/mcp` for `pipeline`. `listen` is the
/// bound address (its host is accepted in `Host` besides loopback names).
pub fn router(
    pipeline: Arc<Pipeline>,
    listen: SocketAddr,
    allowed_origins: &[String],
    cancel: CancellationToken,
) -> axum::Router {
    let mut hosts: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "[::1]".into(),
    ];
    let ip = listen.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        hosts.push(ip.to_string());
    }
    let origins = LOOPBACK_ORIGINS
        .iter()
        .map(|s| s.to_string())
        .chain(allowed_origins.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_sse_keep_alive(None)
        .with_cancellation_token(cancel);
    let handler_pipeline = Arc::clone(&pipeline);
    let service = StreamableHttpService::new(
        move || {
            Ok(VigilServer::new(
                Arc::clone(&handler_pipeline),
                AgentSource::Http,
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(pipeline, bearer))
}

/// Resolves `Authorization: Bearer TOKEN` to an agent or answers 401.
async fn bearer(
    State(pipeline): State<Arc<Pipeline>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return unauthorized("missing `Authorization: Bearer <token>`; ask the operator for a token ([[agents]] token_env or token_sha256 in vigil.toml)");
    };
    let Some(agent) = pipeline.agents().by_token(token) else {
        return unauthorized("unknown bearer token: no agent in vigil.toml has this token");
    };
    let agent = HttpAgent(agent.name.clone());
    request.extensions_mut().insert(agent);
    next.run(request).await
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        message.to_string(),
    )
        .into_response()
}

/// Serves MCP on `listener` until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pipeline: Arc<Pipeline>,
    allowed_origins: &[String],
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = router(pipeline, addr, allowed_origins, cancel.child_token());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled_owned().await })
        .await
}
