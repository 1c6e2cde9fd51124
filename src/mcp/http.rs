//! MCP over streamable HTTP (`vigil serve`): rmcp's streamable HTTP service
//! at `/mcp`, behind a bearer-token check that maps each token to its agent
//! (a missing or unknown token gets `401` before any MCP message is read).
//! rmcp checks the `Host` header (loopback by default, DNS rebinding) and the
//! `Origin` header against the allowed origins, as the MCP spec requires.
//! Beside it, without a token: `GET /healthz` (liveness and ledger size)
//! and `GET /metrics` (Prometheus text; loopback peers only unless `[mcp]
//! metrics_allow_remote`). Connections are handled by [`connections`],
//! request bodies checked by [`requests`], sessions capped by [`sessions`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::mcp::auth::{unix_now, AuthRefusal, Authenticator, NodeIssuer, RefusalBudget, Refused};
use crate::mcp::connections::{self, Connection, ConnectionLimits};
use crate::mcp::pipeline::Pipeline;
use crate::mcp::requests::{self, BodyLimits};
use crate::mcp::server::{AgentSource, HttpAgent, VigilServer};
use crate::mcp::sessions::{self, Sessions};
use crate::mcp::McpConfig;
use crate::node::audit::{AuditEvent, EventKind, Verdict};
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

/// What the bearer check needs: the authenticator, the pipeline (to record
/// refusals and count them) and the budget of recorded refusals.
struct Bearer {
    auth: Authenticator,
    pipeline: Arc<Pipeline>,
    budget: RefusalBudget,
}

/// The axum router serving MCP at `/mcp` for `pipeline`, and `/healthz`
/// and `/metrics`, with the `[mcp]` settings of `config`. `listen` is the
/// bound address (its host is accepted in `Host` besides loopback names).
pub fn router(
    pipeline: Arc<Pipeline>,
    listen: SocketAddr,
    config: &McpConfig,
    cancel: CancellationToken,
    witness: Option<Arc<WitnessService>>,
) -> std::io::Result<axum::Router> {
    let auth_config = pipeline.auth_config().clone();
    let resource = auth_config
        .resource
        .clone()
        .unwrap_or_else(|| format!("http://{listen}/mcp"));
    let node = pipeline.auditor().public_key().map(|key| NodeIssuer {
        origin: pipeline.auditor().origin().to_string(),
        key,
    });
    let budget = RefusalBudget::new(auth_config.refusals_recorded_per_second);
    let auth = Authenticator::new(
        pipeline.agents().clone(),
        auth_config,
        resource,
        node,
        Arc::clone(pipeline.guard().access()),
    )
    .map_err(std::io::Error::other)?;
    let bearer_state = Arc::new(Bearer {
        auth,
        pipeline: Arc::clone(&pipeline),
        budget,
    });
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
    let service = Shared(Arc::new(StreamableHttpService::new(
        move || {
            Ok(VigilServer::new(
                Arc::clone(&handler_pipeline),
                AgentSource::Http,
            ))
        },
        sessions.manager(),
        service_config,
    )));
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
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&bearer_state),
            bearer,
        ))
        // Added after the bearer layer, so it does not apply to these.
        .merge(
            axum::Router::new()
                .route("/healthz", axum::routing::get(healthz))
                .route("/metrics", axum::routing::get(metrics))
                .with_state(Arc::new(operations)),
        )
        // RFC 9728: at the well-known path, and with the resource's path
        // appended (§3.1).
        .merge(
            axum::Router::new()
                .route(
                    "/.well-known/oauth-protected-resource",
                    axum::routing::get(resource_metadata),
                )
                .route(
                    "/.well-known/oauth-protected-resource/{*path}",
                    axum::routing::get(resource_metadata),
                )
                .with_state(bearer_state),
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
    Ok(router)
}

/// rmcp's streamable HTTP service behind an `Arc`: the router clones the
/// service it routes to for every request, and rmcp's own clone copies its
/// whole configuration (allowed hosts and origins, a cancellation token).
/// This clones a pointer instead and hands each request to the one service.
#[derive(Clone)]
struct Shared(Arc<StreamableHttpService<VigilServer, LocalSessionManager>>);

impl tower_service::Service<Request> for Shared {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let service = Arc::clone(&self.0);
        Box::pin(async move { Ok(service.handle(request).await.into_response()) })
    }
}

/// `GET /.well-known/oauth-protected-resource` (RFC 9728): this resource,
/// the identity providers whose tokens it accepts, and its scopes.
async fn resource_metadata(State(bearer): State<Arc<Bearer>>) -> Response {
    let body = bearer
        .auth
        .resource_metadata(&bearer.pipeline.tool_names(), bearer.pipeline.node_name());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body.to_string(),
    )
        .into_response()
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

/// Resolves `Authorization: Bearer TOKEN` to an agent and its scopes
/// ([`Authenticator`]) or answers 401 with the resource metadata hint of
/// RFC 9728 (a presented token that is refused is also recorded as an
/// `agent.token-refused` entry); counts the connection against the agent's
/// connection limit (429 and the connection closed past it).
async fn bearer(State(state): State<Arc<Bearer>>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        state
            .pipeline
            .metrics()
            .count_token_refusal(AuthRefusal::Missing.code());
        return unauthorized(&state.auth, None, "missing `Authorization: Bearer <token>`; get a token from the identity provider named in the resource metadata, `vigil agent token`, or the operator ([[agents]] token_env / token_sha256)");
    };
    let grant = match state.auth.authenticate(token, unix_now()).await {
        Ok(grant) => grant,
        Err(refused) => {
            let message = refused.refusal.to_string();
            record_refusal(&state, token, refused).await;
            return unauthorized(&state.auth, Some("invalid_token"), &message);
        }
    };
    if let Some(connection) = request.extensions().get::<Arc<Connection>>() {
        if let Err(full) = connection.claim(&grant.agent) {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::CONNECTION, "close")],
                format!("connection refused: {full}; reuse open connections (keep-alive)"),
            )
                .into_response();
        }
    }
    request.extensions_mut().insert(HttpAgent(grant));
    next.run(request).await
}

/// Records a refused token (within the budget) as `agent.token-refused`,
/// with the SHA-256 of the token, never the token.
async fn record_refusal(state: &Bearer, token: &str, refused: Refused) {
    let code = refused.refusal.code();
    state.pipeline.metrics().count_token_refusal(code);
    tracing::warn!(code, agent = ?refused.agent, "bearer token refused: {}", refused.refusal);
    let Some(suppressed) = state.budget.take() else {
        return;
    };
    let actor = refused
        .agent
        .as_ref()
        .map_or_else(|| "agent:unknown".to_string(), |a| format!("agent:{a}"));
    let subject = refused
        .issuer
        .as_ref()
        .map_or_else(|| "bearer-token".to_string(), |i| format!("issuer:{i}"));
    let event = AuditEvent::new(EventKind::AgentTokenRefused, actor, subject, Verdict::Deny)
        .details(serde_json::json!({
            "code": code,
            "reason": refused.refusal.to_string(),
            "source": refused.source.map(|s| s.as_str()),
            "issuer": refused.issuer,
            "token_id": refused.token_id,
            "token_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes())),
            "suppressed_before": suppressed,
        }));
    let auditor = state.pipeline.auditor().clone();
    match tokio::task::spawn_blocking(move || auditor.record(event)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("a refused token could not be recorded: {e}"),
        Err(e) => tracing::error!("a refused token could not be recorded: {e}"),
    }
}

/// 401 with `WWW-Authenticate: Bearer resource_metadata="..."` (RFC 9728
/// §5.1) and, for a refused token, `error="invalid_token"` (RFC 6750).
fn unauthorized(auth: &Authenticator, error: Option<&str>, message: &str) -> Response {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}\"",
        auth.resource_metadata_url()
    );
    if let Some(error) = error {
        let description: String = message
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() || !c.is_ascii() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        challenge.push_str(&format!(
            ", error=\"{error}\", error_description=\"{description}\""
        ));
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
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
    let app = router(pipeline, addr, config, sessions.clone(), witness)?;
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
