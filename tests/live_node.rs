//! A node administered while it runs: with a real `vigil serve` holding the
//! home (its ledger, trust store and packages), every operator command
//! reaches it through its control socket, exits 0 and takes effect at once.
//! A connected MCP client (rmcp over streamable HTTP) is told about a newly
//! installed tool and can call it without a restart; a revoked publisher's
//! tools stop being callable; a revoked peer's tunnel (a real `vigil
//! tunnel` over a post-quantum link) stops carrying bytes within a second;
//! a held approval is listed and answered; `vigil audit tail --follow`
//! streams entries as they are recorded; a second `vigil mcp` on the home
//! is served by the running node.

#[path = "mcp_support/mod.rs"]
mod mcp_support;
#[path = "verify_support/mod.rs"]
mod verify_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcp_support::{AssertOk as _, Node, ALICE_TOKEN};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::NotificationContext;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use verify_support::vigil_verify;

/// A client that reports `notifications/tools/list_changed` on a channel.
#[derive(Clone)]
struct Watcher {
    changed: tokio::sync::mpsc::UnboundedSender<()>,
}

impl ClientHandler for Watcher {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("vigil-live-node-test", "1.0.0"),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.changed.send(());
    }
}

/// `vigil serve` on the node, with a link listener; stopped on drop.
struct Serve {
    child: Child,
    url: String,
    link: SocketAddr,
}

impl Serve {
    fn start(node: &Node) -> Self {
        let mut child = node
            .vigil()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vigil serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut url, mut link) = (None, None);
        while url.is_none() || link.is_none() {
            let line = lines
                .next()
                .expect("vigil serve ended before it was ready")
                .expect("read stdout");
            if line.contains("serving MCP on") {
                url = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .map(String::from);
            }
            if line.contains("accepting post-quantum links on") {
                link = line.split_whitespace().last().and_then(|a| a.parse().ok());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url: url.expect("url"),
            link: link.expect("link address"),
        }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "vigil serve exited with {status}");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP echo server.
fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = tcp.read(&mut buf) {
                    if n == 0 || tcp.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Builds and signs a second echo package naming its tool `shout`.
fn second_package(node: &Node) -> std::path::PathBuf {
    node.package(
        "shout",
        "[package]\nname = \"acme/shout\"\nversion = \"1.0.0\"\ndescription = \"Echo under another name.\"\n\n\
         [[tools]]\nname = \"shout\"\ndescription = \"Returns its arguments.\"\n\
         input_schema = { type = \"object\", properties = { text = { type = \"string\" } } }\n",
        &mcp_support::echo_wasm(),
    )
}

fn key_id(pub_file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["key", "show"])
        .arg(pub_file)
        .assert_ok();
    stdout(&out)
        .split_whitespace()
        .find(|w| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no key id in {}", stdout(&out)))
        .to_string()
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[test]
fn every_operator_command_works_against_a_running_node() {
    let node =
        Node::new("[links]\nlisten = \"127.0.0.1:0\"\n[mcp]\napproval_timeout_seconds = 60\n");
    // A peer node B with a tunnel through this node to an echo server.
    let peer_home = node.path("peer");
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--home")
        .arg(&peer_home)
        .arg("init")
        .assert_ok();
    let target = echo_target();
    node.vigil()
        .args(["trust", "peer", "add"])
        .arg(peer_home.join("node.pub"))
        .args(["--name", "node-b", "--allow-target", &target.to_string()])
        .assert_ok();
    let shout = second_package(&node);

    let served = Serve::start(&node);
    let socket = std::fs::metadata(node.home().join("control.sock")).expect("control socket");
    {
        use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
        assert!(socket.file_type().is_socket());
        assert_eq!(
            socket.permissions().mode() & 0o777,
            0o600,
            "owner-only socket"
        );
    }

    // An MCP client connected before any change.
    let rt = mcp_support::runtime();
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let client = rt.block_on(async {
        let config = StreamableHttpClientTransportConfig::with_uri(served.url.clone())
            .auth_header(ALICE_TOKEN);
        Watcher { changed: tx }
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("connect")
    });
    let listed = |client: &rmcp::service::RunningService<RoleClient, Watcher>| -> Vec<String> {
        rt.block_on(client.list_all_tools())
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    };
    assert!(!listed(&client).contains(&"shout".to_string()));

    // audit append / tail / checkpoint / verify / export + vigil-verify / prove / erase
    let appended = node
        .vigil()
        .args(["audit", "append", "--actor", "ci", "--subject", "deploy:1"])
        .args(["--json", "{\"ok\":true}", "--payload-file"])
        .arg(node.path("acme.pub"))
        .assert_ok();
    let index: u64 = stdout(&appended).trim().parse().expect("index");
    let tail = node.vigil().args(["audit", "tail", "-n", "1"]).assert_ok();
    assert!(stdout(&tail).contains("deploy:1"), "{}", stdout(&tail));
    node.vigil().args(["audit", "checkpoint"]).assert_ok();
    let verified = node.vigil().args(["audit", "verify"]).assert_ok();
    assert!(
        stdout(&verified).starts_with("valid:"),
        "{}",
        stdout(&verified)
    );
    let bundle = node.path("live.bundle");
    node.vigil()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .assert_ok();
    let offline = Command::new(vigil_verify())
        .arg(&bundle)
        .arg("--key")
        .arg(node.home().join("node.pub"))
        .assert_ok();
    assert!(stdout(&offline).contains("valid"), "{}", stdout(&offline));
    node.vigil()
        .args(["audit", "prove", &index.to_string(), "--out"])
        .arg(node.path("e.proof"))
        .assert_ok();
    let erased = node
        .vigil()
        .args([
            "audit",
            "erase",
            &index.to_string(),
            "--reason",
            "GDPR request",
        ])
        .assert_ok();
    assert!(stdout(&erased).contains("erased the payload"));

    // install: the connected client is told and sees the new tool.
    node.vigil().arg("install").arg(&shout).assert_ok();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), changed.recv())
            .await
            .expect("notifications/tools/list_changed within 10 s")
            .expect("channel");
    });
    assert!(listed(&client).contains(&"shout".to_string()));
    let result = rt
        .block_on(client.call_tool(mcp_support::call(
            "shout",
            serde_json::json!({"text": "live"}),
        )))
        .expect("tools/call");
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));

    // tools and call through the node.
    let tools = node.vigil().arg("tools").assert_ok();
    assert!(stdout(&tools).contains("shout"), "{}", stdout(&tools));
    let called = node
        .vigil()
        .args(["call", "echo", "--args", "{\"text\":\"hi\"}"])
        .assert_ok();
    assert!(stdout(&called).contains("recorded as ledger entry"));

    // approvals: a held call is listed and answered by `vigil approve`.
    let held_call = {
        let peer = client.peer().clone();
        rt.spawn(async move {
            peer.call_tool(mcp_support::call(
                "vault_read",
                serde_json::json!({"text": "vault"}),
            ))
            .await
        })
    };
    let id = mcp_support::first_held_call(&node);
    node.vigil()
        .args(["approve", &id, "--key"])
        .arg(node.path("jane.key"))
        .assert_ok();
    let answered = rt.block_on(held_call).expect("join").expect("tools/call");
    assert_ne!(answered.is_error, Some(true), "{}", text_of(&answered));

    // A peer's tunnel carries bytes; revoking the peer stops it within 1 s.
    let mut tunnel = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("--home")
        .arg(&peer_home)
        .args(["tunnel", "--peer", &served.link.to_string(), "--peer-key"])
        .arg(node.home().join("node.pub"))
        .args(["--listen", "127.0.0.1:0", "--target", &target.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vigil tunnel");
    let mut first = String::new();
    BufReader::new(tunnel.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("tunnel line");
    let local: SocketAddr = first
        .split_whitespace()
        .nth(4)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected tunnel line {first:?}"));
    let mut tcp = TcpStream::connect(local).expect("connect through the tunnel");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"before").expect("write");
    let mut back = [0u8; 6];
    tcp.read_exact(&mut back).expect("echo through the tunnel");
    assert_eq!(&back, b"before");
    let peer_id = key_id(&peer_home.join("node.pub"));
    let revoked_at = Instant::now();
    let revoked = node
        .vigil()
        .args([
            "trust",
            "peer",
            "revoke",
            &peer_id,
            "--reason",
            "key leaked",
        ])
        .assert_ok();
    assert!(
        stdout(&revoked).contains("closed 1 open link"),
        "{}",
        stdout(&revoked)
    );
    // The tunnelled connection ends: reads see EOF or an error, and bytes
    // written now are never echoed.
    tcp.set_read_timeout(Some(Duration::from_millis(1000)))
        .expect("timeout");
    let _ = tcp.write_all(b"after");
    let mut rest = Vec::new();
    let ended = match tcp.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        ended && !rest.windows(5).any(|w| w == b"after"),
        "the revoked peer's tunnel still carried bytes {:?} after {:?}",
        String::from_utf8_lossy(&rest),
        revoked_at.elapsed()
    );
    assert!(revoked_at.elapsed() < Duration::from_secs(2) + Duration::from_millis(1000));
    let _ = tcp.shutdown(Shutdown::Both);
    let _ = tunnel.kill();
    let _ = tunnel.wait();

    // A revoked publisher's tools stop being callable.
    let acme = key_id(&node.path("acme.pub"));
    node.vigil()
        .args([
            "trust",
            "publisher",
            "revoke",
            &acme,
            "--reason",
            "key leaked",
        ])
        .assert_ok();
    let refused = rt
        .block_on(client.call_tool(mcp_support::call("echo", serde_json::json!({"text": "x"}))))
        .expect("tools/call");
    assert_eq!(refused.is_error, Some(true), "{}", text_of(&refused));
    assert!(
        text_of(&refused).contains("unknown-tool"),
        "{}",
        text_of(&refused)
    );
    let trust = node.vigil().args(["trust", "list"]).assert_ok();
    assert!(stdout(&trust).contains("REVOKED"));
    rt.block_on(async {
        let _ = client.cancel().await;
    });

    // A refused command prints the same one line and exits the same way
    // through the node as on the stopped home.
    let refused_erase = || {
        let out = node
            .vigil()
            .args(["audit", "erase", "999999", "--reason", "no such entry"])
            .output()
            .expect("run vigil audit erase");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let live_refusal = refused_erase();

    served.stop();
    let stopped_refusal = refused_erase();
    assert_eq!(live_refusal.0, Some(1), "{}", live_refusal.1);
    assert_eq!(live_refusal.1.lines().count(), 1, "{}", live_refusal.1);
    assert_eq!(live_refusal, stopped_refusal);
    let all = node.entries();
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in [
        "external",
        "payload.erased",
        "package.admitted",
        "tool.call",
        "link.opened",
        "link.closed",
        "trust.changed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} entry in {kinds:?}");
    }
    let changes: Vec<&str> = all
        .iter()
        .filter(|e| e["kind"] == "trust.changed")
        .filter_map(|e| e["details"]["change"].as_str())
        .collect();
    for change in ["peer-revoked", "publisher-revoked"] {
        assert!(changes.contains(&change), "no {change} in {changes:?}");
    }
    // The node withdrew the revoked publisher's two packages, each refusal
    // recorded.
    let reloaded = all
        .iter()
        .filter(|e| e["kind"] == "package.refused" && e["details"]["occasion"] == "reload")
        .count();
    assert_eq!(reloaded, 2, "one refusal per withdrawn package");
    let verified = node.vigil().args(["audit", "verify"]).assert_ok();
    assert!(stdout(&verified).starts_with("valid:"));
}

#[test]
fn tail_follow_streams_entries_and_a_second_mcp_is_served_by_the_node() {
    let node = Node::new("");
    let served = Serve::start_mcp_only(&node);

    // A marker entry first: `tail -n 1` prints it once it has read the
    // ledger's size, so the entries appended after it are surely new to it
    // (however late the process starts).
    node.vigil()
        .args([
            "audit",
            "append",
            "--actor",
            "ci",
            "--subject",
            "followed:start",
        ])
        .assert_ok();
    let mut follow = node
        .vigil()
        .args(["audit", "tail", "-n", "1", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tail --follow");
    let (lines_tx, lines) = mpsc::channel();
    let out = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("tail printed the last entry");
    assert!(first.contains("followed:start"), "{first}");
    for n in 0..3 {
        let subject = format!("followed:{n}");
        node.vigil()
            .args(["audit", "append", "--actor", "ci", "--subject", &subject])
            .assert_ok();
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("tail --follow printed the new entry");
        assert!(line.contains(&subject), "{line}");
    }
    let _ = follow.kill();
    let _ = follow.wait();

    // A second `vigil mcp` on the home: the running node serves it.
    let rt = mcp_support::runtime();
    rt.block_on(async {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.env_remove("VIGIL_HOME")
            .arg("--home")
            .arg(node.home())
            .args(["mcp", "--agent", "local"]);
        let client =
            ().serve(TokioChildProcess::new(cmd).expect("spawn"))
                .await
                .expect("MCP over the relay");
        let result = client
            .call_tool(mcp_support::call(
                "echo",
                serde_json::json!({"text": "relayed"}),
            ))
            .await
            .expect("tools/call");
        assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
        assert!(text_of(&result).contains("relayed"));
        let _ = client.cancel().await;
    });
    served.stop();
    let calls = node
        .entries()
        .into_iter()
        .filter(|e| e["kind"] == "tool.call" && e["actor"] == "agent:local")
        .count();
    assert_eq!(calls, 1, "the relayed call is recorded once by the node");
}

impl Serve {
    /// `vigil serve` without links.
    fn start_mcp_only(node: &Node) -> Self {
        let mut child = node
            .vigil()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vigil serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines.next().expect("first line").expect("read");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(String::from)
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url,
            link: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// `vigil --home HOME`.
fn vigil_at(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME").arg("--home").arg(home);
    cmd
}

/// Starts `vigil serve` on `home` and waits for a stdout line containing
/// `ready`; returns the process and that line.
fn serve_home(home: &Path, ready: &str) -> (Child, String) {
    let mut child = vigil_at(home)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vigil serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = loop {
        let line = lines
            .next()
            .expect("vigil serve ended before it was ready")
            .expect("read");
        if line.contains(ready) {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, line)
}

#[test]
fn the_dialling_node_records_the_links_its_peer_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for home in [&a, &b] {
        vigil_at(home).arg("init").assert_ok();
    }
    // A accepts links but does not trust B; B keeps a tunnel to A.
    std::fs::write(a.join("vigil.toml"), "[links]\nlisten = \"127.0.0.1:0\"\n").expect("config a");
    let (mut node_a, line) = serve_home(&a, "accepting post-quantum links on");
    let link = line.split_whitespace().last().expect("address").to_string();
    std::fs::write(
        b.join("vigil.toml"),
        format!(
            "[[tunnels]]\npeer = \"{link}\"\npeer_key = \"{}\"\nlisten = \"127.0.0.1:0\"\ntarget = \"127.0.0.1:9\"\n",
            a.join("node.pub").display()
        ),
    )
    .expect("config b");
    let (mut node_b, _) = serve_home(&b, "vigil tunnel: listening on");
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let out = vigil_at(&b)
            .args(["audit", "tail", "-n", "100", "--json"])
            .assert_ok();
        let found = stdout(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["kind"] == "link.refused" && e["details"]["side"] == "dialler");
        if let Some(e) = found {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no dialler-side link.refused entry on B"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(refused["decision"], "deny");
    assert!(
        refused["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused")),
        "{refused}"
    );
    for node in [&mut node_a, &mut node_b] {
        let _ = Command::new("kill")
            .args(["-TERM", &node.id().to_string()])
            .status();
        let _ = node.wait();
    }
}
