//! The example tools in tools/ are packages an operator can build as the
//! README says: after tools/build.sh, `vigil package build tools/NAME`
//! signs each one (byte-reproducibly), `vigil install` admits it, and
//! `vigil call` runs it with the capabilities its vigil-tool.toml declares.
//!
//! wordcount and notes are granted /srv/docs and /srv/notes; the test
//! creates those directories when they are missing (it leaves them, empty,
//! for other runs) and skips those two calls where it may not.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn build_tools() {
    let status = Command::new("bash")
        .arg(root().join("tools/build.sh"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run tools/build.sh");
    assert!(status.success(), "tools/build.sh failed");
}

struct Operator {
    dir: tempfile::TempDir,
}

impl Operator {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn vigil(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.env_remove("VIGIL_HOME")
            .env_remove("VIGIL_LOG")
            .current_dir(root())
            .arg("--home")
            .arg(self.path("home"));
        cmd
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.vigil().args(args).output().expect("run vigil");
        assert!(
            out.status.success(),
            "vigil {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `vigil call TOOL --args ARGS --json`: exit success and the outcome.
    fn call(&self, tool: &str, args: &Value) -> (bool, Value) {
        let out = self
            .vigil()
            .args(["call", tool, "--json", "--args", &args.to_string()])
            .output()
            .expect("run vigil call");
        let outcome: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "vigil call {tool}: no JSON outcome ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), outcome)
    }

    /// The value of a successful call.
    fn value(&self, tool: &str, args: &Value) -> Value {
        let (ok, outcome) = self.call(tool, args);
        assert!(ok, "{tool} failed: {outcome:#}");
        outcome["result"]["value"].clone()
    }
}

/// A one-thread HTTP server on 127.0.0.1 answering every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

/// Creates `dir` if missing; false when this process may not.
fn ensure_dir(dir: &str) -> bool {
    match std::fs::create_dir_all(dir) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipping the call that needs {dir}: cannot create it ({e})");
            false
        }
    }
}

#[test]
fn every_example_tool_builds_signs_installs_and_runs() {
    build_tools();
    let op = Operator {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    op.ok(&["init"]);
    let acme = op.path("acme");
    op.ok(&["key", "generate", "--out", acme.to_str().expect("utf-8")]);
    let acme_pub = op.path("acme.pub");
    op.ok(&[
        "trust",
        "publisher",
        "add",
        acme_pub.to_str().expect("utf-8"),
        "--scope",
        "acme/*",
    ]);
    let key = op.path("acme.key");
    for tool in ["echo", "wordcount", "notes", "fetch", "lookup", "hostile"] {
        let dir = format!("tools/{tool}");
        let pkg = op.path(&format!("{tool}.vpkg"));
        let again = op.path(&format!("{tool}.again.vpkg"));
        for out in [&pkg, &again] {
            let built = op.ok(&[
                "package",
                "build",
                &dir,
                "--key",
                key.to_str().expect("utf-8"),
                "--out",
                out.to_str().expect("utf-8"),
            ]);
            assert!(
                built.stderr.is_empty(),
                "{tool}: the build warns: {}",
                String::from_utf8_lossy(&built.stderr)
            );
        }
        let bytes = std::fs::read(&pkg).expect("package");
        assert_eq!(
            bytes,
            std::fs::read(&again).expect("package"),
            "{tool}: two builds differ"
        );
        let inspected = op.ok(&["package", "inspect", pkg.to_str().expect("utf-8"), "--json"]);
        let inspected: Value = serde_json::from_slice(&inspected.stdout).expect("inspect JSON");
        assert_eq!(inspected["signature_valid"], true, "{inspected:#}");
        assert_eq!(inspected["findings"], json!([]), "{tool}: {inspected:#}");
        let installed = op.ok(&["install", pkg.to_str().expect("utf-8")]);
        assert!(
            String::from_utf8_lossy(&installed.stdout).contains("admitted"),
            "{tool}: {}",
            String::from_utf8_lossy(&installed.stdout)
        );
    }

    // echo: its arguments back.
    let value = op.value("echo", &json!({"text": "hello"}));
    assert_eq!(value, json!({"echo": {"text": "hello"}}));

    // lookup: the record (an operator's `vigil call` sees it unredacted).
    let value = op.value("lookup", &json!({"customer": "C-1042"}));
    assert_eq!(value["name"], "Ada Lovelace", "{value:#}");

    // fetch: a page from a service on this host, any port.
    let port = http_server("hello from the example test");
    let url = format!("http://127.0.0.1:{port}/page");
    let value = op.value("fetch", &json!({ "url": url }));
    assert_eq!(value["status"], 200, "{value:#}");
    assert_eq!(value["body"], "hello from the example test");

    // hostile: reading the host's accounts is blocked; a loop is stopped.
    let value = op.value("read-passwd", &json!({}));
    assert_eq!(value["outcome"], "blocked", "{value:#}");
    let (ok, outcome) = op.call("endless-loop", &json!({}));
    assert!(!ok, "an endless loop cannot succeed: {outcome:#}");
    assert_eq!(outcome["result"]["status"], "tool-failed", "{outcome:#}");
    assert!(
        outcome["result"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("longer than the timeout")),
        "{outcome:#}"
    );

    // wordcount: the files of /srv/docs, as counted here.
    if ensure_dir("/srv/docs") {
        let value = op.value("wordcount", &json!({"dir": "/srv/docs"}));
        let files = std::fs::read_dir("/srv/docs")
            .expect("list /srv/docs")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
            .count();
        assert_eq!(value["files"], files, "{value:#}");
    }
    // notes: a line appended to a note in /srv/notes, nowhere else.
    if ensure_dir("/srv/notes") {
        let name = format!("vigil-example-test-{}.md", std::process::id());
        let note = Path::new("/srv/notes").join(&name);
        let value = op.value(
            "note",
            &json!({"dir": "/srv/notes", "name": name, "text": "buy milk"}),
        );
        let written = std::fs::read_to_string(&note);
        let _ = std::fs::remove_file(&note);
        assert_eq!(written.expect("the note"), "buy milk\n", "{value:#}");
        let (ok, outcome) = op.call(
            "note",
            &json!({"dir": op.path("").to_str().expect("utf-8"), "name": "x.md", "text": "no"}),
        );
        assert!(!ok, "a note outside /srv/notes was written: {outcome:#}");
    }
}
