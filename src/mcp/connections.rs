//! The HTTP connections of `vigil serve`: accepts TCP connections (with
//! `TCP_NODELAY`), serves each over HTTP/1.1 with a header-read timeout that
//! also ends idle keep-alive connections, tells every handler who the peer
//! is (axum's `ConnectInfo<SocketAddr>`), and on stop closes idle
//! connections at once, lets requests in progress finish within a grace
//! period and then drops whatever is left, so a client holding a half-sent
//! request cannot keep the node from stopping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

/// Time limits of the HTTP connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers, counted from the
    /// moment the connection waits for a request: a half-sent request and an
    /// idle keep-alive connection are both closed after it.
    pub header_read_timeout: Duration,
    /// Once stopping: how long requests in progress get to finish before
    /// their connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(2),
        }
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
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                connections.spawn(serve_connection(
                    tcp,
                    peer,
                    app.clone(),
                    Arc::clone(&builder),
                    stop.clone(),
                ));
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

/// Serves one connection; on stop, closes it once its request in progress
/// (if any) is answered.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    builder: Arc<http1::Builder>,
    stop: CancellationToken,
) {
    // Replies are small and written whole: do not hold them back.
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().call(request)
    });
    let connection = builder.serve_connection(TokioIo::new(tcp), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stop.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
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
