//! Two real nodes on 127.0.0.1: the serving node's link listener (the node
//! library over a real home: node key and trust store file) and the real
//! `vigil tunnel` binary as the dialling node. Checks the tunnel carries
//! bytes, that a target outside the peer's allow list and a revoked peer are
//! refused, and that each decision produces its audit entry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigil::node::home::Home;
use vigil::node::links::{start_listener, LinkAuditEntry, LinkAuditSink, LinkListener};
use vigil::trust::{file, SharedTrust};
use vigil_crypto::keyfile;

fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("--home").arg(home);
    cmd
}

/// Runs `cmd` and expects success (stderr in the failure message).
fn succeeds(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn init(home: &Path) {
    succeeds(vigil(home).arg("init"));
}

/// A TCP echo server on its own thread.
fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
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

/// A running `vigil tunnel`, killed when dropped.
struct Tunnel {
    child: Child,
    local: SocketAddr,
}

impl Tunnel {
    fn start(home: &Path, peer: SocketAddr, peer_pub: &Path, target: SocketAddr) -> Self {
        let mut child = vigil(home)
            .args(["tunnel", "--peer", &peer.to_string(), "--peer-key"])
            .arg(peer_pub)
            .args(["--listen", "127.0.0.1:0", "--target", &target.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "vigil tunnel: listening on ADDR -> peer ..."
        let local = line
            .split_whitespace()
            .nth(4)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self { child, local }
    }

    fn round_trip(&self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        round_trip(self.local, data)
    }
}

/// Sends `data` to `local`, half-closes, returns what came back before EOF.
fn round_trip(local: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(local)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    tcp.write_all(data)?;
    tcp.shutdown(Shutdown::Write)?;
    let mut back = Vec::new();
    tcp.read_to_end(&mut back)?;
    Ok(back)
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Entries = Arc<Mutex<Vec<LinkAuditEntry>>>;

/// Waits until an entry of `kind` with `decision` was recorded.
fn wait_for_entry(entries: &Entries, kind: &str, decision: &str) -> LinkAuditEntry {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = entries
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.kind.as_str() == kind && e.decision.as_str() == decision)
            .cloned();
        if let Some(e) = found {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind}/{decision} entry in {:#?}",
            entries.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tunnel_between_two_nodes_is_policed_and_audited() {
    let (_dir, [home_a, home_b]) = two_homes();
    let (a, b) = (Home::at(&home_a), Home::at(&home_b));
    let allowed = echo_target();
    let forbidden = echo_target();

    // Node A trusts node B for the echo target only.
    let b_key = keyfile::read_public_key(&b.node_pub_path()).unwrap();
    trust_peer(&home_a, &b, &allowed);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let entries: Entries = Arc::default();
    let trust = Arc::new(SharedTrust::new(file::load(&a.trust_path()).unwrap()));
    let server = serve_with(&runtime, &a, recording_sink(&entries, None), trust.clone());
    let peer = server.local_addr().unwrap();

    let tunnel = Tunnel::start(&home_b, peer, &a.node_pub_path(), allowed);
    assert_eq!(
        tunnel.round_trip(b"through the link").unwrap(),
        b"through the link"
    );
    let opened = wait_for_entry(&entries, "link.opened", "allow");
    assert_eq!(opened.actor, format!("peer:{}", b_key.key_id()));
    assert_eq!(opened.details["name"], "node-b");
    wait_for_entry(&entries, "tunnel.opened", "allow");
    let closed = wait_for_entry(&entries, "tunnel.closed", "record");
    assert_eq!(closed.details["bytes_to_target"], 16);
    assert_eq!(closed.details["bytes_from_target"], 16);

    // A target not on B's allow list: the connection ends without data.
    let wrong = Tunnel::start(&home_b, peer, &a.node_pub_path(), forbidden);
    let got = wrong.round_trip(b"let me in").unwrap_or_default();
    assert!(got.is_empty());
    let refused = wait_for_entry(&entries, "tunnel.refused", "deny");
    assert_eq!(refused.subject, format!("target:{forbidden}"));

    // After revocation new links are refused as revoked.
    succeeds(
        vigil(&home_a)
            .args(["trust", "peer", "revoke", &b_key.key_id().to_string()])
            .args(["--reason", "decommissioned"]),
    );
    // What a running node does on that change (tests/live_node.rs shows
    // it through `vigil serve`): the listener decides with the new store.
    trust.set(file::load(&a.trust_path()).unwrap());
    drop(tunnel);
    drop(wrong);
    let after = Tunnel::start(&home_b, peer, &a.node_pub_path(), allowed);
    let got = after.round_trip(b"still there?").unwrap_or_default();
    assert!(got.is_empty());
    let revoked = wait_for_entry(&entries, "link.refused", "deny");
    assert_eq!(revoked.details["refusal"], "revoked-key");

    drop(after);
    runtime.shutdown_background();
}

/// A tunnel whose links are refused says why on stderr, and keeps
/// redialling with growing waits.
#[test]
fn a_tunnel_reports_why_its_link_is_refused_and_backs_off() {
    let (_dir, [home_a, home_b]) = two_homes();
    let a = Home::at(&home_a);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let entries: Entries = Arc::default();
    // Node A does not trust node B.
    let server = serve(&runtime, &a, recording_sink(&entries, None));
    let peer = server.local_addr().unwrap();
    let mut child = vigil(&home_b)
        .args(["tunnel", "--peer", &peer.to_string(), "--peer-key"])
        .arg(a.node_pub_path())
        .args(["--listen", "127.0.0.1:0", "--target", "127.0.0.1:9"])
        .env_remove("VIGIL_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refusals = Vec::new();
    while refusals.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("link could not be opened") => refusals.push(line),
            Ok(_) => {}
            Err(_) => panic!("no two refusal lines on stderr within 30 s: {refusals:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for line in &refusals {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("UnknownKey"), "the reason is named: {line}");
    }
    assert!(refusals[0].contains("retry_in=200ms"), "{}", refusals[0]);
    assert!(refusals[1].contains("retry_in=400ms"), "{}", refusals[1]);
    wait_for_entry(&entries, "link.refused", "deny");
    runtime.shutdown_background();
}

#[test]
fn a_link_the_ledger_cannot_record_is_refused() {
    let (_dir, [home_a, home_b]) = two_homes();
    let (a, b) = (Home::at(&home_a), Home::at(&home_b));
    let allowed = echo_target();
    trust_peer(&home_a, &b, &allowed);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let entries: Entries = Arc::default();
    // A ledger that takes refusals but fails on the link.opened entry.
    let server = serve(&runtime, &a, recording_sink(&entries, Some("link.opened")));
    let tunnel = Tunnel::start(
        &home_b,
        server.local_addr().unwrap(),
        &a.node_pub_path(),
        allowed,
    );
    let got = tunnel.round_trip(b"unrecorded").unwrap_or_default();
    assert!(got.is_empty(), "bytes crossed an unrecorded link");
    let refused = wait_for_entry(&entries, "link.refused", "deny");
    assert_eq!(refused.details["refusal"], "audit-unavailable");
    assert!(
        refused.details["reason"]
            .as_str()
            .unwrap()
            .contains("no space left on device"),
        "{refused:?}"
    );
    assert!(!entries
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.kind.as_str() == "tunnel.opened"));
    drop(tunnel);
    runtime.shutdown_background();
}

/// A sink that keeps entries in `entries`, failing every entry of kind
/// `failing` as a full disk would.
fn recording_sink(entries: &Entries, failing: Option<&'static str>) -> LinkAuditSink {
    let entries = entries.clone();
    Box::new(move |e| {
        if Some(e.kind.as_str()) == failing {
            return Err("no space left on device".into());
        }
        entries.lock().unwrap().push(e);
        Ok(())
    })
}

/// Node A's link listener on 127.0.0.1, recording into `sink`.
fn serve(runtime: &tokio::runtime::Runtime, a: &Home, sink: LinkAuditSink) -> LinkListener {
    serve_with(
        runtime,
        a,
        sink,
        Arc::new(SharedTrust::new(file::load(&a.trust_path()).unwrap())),
    )
}

/// [`serve`] deciding with `trust` (which the test may replace).
fn serve_with(
    runtime: &tokio::runtime::Runtime,
    a: &Home,
    sink: LinkAuditSink,
    trust: Arc<SharedTrust>,
) -> LinkListener {
    let _guard = runtime.enter();
    start_listener(
        "127.0.0.1:0".parse().unwrap(),
        a.node_signing_key(None).unwrap(),
        trust,
        sink,
        vigil_transport::LinkConfig::default(),
        None,
    )
    .unwrap()
}

/// Two initialized node homes in one temporary directory.
fn two_homes() -> (tempfile::TempDir, [std::path::PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let homes = [dir.path().join("a"), dir.path().join("b")];
    homes.iter().for_each(|h| init(h));
    (dir, homes)
}

/// `vigil trust peer add` on `home`: `peer` may reach `target` only.
fn trust_peer(home: &Path, peer: &Home, target: &SocketAddr) {
    succeeds(
        vigil(home)
            .args(["trust", "peer", "add"])
            .arg(peer.node_pub_path())
            .args(["--name", "node-b", "--allow-target", &target.to_string()]),
    );
}

/// A free UDP or TCP port on 127.0.0.1 (the socket is closed again, so a
/// rare race with another process is possible; the test then fails loudly).
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// A running `vigil serve`, stopped with SIGTERM (so it signs its last
/// checkpoint and releases the ledger) when dropped.
struct Serve {
    child: Child,
}

impl Serve {
    /// Starts `vigil serve` and waits until every line in `expect` appeared
    /// on its stdout (in any order).
    fn start(home: &Path, expect: &[&str]) -> Self {
        let mut child = vigil(home)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut missing: Vec<&str> = expect.to_vec();
        while !missing.is_empty() {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("vigil serve ended before printing {missing:?}"))
                .unwrap();
            missing.retain(|m| !line.contains(m));
        }
        std::thread::spawn(move || for _ in lines {});
        Self { child }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "vigil serve exited with {status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_runs_the_link_listener_and_configured_tunnels() {
    let (_dir, [home_a, home_b]) = two_homes();
    let (a, b) = (Home::at(&home_a), Home::at(&home_b));
    let allowed = echo_target();
    trust_peer(&home_a, &b, &allowed);

    // Node A accepts links; node B keeps a tunnel to A open from its config.
    let link_port = free_port(true);
    let template = std::fs::read_to_string(a.config_path()).unwrap();
    let config_a = template.replace(
        "# listen = \"0.0.0.0:7879\"",
        &format!("listen = \"127.0.0.1:{link_port}\""),
    );
    assert_ne!(config_a, template, "the template shows [links] listen");
    std::fs::write(a.config_path(), config_a).unwrap();
    let tunnel_port = free_port(false);
    let config_b = format!(
        "[[tunnels]]\npeer = \"127.0.0.1:{link_port}\"\npeer_key = \"{}\"\n\
         listen = \"127.0.0.1:{tunnel_port}\"\ntarget = \"{allowed}\"\n",
        a.node_pub_path().display()
    );
    std::fs::write(b.config_path(), config_b).unwrap();

    let node_a = Serve::start(&home_a, &["accepting post-quantum links on 127.0.0.1"]);
    let node_b = Serve::start(&home_b, &["vigil tunnel: listening on"]);
    let local = SocketAddr::from(([127, 0, 0, 1], tunnel_port));
    assert_eq!(
        round_trip(local, b"configured tunnel").unwrap(),
        b"configured tunnel"
    );
    node_b.stop();
    // Give A's recording thread a moment for the tunnel's close, then stop
    // A and read its ledger: the decisions are there.
    std::thread::sleep(Duration::from_millis(500));
    node_a.stop();
    let out = vigil(&home_a)
        .args(["audit", "tail", "-n", "100", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    for kind in ["link.opened", "tunnel.opened"] {
        assert!(
            kinds.iter().any(|k| k.contains(kind)),
            "no {kind} entry in {kinds:?}"
        );
    }
}
