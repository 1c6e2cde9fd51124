//! The command's side of the control socket: finds out whether a node is
//! running on a home (a connection to its socket succeeds), sends one
//! request and reads the node's events and reply. Blocking I/O: commands
//! are short-lived and single-threaded.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::protocol::{self, Answer, Event, Reply, Request, MAX_LINE_BYTES};
use super::ControlError;

/// A connection to a running node.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

/// Connects to the node serving `socket`; `None` when no node runs there
/// (no socket, or a stale one left by a node that died).
pub fn connect(socket: &Path) -> Result<Option<Client>, ControlError> {
    match UnixStream::connect(socket) {
        Ok(stream) => Ok(Some(Client { stream })),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(source) => Err(ControlError::Io {
            path: socket.to_path_buf(),
            source,
        }),
    }
}

impl Client {
    /// Sends `request` and returns the node's reply; events on the way go
    /// to `on_event`.
    pub fn request(
        self,
        request: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Reply, ControlError> {
        let (reply, _) = self.exchange(request, on_event)?;
        Ok(reply)
    }

    /// Sends `request` and returns the reply with the stream, for requests
    /// that go on as another protocol after their reply (MCP).
    pub fn upgrade(self, request: &Request) -> Result<(Reply, UnixStream), ControlError> {
        self.exchange(request, &mut |_| {})
    }

    fn exchange(
        mut self,
        request: &Request,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(Reply, UnixStream), ControlError> {
        let line = protocol::encode_request(request)?;
        self.stream.write_all(&line).map_err(ControlError::Lost)?;
        // The node sends nothing after its reply until the client speaks
        // (an MCP session starts with the client's request), so the buffer
        // holds no bytes past the reply when the stream is handed on.
        let mut reader = BufReader::with_capacity(64 << 10, &self.stream);
        loop {
            let mut buf = Vec::new();
            let n = std::io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(ControlError::Lost)?;
            if n == 0 || buf.last() != Some(&b'\n') {
                return Err(ControlError::Lost(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the node closed the control connection before replying",
                )));
            }
            match protocol::decode_answer(&buf)? {
                Answer::Event(e) => on_event(e),
                Answer::Reply(r) => return Ok((r, self.stream)),
            }
        }
    }
}
