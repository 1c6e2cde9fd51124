//! A plain HTTP/1.1 MCP client over one kept-alive `TcpStream`: no HTTP
//! library, no socket options (no `TCP_NODELAY`, no `TCP_QUICKACK`), as a
//! simple script or a hostile agent would talk to `vigil serve`. It reads
//! `Content-Length` and chunked bodies and takes the last JSON `data:` line
//! of an event stream.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

/// The protocol version the raw client speaks.
pub const PROTOCOL: &str = "2025-06-18";

/// The `host:port` of a served URL such as `http://127.0.0.1:PORT/mcp`.
pub fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {url}"))
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON of the body, or of the last JSON `data:` line of an event
    /// stream.
    pub fn json(&self) -> Value {
        let text = self.text();
        if let Ok(v) = serde_json::from_str(&text) {
            return v;
        }
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or_else(|| panic!("no JSON in {text:?}"))
    }
}

/// One kept-alive connection, optionally in an MCP session.
pub struct RawClient {
    reader: BufReader<TcpStream>,
    token: String,
    session: Option<String>,
    next_id: u64,
}

impl RawClient {
    pub fn connect(addr: SocketAddr, token: &str) -> Self {
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        Self {
            reader: BufReader::new(tcp),
            token: token.to_string(),
            session: None,
            next_id: 1,
        }
    }

    /// POSTs `body` to `/mcp` and reads the reply.
    pub fn post(&mut self, body: &str) -> std::io::Result<Reply> {
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\n",
            self.token,
            body.len()
        );
        if let Some(id) = &self.session {
            head.push_str(&format!(
                "Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: {PROTOCOL}\r\n"
            ));
        }
        head.push_str("\r\n");
        // Head and body in one write, as HTTP clients send a small request
        // (two small writes without TCP_NODELAY wait for the server's
        // delayed ACK: a client-side Nagle stall of ~40 ms).
        head.push_str(body);
        self.reader.get_mut().write_all(head.as_bytes())?;
        read_reply(&mut self.reader)
    }

    /// `initialize` and `notifications/initialized`: opens a session.
    pub fn initialize(&mut self) -> std::io::Result<Reply> {
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}
        });
        let reply = self.post(&init.to_string())?;
        if let Some(id) = reply.header("mcp-session-id") {
            self.session = Some(id.to_string());
            let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            self.post(&done.to_string())?;
        }
        Ok(reply)
    }

    /// `tools/call` of `tool`; the JSON-RPC reply.
    pub fn call(&mut self, tool: &str, arguments: &Value) -> std::io::Result<Value> {
        self.next_id += 1;
        let request = json!({
            "jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}
        });
        Ok(self.post(&request.to_string())?.json())
    }

    /// The text content of a `tools/call` reply.
    pub fn text_of(reply: &Value) -> String {
        reply["result"]["content"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<String>()
            })
            .unwrap_or_else(|| reply.to_string())
    }
}

/// One attempt of an agent on a fresh connection: `initialize`, then one
/// `tools/call` if the session opened.
#[derive(Debug)]
pub struct Attempt {
    /// The HTTP status of `initialize`.
    pub status: u16,
    /// Its `WWW-Authenticate` header, if any.
    pub challenge: Option<String>,
    /// Its body, when it was refused.
    pub refusal: String,
    /// The call's JSON-RPC reply, when the session opened.
    pub reply: Option<Value>,
}

/// Opens a session at `url` with `token` and calls `tool` with `arguments`.
pub fn attempt(url: &str, token: &str, tool: &str, arguments: &Value) -> Attempt {
    let mut client = RawClient::connect(addr(url), token);
    let init = client.initialize().expect("initialize");
    if init.status != 200 {
        return Attempt {
            status: init.status,
            challenge: init.header("www-authenticate").map(String::from),
            refusal: init.text(),
            reply: None,
        };
    }
    let reply = client.call(tool, arguments).expect("tools/call");
    Attempt {
        status: 200,
        challenge: None,
        refusal: String::new(),
        reply: Some(reply),
    }
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or to EOF).
pub fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| std::io::Error::other(format!("bad chunk size {line:?}: {e}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}
