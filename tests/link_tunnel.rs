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
use vigil::node::links::{start_listener, LinkAuditEntry, LinkAuditSink};
use vigil_crypto::keyfile;

fn vigil(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("--home").arg(home);
    cmd
}

fn init(home: &Path) {
    let out = vigil(home).arg("init").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

    /// Sends `data`, half-closes, returns what came back before EOF.
    fn round_trip(&self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut tcp = TcpStream::connect(self.local)?;
        tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
        tcp.write_all(data)?;
        tcp.shutdown(Shutdown::Write)?;
        let mut back = Vec::new();
        tcp.read_to_end(&mut back)?;
        Ok(back)
    }
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
            .find(|e| e.kind == kind && e.decision == decision)
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
    let dir = tempfile::tempdir().unwrap();
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));
    init(&home_a);
    init(&home_b);
    let a = Home::at(&home_a);
    let b = Home::at(&home_b);
    let allowed = echo_target();
    let forbidden = echo_target();

    // Node A trusts node B for the echo target only.
    let b_key = keyfile::read_public_key(&b.node_pub_path()).unwrap();
    let out = vigil(&home_a)
        .args(["trust", "peer", "add"])
        .arg(b.node_pub_path())
        .args(["--name", "node-b", "--allow-target", &allowed.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let entries: Entries = Arc::default();
    let sink: LinkAuditSink = {
        let entries = entries.clone();
        Box::new(move |e| entries.lock().unwrap().push(e))
    };
    let server = {
        let _guard = runtime.enter();
        start_listener(
            "127.0.0.1:0".parse().unwrap(),
            a.node_signing_key(None).unwrap(),
            a.trust_path(),
            sink,
        )
        .unwrap()
    };
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
    let out = vigil(&home_a)
        .args(["trust", "peer", "revoke", &b_key.key_id().to_string()])
        .args(["--reason", "decommissioned"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
