//! What an operator meets at the command line, through the real binary:
//! the `[[agents]]` example `vigil init` writes, `vigil mcp` refusing an
//! agent it could serve nothing to (exit 2), JSON without Rust types
//! (`package inspect`, `key show`, `verify`, `audit checkpoint/verify/erase`,
//! `trust`), shell completions, one line
//! per failure, and the call log (agent, tool, status, ledger index) that
//! never shows a call's arguments, whatever `VIGIL_LOG` asks for.

#[path = "mcp_support/mod.rs"]
mod mcp_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mcp_support::{AssertOk as _, Node};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt as _;
use serde_json::Value;

/// `vigil --home DIR/home`, with no inherited home or log filter.
fn vigil(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME")
        .env_remove("VIGIL_LOG")
        .arg("--home")
        .arg(dir.join("home"));
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn init_writes_a_commented_agents_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    vigil(dir.path()).arg("init").assert_ok();
    let config = std::fs::read_to_string(dir.path().join("home/vigil.toml")).expect("vigil.toml");
    for line in ["# [[agents]]", "# name = \"local\"", "# tools = [\"*\"]"] {
        assert!(
            config.lines().any(|l| l == line),
            "no `{line}` in:\n{config}"
        );
    }
}

#[test]
fn mcp_refuses_to_start_for_an_agent_missing_from_agents() {
    // A fresh home has no [[agents]]: the default stdio agent `local` is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    vigil(dir.path()).arg("init").assert_ok();
    let out = vigil(dir.path())
        .arg("mcp")
        .stdin(Stdio::null())
        .output()
        .expect("run vigil mcp");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout is MCP's: {}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("agent `local` is not in [[agents]]")
            && stderr.contains("no agents are configured")
            && stderr.contains("name = \"local\""),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");

    // With agents configured, an unknown --agent is refused naming them.
    let node = Node::new("");
    let out = node
        .vigil()
        .env_remove("VIGIL_LOG")
        .args(["mcp", "--agent", "ghost"])
        .stdin(Stdio::null())
        .output()
        .expect("run vigil mcp");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("agent `ghost`") && stderr.contains("configured agents: local, alice, bob"),
        "{stderr}"
    );
}

#[test]
fn completions_cover_the_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = vigil(dir.path()).args(["completions", "bash"]).assert_ok();
    let script = text(&out.stdout);
    assert!(script.contains("complete -F _vigil"), "not a bash script");
    for sub in ["install", "package", "audit", "mcp", "completions"] {
        assert!(script.contains(sub), "bash completion lacks `{sub}`");
    }
    let out = vigil(dir.path()).args(["completions", "zsh"]).assert_ok();
    assert!(text(&out.stdout).contains("#compdef vigil"));
    // A reader that goes away (`| head`) is not an error.
    let mut child = vigil(dir.path())
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let out = vigil(dir.path())
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn key_show_and_verify_print_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let stem = d.join("alice");
    vigil(d)
        .args(["key", "generate", "--comment", "alice@ci", "--out"])
        .arg(&stem)
        .assert_ok();
    let shown = json(
        &vigil(d)
            .args(["key", "show", "--json"])
            .arg(d.join("alice.pub"))
            .assert_ok(),
    );
    assert_eq!(shown["kind"], "public");
    assert_eq!(shown["comment"], "alice@ci");
    let key_id = shown["key_id"].as_str().expect("key_id").to_string();
    assert!(
        !key_id.is_empty() && shown["fingerprint"].is_string(),
        "{shown:#}"
    );
    let secret = json(
        &vigil(d)
            .args(["key", "show", "--json"])
            .arg(d.join("alice.key"))
            .assert_ok(),
    );
    assert_eq!(secret["kind"], "secret");
    assert_eq!(secret["key_id"], key_id.as_str());
    assert_eq!(secret["comment"], Value::Null);

    let file = d.join("report.txt");
    std::fs::write(&file, "quarterly numbers\n").expect("write");
    vigil(d)
        .args(["sign", "--namespace", "file", "--key"])
        .arg(d.join("alice.key"))
        .arg(&file)
        .assert_ok();
    let verify = || {
        let mut cmd = vigil(d);
        cmd.args(["verify", "--json", "--namespace", "file", "--key"])
            .arg(d.join("alice.pub"))
            .arg("--signature")
            .arg(d.join("report.txt.sig"))
            .arg(&file);
        cmd.output().expect("run vigil verify")
    };
    let good = verify();
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    let good = json(&good);
    assert_eq!(good["valid"], true, "{good:#}");
    assert_eq!(good["key_id"], key_id.as_str());
    assert_eq!(good["namespace"], "file");
    assert!(good.get("error").is_none(), "{good:#}");

    std::fs::write(&file, "quarterly numbers, revised\n").expect("tamper");
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    assert!(bad.stderr.is_empty(), "JSON mode: {}", text(&bad.stderr));
    let bad = json(&bad);
    assert_eq!(bad["valid"], false, "{bad:#}");
    assert!(
        bad["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{bad:#}"
    );
}

/// A copy of package `bytes` whose manifest is replaced by `manifest`
/// (lengths fixed up; hash and signature left as they were).
fn with_manifest(bytes: &[u8], manifest: &[u8]) -> Vec<u8> {
    let len = u32::from_be_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
    let mut out = bytes[..10].to_vec();
    out.extend((manifest.len() as u32).to_be_bytes());
    out.extend(manifest);
    out.extend(&bytes[14 + len..]);
    out
}

#[test]
fn package_inspect_json_has_no_rust_types() {
    let node = Node::new("");
    let pkg = node.path("echo.vpkg");
    let inspect = |file: &Path| {
        let out = node
            .vigil()
            .args(["package", "inspect", "--json"])
            .arg(file)
            .assert_ok();
        (text(&out.stdout), json(&out))
    };
    let (raw, good) = inspect(&pkg);
    assert!(!raw.contains("\"Ok\"") && !raw.contains("\"Err\""), "{raw}");
    assert_eq!(good["manifest"]["valid"], true, "{good:#}");
    assert_eq!(good["manifest"]["name"], "acme/echo");
    assert_eq!(good["signature_valid"], true);
    assert_eq!(good["hash_matches"], true);

    let broken = node.path("broken.vpkg");
    let bytes = std::fs::read(&pkg).expect("package");
    std::fs::write(&broken, with_manifest(&bytes, b"[package\nname = ")).expect("write");
    let (raw, bad) = inspect(&broken);
    assert!(!raw.contains("\"Ok\"") && !raw.contains("\"Err\""), "{raw}");
    assert_eq!(bad["manifest"]["valid"], false, "{bad:#}");
    assert!(bad["manifest"]["error"].is_string(), "{bad:#}");
    assert_eq!(bad["signature_valid"], false);
    assert_eq!(bad["hash_matches"], false);
}

#[test]
fn a_failure_is_reported_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nobody.pub");
    let out = vigil(dir.path())
        .args(["key", "show"])
        .arg(&missing)
        .output()
        .expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");

    // An error that embeds its source (an unreadable vigil.toml): the
    // reason appears once, not once per link of the error chain.
    vigil(dir.path()).arg("init").assert_ok();
    let config = dir.path().join("home/vigil.toml");
    std::fs::remove_file(&config).expect("remove vigil.toml");
    std::fs::create_dir(&config).expect("a directory in its place");
    let out = vigil(dir.path()).arg("tools").output().expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
}

/// Runs one MCP session over `vigil mcp --agent local` with `VIGIL_LOG` set
/// to `filter`: an allowed call and a refused one, both with an e-mail
/// address and a secret in their arguments. Returns the node's stderr.
fn session_log(node: &Node, filter: &str) -> String {
    let log = node.path(&format!("stderr-{filter}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env_remove("VIGIL_HOME")
        .env("VIGIL_LOG", filter)
        .arg("--home")
        .arg(node.home())
        .args(["mcp", "--agent", "local"]);
    mcp_support::runtime().block_on(async {
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(file)
            .spawn()
            .expect("spawn vigil mcp");
        let client = ().serve(transport).await.expect("connect");
        let mut args = serde_json::Map::new();
        args.insert("text".into(), format!("{EMAIL} {SECRET} {MARKER}").into());
        let ok = client
            .call_tool(CallToolRequestParams::new("echo").with_arguments(args.clone()))
            .await
            .expect("echo");
        assert_ne!(ok.is_error, Some(true), "{ok:?}");
        // Refused by the schema, which quotes the offending value.
        args.insert("text".into(), MARKER_NUMBER.into());
        args.insert("extra".into(), SECRET.into());
        let refused = client
            .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
            .await
            .expect("echo with an extra argument");
        assert_eq!(refused.is_error, Some(true), "{refused:?}");
        let _ = client.cancel().await;
    });
    // Log lines are written before the replies they describe are sent.
    std::fs::read_to_string(&log).expect("log")
}

const EMAIL: &str = "ada.lovelace@example.com";
const SECRET: &str = "password=Zq8vN3xLr5TkW2pY";
/// Argument text no privacy filter redacts.
const MARKER: &str = "marmalade-quokka-7f3k";
const MARKER_NUMBER: u64 = 8675309123;

/// `text` as a debug-printed byte array (`[109, 97, ...`), the way storage
/// engines log the values they write.
fn as_byte_list(text: &str) -> String {
    let bytes: Vec<String> = text.bytes().map(|b| b.to_string()).collect();
    bytes.join(", ")
}

#[test]
fn calls_are_logged_without_their_arguments() {
    let node = Node::new("");
    let trace = session_log(&node, "trace");
    assert!(
        trace.lines().count() > 5,
        "VIGIL_LOG=trace logs something: {trace}"
    );
    let marker_bytes = as_byte_list(MARKER);
    let number = MARKER_NUMBER.to_string();
    for secret in [
        EMAIL,
        "ada.lovelace",
        "Zq8vN3xLr5TkW2pY",
        MARKER,
        &marker_bytes,
        &number,
        &as_byte_list(&number),
    ] {
        assert!(
            !trace.contains(secret),
            "`{secret}` appears in the trace log:\n{}",
            trace
                .lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let info = session_log(&node, "info");
    let calls: Vec<&str> = info
        .lines()
        .filter(|l| l.contains("vigil::mcp::call_log") && l.contains("call"))
        .collect();
    assert_eq!(calls.len(), 2, "two call lines in:\n{info}");
    assert!(
        calls[0].contains("agent=\"local\"")
            && calls[0].contains("tool=\"echo\"")
            && calls[0].contains("status=\"ok\"")
            && calls[0].contains("ledger_index="),
        "{}",
        calls[0]
    );
    assert!(
        calls[1].contains("status=\"invalid-arguments\"") && calls[1].contains("ledger_index="),
        "{}",
        calls[1]
    );
    for secret in ["ada.lovelace", "Zq8vN3xLr5TkW2pY", MARKER, &number] {
        assert!(!info.contains(secret), "`{secret}` in:\n{info}");
    }
}

#[test]
fn results_print_as_json() {
    let node = Node::new("");
    let ok_json = |args: &[&str]| json(&node.vigil().args(args).assert_ok());
    // An entry with a payload, then a checkpoint.
    let appended = node
        .vigil()
        .args([
            "audit",
            "append",
            "--actor",
            "ci",
            "--subject",
            "s",
            "--payload-file",
        ])
        .arg(node.path("acme.pub"))
        .assert_ok();
    let index: u64 = text(&appended.stdout).trim().parse().expect("index");
    let cp = ok_json(&["audit", "checkpoint", "--json"]);
    let size = node.entries().len() as u64;
    assert_eq!(cp["size"], size, "{cp}");
    assert!(
        cp["origin"].is_string() && cp["root_hash"].is_string(),
        "{cp}"
    );
    assert!(
        cp["note"].as_str().is_some_and(|n| n.contains('\u{2014}')),
        "{cp}"
    );

    let verified = ok_json(&["audit", "verify", "--json"]);
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["ledger"]["entries"], size, "{verified}");
    assert_eq!(verified["ledger"]["uncovered"], 0, "{verified}");
    assert!(verified["warning"].is_null(), "{verified}");

    let erased = ok_json(&[
        "audit",
        "erase",
        &index.to_string(),
        "--reason",
        "GDPR",
        "--json",
    ]);
    assert_eq!(erased["index"], index, "{erased}");
    assert_eq!(erased["recorded"], size, "{erased}");
    assert!(erased["checkpoint_error"].is_null(), "{erased}");

    // A tail no checkpoint covers yet: still valid, with the warning.
    node.vigil()
        .args(["audit", "append", "--actor", "ci", "--subject", "t"])
        .assert_ok();
    let verified = ok_json(&["audit", "verify", "--json"]);
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["ledger"]["uncovered"], 1, "{verified}");
    assert!(
        verified["warning"]
            .as_str()
            .is_some_and(|w| w.contains("vigil audit checkpoint")),
        "{verified}"
    );

    // A bundle, verified with --json as vigil-verify would.
    let bundle = node.path("b.bundle");
    node.vigil()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .assert_ok();
    let checked = json(
        &node
            .vigil()
            .args(["audit", "verify", "--json", "--bundle"])
            .arg(&bundle)
            .assert_ok(),
    );
    assert_eq!(checked["valid"], true, "{checked}");
    assert!(checked["bundle"]["entries"].as_u64() > Some(0), "{checked}");
    // No key: nothing verified, exit 2, still one JSON object.
    let unusable = node
        .vigil()
        .args(["audit", "verify", "--json", "--key"])
        .arg(node.path("no-such.pub"))
        .output()
        .expect("run");
    assert_eq!(unusable.status.code(), Some(2));
    let v = json(&unusable);
    assert_eq!(v["valid"], false, "{v}");
    assert!(v["error"].is_string(), "{v}");

    // Trust changes: the recorded change.
    node.vigil()
        .args(["key", "generate", "--out"])
        .arg(node.path("ops"))
        .assert_ok();
    let added = json(
        &node
            .vigil()
            .args(["trust", "operator", "add", "--name", "ops", "--json"])
            .arg(node.path("ops.pub"))
            .assert_ok(),
    );
    assert_eq!(added["change"]["change"], "operator-added", "{added}");
    assert_eq!(added["closed_links"], 0, "{added}");
    let key_id = added["change"]["key_id"].as_str().expect("key_id");
    let revoked = ok_json(&[
        "trust", "--json", "operator", "revoke", key_id, "--reason", "left",
    ]);
    assert_eq!(revoked["change"]["change"], "operator-revoked", "{revoked}");
    let listed = ok_json(&["trust", "list", "--json"]);
    assert!(listed["operators"].is_array(), "{listed}");
}
