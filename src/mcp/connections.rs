//! The HTTP connections of `vigil serve`: accepts TCP connections (with
//! `TCP_NODELAY`) up to `[mcp] max_connections` (at the limit the longest
//! idle connection is closed to make room; if none is idle the new one is
//! closed at once), serves each over HTTP/1.1, and closes a connection that
//! waits between requests longer than the idle timeout or takes longer than
//! the header-read timeout to send a request's headers. Each request learns
//! who the peer is (axum's `ConnectInfo<SocketAddr>`) and its [`Connection`]
//! (to hold one of its agent's `max_connections_per_agent`). On stop, idle
//! connections close at once, requests in progress get a grace period, then
//! whatever is left is dropped, so a client holding a half-sent request
//! cannot keep the node from stopping.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use crate::mcp::caps::{Caps, Full, Held};

/// Limits of the HTTP connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers once it sent their
    /// first byte (and to send its body, see [`super::requests`]).
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (or for
    /// its first) before it is closed.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once per agent (counted from the first request
    /// with the agent's token).
    pub max_connections_per_agent: usize,
    /// Once stopping: how long requests in progress get to finish before
    /// their connections are dropped.
    pub shutdown_grace: Duration,
}

/// Once stopping, how long requests in progress get to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Default for ConnectionLimits {
    /// The limits of the default `[mcp]` settings.
    fn default() -> Self {
        super::McpConfig::default().connection_limits()
    }
}

/// One open connection, as the connection loop and the request handlers
/// see it (in each request's extensions as `Arc<Connection>`).
#[derive(Debug)]
pub struct Connection {
    activity: Mutex<Activity>,
    /// Told when the connection becomes idle or starts receiving a request.
    changed: Notify,
    /// Cancelled to close the connection to make room for a new one.
    evict: CancellationToken,
    /// The agent slot this connection holds, once a request named it.
    agent: Mutex<Option<Held>>,
    per_agent: Arc<Caps>,
}

#[derive(Debug)]
struct Activity {
    /// Requests being answered (until their response body is sent).
    busy: usize,
    /// With no request being answered: whether a request's first bytes
    /// arrived since the connection became idle.
    receiving: bool,
    /// When the connection became idle, or started receiving a request.
    since: Instant,
}

impl Connection {
    fn new(per_agent: Arc<Caps>) -> Self {
        Self {
            activity: Mutex::new(Activity {
                busy: 0,
                receiving: false,
                since: Instant::now(),
            }),
            changed: Notify::new(),
            evict: CancellationToken::new(),
            agent: Mutex::new(None),
            per_agent,
        }
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts this connection against `agent`'s connection limit (once:
    /// the first agent to make a request on it keeps it).
    pub fn claim(&self, agent: &str) -> Result<(), Full> {
        let mut slot = self.agent.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.per_agent.take(agent)?);
        }
        Ok(())
    }

    /// Bytes arrived from the client.
    fn received(&self) {
        let mut a = self.activity();
        if a.busy == 0 && !a.receiving {
            a.receiving = true;
            a.since = Instant::now();
            drop(a);
            self.changed.notify_one();
        }
    }

    fn start_request(self: &Arc<Self>) -> Busy {
        self.activity().busy += 1;
        Busy(Arc::clone(self))
    }

    fn end_request(&self) {
        let mut a = self.activity();
        a.busy = a.busy.saturating_sub(1);
        if a.busy == 0 {
            a.receiving = false;
            a.since = Instant::now();
            drop(a);
            self.changed.notify_one();
        }
    }

    fn is_idle(&self) -> bool {
        self.activity().busy == 0
    }

    /// When the connection is to be closed if nothing changes (None: a
    /// request is being answered).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let a = self.activity();
        match (a.busy, a.receiving) {
            (0, false) => Some(a.since + limits.idle_timeout),
            (0, true) => Some(a.since + limits.header_read_timeout),
            _ => None,
        }
    }
}

/// A request being answered; dropped with its response body.
struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// A response body that keeps its connection busy until it is sent.
struct BusyBody {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The TCP stream of a connection, telling it when bytes arrive.
struct Tracked {
    tcp: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.received();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Open {
    connections: Mutex<BTreeMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Unix second of the last "connection limit reached" warning.
    warned: AtomicU64,
}

impl Open {
    /// Registers a new connection; at the limit, closes the longest idle
    /// one first, or refuses (None) if every connection is answering.
    fn admit(
        self: &Arc<Self>,
        limits: &ConnectionLimits,
        per_agent: &Arc<Caps>,
    ) -> Option<(Arc<Connection>, Registered)> {
        let mut open = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= limits.max_connections {
            let idle = open
                .iter()
                .find(|(_, c)| c.is_idle())
                .map(|(id, c)| (*id, Arc::clone(c)));
            let Some((id, oldest)) = idle else {
                let refusing = "every connection is answering a request: refusing the new one";
                self.warn(limits.max_connections, refusing);
                return None;
            };
            oldest.evict.cancel();
            open.remove(&id);
            let evicting = "closing the longest idle connection to make room";
            self.warn(limits.max_connections, evicting);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new(Arc::clone(per_agent)));
        open.insert(id, Arc::clone(&connection));
        let registered = Registered {
            open: Arc::clone(self),
            id,
        };
        Some((connection, registered))
    }

    /// At most one warning a second, whatever the flood.
    fn warn(&self, limit: usize, outcome: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.warned.swap(now, Ordering::Relaxed) != now {
            eprintln!(
                "warning: {limit} HTTP connections are open ([mcp] max_connections): {outcome}"
            );
        }
    }
}

/// Removes a connection from [`Open`] when its task ends.
struct Registered {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Serves `app` on `listener` until `stop` fires, then stops within
/// `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    stop: CancellationToken,
    limits: ConnectionLimits,
) {
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    // A client may shut its write side once its request is sent and wait
    // for the answer; without this hyper may close on that EOF before the
    // answer is written.
    builder.half_close(true);
    let builder = Arc::new(builder);
    let open = Arc::new(Open::default());
    let per_agent = Arc::new(Caps::new(
        "HTTP connections",
        (limits.max_connections, "max_connections"),
        (
            limits.max_connections_per_agent,
            "max_connections_per_agent",
        ),
    ));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Over the limit with nothing idle: closed at once.
                let Some((connection, registered)) = open.admit(&limits, &per_agent) else {
                    drop(tcp);
                    continue;
                };
                let serving = Serving {
                    peer,
                    app: app.clone(),
                    builder: Arc::clone(&builder),
                    stop: stop.clone(),
                    limits,
                };
                connections.spawn(serving.run(tcp, connection, registered));
            }
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                // Out of file descriptors and the like: wait a little
                // rather than spin.
                eprintln!("warning: accepting an HTTP connection failed: {e}");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let finished = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, finished)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
}

/// What serving one connection needs.
struct Serving {
    peer: SocketAddr,
    app: axum::Router,
    builder: Arc<http1::Builder>,
    stop: CancellationToken,
    limits: ConnectionLimits,
}

impl Serving {
    /// Serves one connection until the client closes it, it times out, it
    /// is closed to make room, or the node stops (then it is closed once
    /// its request in progress, if any, is answered).
    async fn run(self, tcp: TcpStream, connection: Arc<Connection>, _registered: Registered) {
        // Replies are small and written whole: do not hold them back.
        let _ = tcp.set_nodelay(true);
        let Self {
            peer,
            app,
            builder,
            stop,
            limits,
        } = self;
        let handler = Arc::clone(&connection);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(Arc::clone(&handler));
            let busy = handler.start_request();
            let answer = app.clone().call(request);
            async move {
                let response = answer.await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|inner| Body::new(BusyBody { inner, _busy: busy })),
                )
            }
        });
        let io = Tracked {
            tcp,
            connection: Arc::clone(&connection),
        };
        let served = builder.serve_connection(TokioIo::new(io), service);
        let mut served = std::pin::pin!(served);
        loop {
            let deadline = connection.deadline(&limits);
            let expiry = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = served.as_mut() => return,
                () = connection.evict.cancelled() => return,
                () = stop.cancelled() => break,
                () = expiry => {
                    let now = Instant::now();
                    if connection.deadline(&limits).is_some_and(|at| at <= now) {
                        return;
                    }
                }
                () = connection.changed.notified() => {}
            }
        }
        served.as_mut().graceful_shutdown();
        let _ = served.await;
    }
}

/// Errors that concern one incoming connection only (it went away before
/// it was accepted), as opposed to the listener.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}
