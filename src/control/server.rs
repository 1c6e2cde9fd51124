//! The node's side of the control socket: a Unix socket in the node home
//! (mode 0600) that accepts connections only from the node's own user or
//! root (peer credentials), reads one request per connection and answers
//! it through a [`Handler`] on a blocking thread, streaming its events
//! before the reply. An MCP request turns the connection into an MCP
//! session served by the node.

use std::future::Future;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::protocol::{self, Answer, Event, Reply, Request, MAX_LINE_BYTES};
use super::ControlError;

/// An MCP session served over a control connection.
pub type McpSession = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the node does with control requests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request (on a blocking thread). `emit` sends an event to
    /// the client and returns false once the client has gone away.
    fn handle(&self, request: Request, emit: &mut dyn FnMut(Event) -> bool) -> Reply;

    /// Whether `agent` may have an MCP session, and why not.
    fn mcp_allowed(&self, agent: &str) -> Result<(), String>;

    /// Serves an MCP session for `agent` over `stream` (after the `Ok`
    /// reply was sent on it).
    fn serve_mcp(&self, agent: String, stream: UnixStream) -> McpSession;
}

/// A listening control socket; dropping it stops accepting and removes the
/// socket file.
pub struct ControlServer {
    path: PathBuf,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlServer({})", self.path.display())
    }
}

impl ControlServer {
    /// Binds `path` (removing a stale socket left by a node that died) and
    /// serves it on the current tokio runtime.
    pub fn start(path: &Path, handler: Arc<dyn Handler>) -> Result<Self, ControlError> {
        let io = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ControlError::AlreadyServed(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        // The socket file is ours: its owner is the node's user.
        let owner = std::fs::metadata(path).map_err(io)?.uid();
        let accept = tokio::spawn(accept(listener, owner, handler));
        Ok(Self {
            path: path.to_path_buf(),
            accept,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept(listener: UnixListener, owner: u32, handler: Arc<dyn Handler>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, owner, handler).await {
                tracing::debug!(error = %e, "control connection ended");
            }
        });
    }
}

/// True when a peer with `uid` may administer a node run by `owner`.
pub fn peer_allowed(uid: u32, owner: u32) -> bool {
    uid == owner || uid == 0
}

async fn send(stream: &mut UnixStream, answer: &Answer) -> std::io::Result<()> {
    let line = protocol::encode_answer(answer).map_err(std::io::Error::other)?;
    stream.write_all(&line).await
}

async fn serve_connection(
    mut stream: UnixStream,
    owner: u32,
    handler: Arc<dyn Handler>,
) -> std::io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    if !peer_allowed(uid, owner) {
        tracing::warn!(
            uid,
            "control socket: refused a connection from another user"
        );
        let message = format!(
            "only the node's user (uid {owner}) or root may administer this node; you are uid {uid}"
        );
        return send(&mut stream, &Answer::Reply(Reply::Error { message })).await;
    }
    let mut line = Vec::new();
    {
        let mut reader = BufReader::new((&mut stream).take(MAX_LINE_BYTES as u64 + 1));
        reader.read_until(b'\n', &mut line).await?;
    }
    if line.len() > MAX_LINE_BYTES {
        let message = format!("control request longer than {MAX_LINE_BYTES} bytes");
        return send(&mut stream, &Answer::Reply(Reply::Error { message })).await;
    }
    let request = match protocol::decode_request(&line) {
        Ok(r) => r,
        Err(e) => {
            let message = e.to_string();
            return send(&mut stream, &Answer::Reply(Reply::Error { message })).await;
        }
    };
    if let Request::Mcp { agent } = request {
        if let Err(message) = handler.mcp_allowed(&agent) {
            return send(&mut stream, &Answer::Reply(Reply::Error { message })).await;
        }
        send(&mut stream, &Answer::Reply(Reply::Ok)).await?;
        handler.serve_mcp(agent, stream).await;
        return Ok(());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Answer>();
    let work = tokio::task::spawn_blocking(move || {
        let events = tx.clone();
        let mut emit = |e: Event| events.send(Answer::Event(e)).is_ok();
        let reply = handler.handle(request, &mut emit);
        let _ = tx.send(Answer::Reply(reply));
    });
    while let Some(answer) = rx.recv().await {
        if send(&mut stream, &answer).await.is_err() {
            // The client went away: later events fail, the work finishes.
            drop(rx);
            break;
        }
    }
    let _ = work.await;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_and_root_are_allowed() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(1000, 0));
    }
}
