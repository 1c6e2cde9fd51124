//! Stopping and link-only operation of the real `vigil serve`, with a real
//! second node (`vigil tunnel`) linked to it over 127.0.0.1:
//! - SIGTERM while a link and a tunnel are open, 100 idle TCP connections, an
//!   idle keep-alive connection and a half-sent HTTP request are held on the
//!   MCP port: the node exits within 5 s, and its ledger then verifies with a
//!   checkpoint covering every entry and records the end of every link and
//!   tunnel that was open; the peer learns at once (its tunnel ends the
//!   held connection), and a service manager is told READY=1 and
//!   STOPPING=1 on `$NOTIFY_SOCKET`.
//! - `[mcp] enabled = false`: the MCP port is not bound, links and tunnels
//!   work, and stopping still records and checkpoints everything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME").arg("--home").arg(home);
    cmd
}

/// Runs `cmd`, expects success, returns stdout.
fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run vigil");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP echo server on its own thread.
fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut tcp = tcp;
                let mut buf = [0u8; 4096];
                while let Ok(n) = tcp.read(&mut buf) {
                    if n == 0 || tcp.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = tcp.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// A free UDP or TCP port on 127.0.0.1 (closed again: a rare race with
/// another process makes the test fail loudly).
fn free_port(udp: bool) -> u16 {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        s.local_addr().expect("udp addr").port()
    } else {
        let s = TcpListener::bind("127.0.0.1:0").expect("tcp");
        s.local_addr().expect("tcp addr").port()
    }
}

/// Node A (serving links, trusting node B for `target`) and node B.
struct Nodes {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    link_port: u16,
    target: SocketAddr,
}

impl Nodes {
    /// `mcp` is A's `[mcp]` section body.
    fn new(mcp: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        succeeds(vigil(&a).arg("init"));
        succeeds(vigil(&b).arg("init"));
        let target = echo_target();
        succeeds(
            vigil(&a)
                .args(["trust", "peer", "add"])
                .arg(b.join("node.pub"))
                .args(["--name", "node-b", "--allow-target", &target.to_string()]),
        );
        let link_port = free_port(true);
        let config = format!("[mcp]\n{mcp}\n[links]\nlisten = \"127.0.0.1:{link_port}\"\n");
        std::fs::write(a.join("vigil.toml"), config).expect("write vigil.toml");
        Self {
            _dir: dir,
            a,
            b,
            link_port,
            target,
        }
    }

    /// `vigil tunnel` on node B to A's target; returns it and its local address.
    fn tunnel(&self) -> (Killed, SocketAddr) {
        let mut child = vigil(&self.b)
            .args(["tunnel", "--peer", &format!("127.0.0.1:{}", self.link_port)])
            .arg("--peer-key")
            .arg(self.a.join("node.pub"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--target",
                &self.target.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vigil tunnel");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("tunnel line");
        // "vigil tunnel: listening on ADDR -> peer ..."
        let local = line
            .split_whitespace()
            .nth(4)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        (Killed(child), local)
    }

    /// The kinds of A's ledger entries (read with the node stopped).
    fn ledger_kinds(&self) -> Vec<String> {
        let tail = succeeds(vigil(&self.a).args(["audit", "tail", "-n", "100000", "--json"]));
        tail.lines()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).expect("entry JSON");
                e["kind"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `vigil serve` on `home` with its stdout lines arriving on a channel.
fn serve(home: &Path, args: &[&str]) -> (Killed, mpsc::Receiver<String>) {
    serve_with(home, args, &[])
}

/// [`serve`] with `env` set for the node.
fn serve_with(
    home: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> (Killed, mpsc::Receiver<String>) {
    let mut child = vigil(home)
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vigil serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Killed(child), rx)
}

/// Waits for a line containing `text`; returns it.
fn line_with(lines: &mpsc::Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {text:?} from vigil serve: {e}"),
        }
    }
}

/// Sends `data` through the tunnel at `local`, half-closes, reads the echo.
fn round_trip(local: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(local).expect("connect tunnel");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    tcp.write_all(data).expect("send");
    tcp.shutdown(Shutdown::Write).expect("half-close");
    let mut back = Vec::new();
    tcp.read_to_end(&mut back).expect("echo");
    back
}

/// SIGTERM; returns how long the process took to exit and its status.
fn terminate(child: &mut Killed) -> (Duration, std::process::ExitStatus) {
    let started = Instant::now();
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return (started.elapsed(), status);
        }
        if started.elapsed() > Duration::from_secs(30) {
            panic!("vigil serve still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// Reads a metric's value from A's `/metrics` (loopback, no token).
fn metric(mcp: SocketAddr, name: &str) -> Option<f64> {
    let mut tcp = TcpStream::connect(mcp).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn sigterm_records_every_link_end_and_exits_within_5_s_despite_held_connections() {
    let nodes = Nodes::new("");
    // A service manager's notification socket (systemd `Type=notify`).
    let notify_path = nodes.a.with_file_name("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let (mut node_a, lines) = serve_with(
        &nodes.a,
        &["--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", &notify_path)],
    );
    let url = line_with(&lines, "serving MCP on http://");
    let mcp: SocketAddr = url
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix("http://")?
                .strip_suffix("/mcp")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no MCP address in {url:?}"));
    line_with(&lines, "accepting post-quantum links on 127.0.0.1");
    let mut message = [0u8; 256];
    let n = notify.recv(&mut message).expect("a readiness notification");
    let ready = String::from_utf8_lossy(&message[..n]).to_string();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    // Node B links to A; one tunnelled connection comes and goes, another
    // stays open across the shutdown.
    let (_tunnel, local) = nodes.tunnel();
    assert_eq!(round_trip(local, b"first"), b"first");
    let mut held = TcpStream::connect(local).expect("connect tunnel");
    held.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    held.write_all(b"held").expect("send");
    let mut echo = [0u8; 4];
    held.read_exact(&mut echo)
        .expect("echo through the held tunnel");
    assert_eq!(&echo, b"held");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(mcp, "vigil_links_open") != Some(1.0)
        || metric(mcp, "vigil_tunnels_open") != Some(1.0)
    {
        assert!(
            Instant::now() < deadline,
            "A never reported 1 link and 1 tunnel open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Connections that would hold an unbounded graceful shutdown forever.
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(mcp).expect("idle connection"))
        .collect();
    let mut keep_alive = TcpStream::connect(mcp).expect("keep-alive connection");
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("healthz");
    keep_alive
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = [0u8; 12];
    keep_alive.read_exact(&mut answer).expect("healthz answer");
    assert_eq!(&answer, b"HTTP/1.1 200");
    let mut half = TcpStream::connect(mcp).expect("half-sent request");
    half.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .expect("half a request");
    std::thread::sleep(Duration::from_millis(200));

    let (took, status) = terminate(&mut node_a);
    eprintln!("vigil serve stopped {took:?} after SIGTERM");
    assert!(status.success(), "vigil serve exited with {status}");
    assert!(
        took < Duration::from_secs(5),
        "vigil serve took {took:?} to stop"
    );
    let n = notify.recv(&mut message).expect("a stopping notification");
    let stopping = String::from_utf8_lossy(&message[..n]).to_string();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    // Node B learned at once that the link closed (not after its 30 s idle
    // timeout): its tunnel ended the held connection.
    held.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut rest = Vec::new();
    let ended = match held.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        ended,
        "node B's tunnel still held its connection 3 s after A stopped"
    );
    drop((idle, keep_alive, half, held));

    verified_and_covered(&nodes.a);
    let kinds = nodes.ledger_kinds();
    assert_eq!(count(&kinds, "link.opened"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "link.closed"), 1, "{kinds:?}");
    assert_eq!(count(&kinds, "tunnel.opened"), 2, "{kinds:?}");
    assert_eq!(count(&kinds, "tunnel.closed"), 2, "{kinds:?}");
}

#[test]
fn a_link_only_node_binds_no_mcp_port_and_serves_links() {
    let help = succeeds(Command::new(env!("CARGO_BIN_EXE_vigil")).args(["serve", "--help"]));
    for word in ["links", "tunnels", "enabled = false", "SIGTERM"] {
        assert!(
            help.contains(word),
            "`vigil serve --help` lacks {word:?}:\n{help}"
        );
    }

    let mcp_port = free_port(false);
    let nodes = Nodes::new(&format!(
        "enabled = false\nlisten = \"127.0.0.1:{mcp_port}\"\n"
    ));
    let refused = vigil(&nodes.a)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run vigil serve");
    assert!(
        !refused.status.success(),
        "--listen with MCP off is an error"
    );

    let (mut node_a, lines) = serve(&nodes.a, &[]);
    line_with(&lines, "MCP is off");
    line_with(&lines, "accepting post-quantum links on 127.0.0.1");
    // Nothing listens on the configured MCP address: it can be bound.
    let bound = TcpListener::bind(("127.0.0.1", mcp_port));
    assert!(bound.is_ok(), "the MCP port is in use: {bound:?}");
    drop(bound);

    let (tunnel, local) = nodes.tunnel();
    assert_eq!(round_trip(local, b"link-only"), b"link-only");
    drop(tunnel);
    let (took, status) = terminate(&mut node_a);
    assert!(status.success(), "vigil serve exited with {status}");
    assert!(took < Duration::from_secs(5), "took {took:?} to stop");

    verified_and_covered(&nodes.a);
    let kinds = nodes.ledger_kinds();
    for kind in [
        "link.opened",
        "tunnel.opened",
        "tunnel.closed",
        "link.closed",
    ] {
        assert_eq!(count(&kinds, kind), 1, "{kind} in {kinds:?}");
    }

    // A vigil.toml without an [mcp] table is link-only too, unless
    // --listen asks for MCP.
    std::fs::write(
        nodes.a.join("vigil.toml"),
        format!("[links]\nlisten = \"127.0.0.1:{}\"\n", nodes.link_port),
    )
    .expect("write vigil.toml");
    let (mut node_a, lines) = serve(&nodes.a, &[]);
    line_with(&lines, "MCP is off");
    line_with(&lines, "accepting post-quantum links on 127.0.0.1");
    let (tunnel, local) = nodes.tunnel();
    assert_eq!(round_trip(local, b"no mcp table"), b"no mcp table");
    drop(tunnel);
    assert!(terminate(&mut node_a).1.success());
    let (mut node_a, lines) = serve(&nodes.a, &["--listen", "127.0.0.1:0"]);
    line_with(&lines, "serving MCP on http://");
    assert!(terminate(&mut node_a).1.success());
    // With nothing at all to serve, the error names the fix.
    std::fs::write(nodes.a.join("vigil.toml"), "").expect("write vigil.toml");
    let refused = vigil(&nodes.a).arg("serve").output().expect("run");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nothing to serve") && stderr.contains("--listen"),
        "{stderr}"
    );
    verified_and_covered(&nodes.a);
}

/// `vigil audit verify` on a stopped node passes with no warning: the last
/// checkpoint, signed at the stop, covers every entry.
fn verified_and_covered(home: &Path) {
    let out = vigil(home)
        .args(["audit", "verify"])
        .output()
        .expect("run vigil audit verify");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("valid:"), "{stdout}");
    assert!(
        !stderr.contains("not covered") && !stderr.contains("warning"),
        "the stop left entries without a checkpoint: {stderr}"
    );
}
