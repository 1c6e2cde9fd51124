//! MCP over streamable HTTP (`vigil serve`): rmcp's streamable HTTP service
//! at `/mcp`, behind a bearer-token check that maps each token to its agent
//! (a missing or unknown token gets `401` before any MCP message is read).
//! rmcp checks the `Host` header (loopback by default, DNS rebinding) and the
//! `Origin` header against the allowed origins, as the MCP spec requires.
//! Beside it, without a token: `GET /healthz` (liveness and ledger size)
//! and `GET /metrics` (Prometheus text; loopback peers only unless `[mcp]
//! metrics_allow_remote`). Connections are handled by [`connections`],
//! request bodies checked by [`requests`], sessions capped by [`sessions`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::mcp::connections::{self, Connection, ConnectionLimits};
use crate::mcp::pipeline::Pipeline;
use crate::mcp::requests::{self, BodyLimits};
use crate::mcp::server::{AgentSource, HttpAgent, VigilServer};
use crate::mcp::sessions::{self, Sessions};
use crate::mcp::McpConfig;
use crate::node::metrics;
use crate::node::witness::WitnessService;

/// Origins always accepted: browsers on this machine.
const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://[::1]:*",
    "https://[::1]:*",
];

/// The axum router serving MCP at `/mcp` for `pipeline`, and `/healthz`
/// and `/metrics`, with the `[mcp]` settings of `config`. `listen` is the
/// bound address (its host is accepted in `Host` besides loopback names).
pub fn router(
    pipeline: Arc<Pipeline>,
    listen: SocketAddr,
    config: &McpConfig,
    cancel: CancellationToken,
    witness: Option<Arc<WitnessService>>,
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
        .chain(config.allowed_origins.iter().cloned());
    let service_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(config.max_request_body_bytes)
        .with_cancellation_token(cancel);
    let sessions = Arc::new(Sessions::new(
        Duration::from_secs(config.session_idle_timeout_seconds),
        config.max_sessions,
        config.max_sessions_per_agent,
    ));
    let body_limits = BodyLimits {
        max_bytes: config.max_request_body_bytes,
        timeout: Duration::from_secs(config.header_read_timeout_seconds),
    };
    let handler_pipeline = Arc::clone(&pipeline);
    let service = StreamableHttpService::new(
        move || {
            Ok(VigilServer::new(
                Arc::clone(&handler_pipeline),
                AgentSource::Http,
            ))
        },
        sessions.manager(),
        service_config,
    );
    let operations = Operations {
        pipeline: Arc::clone(&pipeline),
        metrics_allow_remote: config.metrics_allow_remote,
    };
    let mut router = axum::Router::new()
        .nest_service("/mcp", service)
        // Layers run last-added first: bearer, body, session caps, rmcp.
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            sessions::cap,
        ))
        .layer(axum::middleware::from_fn_with_state(
            body_limits,
            requests::check_body,
        ))
        .layer(axum::middleware::from_fn_with_state(pipeline, bearer))
        // Added after the bearer layer, so it does not apply to these.
        .merge(
            axum::Router::new()
                .route("/healthz", axum::routing::get(healthz))
                .route("/metrics", axum::routing::get(metrics))
                .with_state(Arc::new(operations)),
        );
    if let Some(witness) = witness {
        // C2SP tlog-witness: no token; the checkpoint's signature is the
        // only authentication the protocol has.
        router = router.merge(
            axum::Router::new()
                .route(
                    "/witness/add-checkpoint",
                    axum::routing::post(add_checkpoint),
                )
                .layer(axum::extract::DefaultBodyLimit::max(
                    vigil_ledger::witness::MAX_REQUEST_BYTES,
                ))
                .with_state(witness),
        );
    }
    router
}

/// `POST /witness/add-checkpoint` (C2SP tlog-witness), decided on a
/// blocking thread (it writes the witness state and a ledger entry).
async fn add_checkpoint(
    State(witness): State<Arc<WitnessService>>,
    body: axum::body::Bytes,
) -> Response {
    let answered = tokio::task::spawn_blocking(move || witness.add_checkpoint(&body)).await;
    let (status, content_type, body) = answered.unwrap_or_else(|_| {
        (
            500,
            "text/plain; charset=utf-8",
            "the witness failed\n".to_string(),
        )
    });
    (
        axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, content_type)],
        body,
    )
        .into_response()
}

/// What `/healthz` and `/metrics` read.
struct Operations {
    pipeline: Arc<Pipeline>,
    metrics_allow_remote: bool,
}

/// `GET /healthz`: the node is up and answers; its ledger size.
async fn healthz(State(ops): State<Arc<Operations>>) -> Response {
    let body = serde_json::json!({
        "status": "ok",
        "ledger_entries": ops.pipeline.auditor().ledger().size(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /metrics`: the node's metrics in the Prometheus text format, for
/// loopback peers (whose `Host` must then be a loopback name, against DNS
/// rebinding) unless remote scrapes are allowed.
async fn metrics(State(ops): State<Arc<Operations>>, request: Request) -> Response {
    if !ops.metrics_allow_remote {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if !peer.is_some_and(|p| p.ip().is_loopback()) {
            return (
                StatusCode::FORBIDDEN,
                "GET /metrics answers loopback clients only; set [mcp] metrics_allow_remote = true in vigil.toml to allow others",
            )
                .into_response();
        }
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if host.is_some_and(|h| !is_loopback_host(h)) {
            return (
                StatusCode::FORBIDDEN,
                "GET /metrics from loopback must name a loopback host (localhost, 127.0.0.1 or [::1]) in `Host`",
            )
                .into_response();
        }
    }
    match ops.pipeline.metrics().render() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        )
            .into_response(),
    }
}

/// True when the `Host` header value names this machine by a loopback name.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Resolves `Authorization: Bearer TOKEN` to an agent or answers 401;
/// counts the connection against the agent's connection limit (429 and
/// the connection closed past it).
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
    if let Some(connection) = request.extensions().get::<Arc<Connection>>() {
        if let Err(full) = connection.claim(&agent.name) {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONNECTION, "close")],
                format!("connection refused: {full}; reuse open connections (keep-alive)"),
            )
                .into_response();
        }
    }
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

/// Serves MCP on `listener` until `cancel` fires, then stops within
/// `limits.shutdown_grace` (see [`connections`]) and ends the MCP sessions.
pub async fn serve(
    listener: tokio::net::TcpListener,
    pipeline: Arc<Pipeline>,
    config: &McpConfig,
    cancel: CancellationToken,
    limits: ConnectionLimits,
    witness: Option<Arc<WitnessService>>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // MCP sessions end once the connections had their grace period, so
    // that calls in progress can still send their replies.
    let sessions = CancellationToken::new();
    let app = router(pipeline, addr, config, sessions.clone(), witness);
    connections::serve(listener, app, cancel, limits).await;
    sessions.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "localhost:7878",
            "127.0.0.1:7878",
            "[::1]:7878",
            "[::1]",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:7878",
            "10.0.0.1:7878",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
