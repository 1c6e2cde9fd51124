//! Admission and approval integrity, through the real `vigil` binary and
//! the real `echo` tool (the wasm the demo embeds): an older admitted
//! version offered again is refused as a rollback (the newer stays current
//! and callable), unless the operator pins it with `--allow-downgrade`,
//! which is recorded; offering the current version again changes nothing;
//! `vigil uninstall` withdraws a package (recorded) without forgetting its
//! history; a stored package changed on disk never runs; a running node
//! applies installs and uninstalls at once; and a trust store edited by
//! hand (a publisher added, a revocation removed) is refused and recorded
//! until `vigil trust restore` rewrites it from the ledger.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::SystemTime;

use serde_json::{json, Value};

/// The echo tool (WASI p2): returns `{"echo": ARGUMENTS}`.
const ECHO: &[u8] = include_bytes!("../src/cli/demo/wasm/v1/echo.wasm");
/// Another tool, whose output is not echo's.
const LOOKUP: &[u8] = include_bytes!("../src/cli/demo/wasm/v1/lookup.wasm");

struct Node {
    dir: tempfile::TempDir,
}

/// Each file of the packages directory: its bytes and modification time.
type Snapshot = BTreeMap<String, (Vec<u8>, SystemTime)>;

impl Node {
    /// A fresh home with publisher `acme` trusted for `acme/*`.
    fn new() -> Self {
        let node = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        node.ok(&["init"]);
        node.ok(&["key", "generate", "--out", &node.path_str("acme")]);
        node.ok(&[
            "trust",
            "publisher",
            "add",
            &node.path_str("acme.pub"),
            "--scope",
            "acme/*",
        ]);
        node
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn vigil(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.env_remove("VIGIL_HOME")
            .env_remove("VIGIL_LOG")
            .arg("--home")
            .arg(self.home());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.vigil().args(args).output().expect("run vigil")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vigil {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// Builds `acme/echo@version` with `module`, returns its path.
    fn build_module(&self, file: &str, version: &str, module: &[u8]) -> PathBuf {
        self.build_signed(file, version, module, "acme.key")
    }

    /// Builds `acme/echo@version` with `module`, signed with `key` (a file
    /// in the test directory).
    fn build_signed(&self, file: &str, version: &str, module: &[u8], key: &str) -> PathBuf {
        let src = self.path(&format!("{file}.src"));
        std::fs::create_dir_all(&src).expect("src dir");
        let manifest = format!(
            "[package]\nname = \"acme/echo\"\nversion = \"{version}\"\ndescription = \"Returns its arguments.\"\n\n[[tools]]\nname = \"echo\"\ndescription = \"Returns the given text (version {version}).\"\ninput_schema = {{ type = \"object\", properties = {{ text = {{ type = \"string\", description = \"Text to echo.\" }} }} }}\n"
        );
        std::fs::write(src.join("vigil-tool.toml"), manifest).expect("manifest");
        std::fs::write(src.join("tool.wasm"), module).expect("module");
        let out = self.path(&format!("{file}.vpkg"));
        self.ok(&[
            "package",
            "build",
            &src.display().to_string(),
            "--key",
            &self.path_str(key),
            "--out",
            &out.display().to_string(),
        ]);
        out
    }

    fn build(&self, version: &str) -> PathBuf {
        self.build_module(&format!("echo-{version}"), version, ECHO)
    }

    fn install(&self, pkg: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["install".to_string(), pkg.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args)
    }

    /// Every ledger entry, read with `vigil audit tail --json`.
    fn ledger(&self) -> Vec<Value> {
        text(
            &self
                .ok(&["audit", "tail", "-n", "1000000", "--json"])
                .stdout,
        )
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry is JSON"))
        .collect()
    }

    /// The entries recorded since the ledger held `before`.
    fn new_entries(&self, before: usize) -> Vec<Value> {
        self.ledger().split_off(before)
    }

    /// The rows of `vigil tools --json` (which must succeed).
    fn tools(&self) -> Vec<Value> {
        let out = self.ok(&["tools", "--json"]);
        assert!(
            out.stderr.is_empty(),
            "vigil tools reported: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("tools JSON")
    }

    /// True when `vigil tools` fails.
    fn tools_fail(&self) -> bool {
        !self.run(&["tools", "--json"]).status.success()
    }

    /// The output of a successful `vigil call echo`.
    fn call_echo(&self, text_arg: &str) -> Value {
        let args = json!({ "text": text_arg }).to_string();
        let out = self.ok(&["call", "echo", "--json", "--args", &args]);
        let outcome: Value = serde_json::from_slice(&out.stdout).expect("outcome JSON");
        outcome["result"]["value"].clone()
    }

    fn snapshot(&self) -> Snapshot {
        std::fs::read_dir(self.home().join("packages"))
            .expect("packages dir")
            .map(|e| {
                let e = e.expect("entry");
                let bytes = std::fs::read(e.path()).expect("read");
                let mtime = e.metadata().and_then(|m| m.modified()).expect("mtime");
                (e.file_name().to_string_lossy().to_string(), (bytes, mtime))
            })
            .collect()
    }

    /// The stored package file names (`HASH.vpkg`).
    fn stored(&self) -> Vec<String> {
        self.snapshot()
            .into_keys()
            .filter(|n| n.ends_with(".vpkg"))
            .collect()
    }
}

/// `vigil serve` on the node's home; killed on drop.
struct Serve {
    child: Child,
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
        loop {
            let line = lines
                .next()
                .expect("vigil serve ended before it was ready")
                .expect("read stdout");
            if line.contains("serving MCP on") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self { child }
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The content hash of a package file, as `vigil package inspect` says.
fn hash_of(node: &Node, pkg: &Path) -> String {
    let out = node.ok(&["package", "inspect", "--json", &pkg.display().to_string()]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v["content_hash"]
        .as_str()
        .expect("content_hash")
        .to_string()
}

/// An entry's details (a JSON object, or its canonical text).
fn details(entry: &Value) -> Value {
    match &entry["details"] {
        Value::String(s) => serde_json::from_str(s).expect("details JSON"),
        v => v.clone(),
    }
}

/// Exactly one entry, of `kind` and `decision`.
fn one_entry<'a>(entries: &'a [Value], kind: &str, decision: &str) -> &'a Value {
    assert_eq!(entries.len(), 1, "one new entry: {entries:#?}");
    assert_eq!(entries[0]["kind"], kind, "{}", entries[0]);
    assert_eq!(entries[0]["decision"], decision, "{}", entries[0]);
    &entries[0]
}

fn versions(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            format!("{}@{}", field("package"), field("version"))
        })
        .collect()
}

/// Installs 1.0.0 then 9.9.9 (both admitted).
fn two_versions(node: &Node) -> (PathBuf, PathBuf) {
    let old = node.build("1.0.0");
    let new = node.build("9.9.9");
    node.ok(&["install", &old.display().to_string()]);
    node.ok(&["install", &new.display().to_string()]);
    (old, new)
}

#[test]
fn replaying_an_older_admitted_version_is_refused_and_the_newer_stays_current() {
    let node = Node::new();
    let (old, new) = two_versions(&node);
    let before_files = node.snapshot();
    let before = node.ledger().len();

    let out = node.install(&old, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rollback") && stderr.contains("9.9.9") && stderr.contains("1.0.0"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-downgrade"), "{stderr}");
    let entries = node.new_entries(before);
    let e = one_entry(&entries, "package.refused", "deny");
    assert_eq!(details(e)["code"], "rollback", "{e}");

    // Nothing stored changed: the 9.9.9 file is still there, still current.
    assert_eq!(node.snapshot(), before_files);
    assert!(node
        .stored()
        .contains(&format!("{}.vpkg", hash_of(&node, &new))));
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
    assert_eq!(node.call_echo("still here")["echo"]["text"], "still here");
}

#[test]
fn a_pinned_downgrade_is_admitted_and_recorded() {
    let node = Node::new();
    let (old, new) = two_versions(&node);
    let before = node.ledger().len();

    let out = node.install(&old, &["--allow-downgrade"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("downgrade from 9.9.9"));
    let entries = node.new_entries(before);
    let e = one_entry(&entries, "package.admitted", "allow");
    let d = details(e);
    assert_eq!(d["downgrade"], true, "{d}");
    assert_eq!(d["from"], "9.9.9", "{d}");
    assert_eq!(d["to"], "1.0.0", "{d}");
    assert_eq!(versions(&node.tools()), ["acme/echo@1.0.0"]);
    assert_eq!(node.call_echo("pinned")["echo"]["text"], "pinned");
    assert_eq!(node.stored(), [format!("{}.vpkg", hash_of(&node, &old))]);

    // The pin does not lower the bar: 9.9.9 is still the highest, so it
    // comes back without a flag, and 1.0.0 is a rollback again after it.
    node.ok(&["install", &new.display().to_string()]);
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
    let out = node.install(&old, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rollback"));
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
}

#[test]
fn reinstalling_the_current_version_changes_nothing_stored() {
    let node = Node::new();
    let (_, new) = two_versions(&node);
    let files = node.snapshot();
    let before = node.ledger().len();

    let out = node.install(&new, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already admitted"));
    let entries = node.new_entries(before);
    let e = one_entry(&entries, "package.admitted", "allow");
    assert!(details(e)["reason"]
        .as_str()
        .is_some_and(|r| r.contains("already admitted")));
    assert_eq!(node.snapshot(), files, "no stored file was written");
    assert_eq!(node.call_echo("same")["echo"]["text"], "same");

    // A stored copy damaged on disk is repaired by offering the package again.
    let stored = node
        .home()
        .join("packages")
        .join(format!("{}.vpkg", hash_of(&node, &new)));
    std::fs::write(&stored, b"damaged").expect("damage the stored copy");
    assert!(!node.run(&["tools"]).status.success());
    node.ok(&["install", &new.display().to_string()]);
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
    assert_eq!(node.call_echo("repaired")["echo"]["text"], "repaired");
}

#[test]
fn uninstall_withdraws_the_tools_and_keeps_the_history() {
    let node = Node::new();
    let (old, new) = two_versions(&node);

    let before = node.ledger().len();
    let out = node.run(&["uninstall", "acme/not-there"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("never admitted"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        node.ledger().len(),
        before,
        "nothing was removed, nothing recorded"
    );

    let out = node.ok(&["uninstall", "acme/echo", "--reason", "retired", "--json"]);
    let reply: Value = serde_json::from_slice(&out.stdout).expect("uninstall JSON");
    assert_eq!(reply["package"], "acme/echo@9.9.9", "{reply}");
    assert_eq!(reply["tools"], json!(["echo"]), "{reply}");
    let entries = node.new_entries(before);
    let e = one_entry(&entries, "package.removed", "record");
    assert_eq!(e["index"], reply["recorded"], "{e}");
    assert_eq!(e["subject"], "acme/echo@9.9.9", "{e}");
    assert_eq!(details(e)["reason"], "retired", "{e}");

    assert!(node.tools().is_empty());
    assert!(node.stored().is_empty(), "{:?}", node.stored());
    let out = node.run(&["call", "echo", "--args", r#"{"text":"gone"}"#]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("tool `echo` is not admitted"));
    let out = node.run(&["uninstall", "acme/echo"]);
    assert!(
        text(&out.stderr).contains("uninstalled before"),
        "{}",
        text(&out.stderr)
    );

    // The history remembers 9.9.9: the older version is still a rollback.
    let before = node.ledger().len();
    let out = node.install(&old, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rollback") && text(&out.stderr).contains("9.9.9"));
    let entries = node.new_entries(before);
    assert_eq!(
        details(one_entry(&entries, "package.refused", "deny"))["code"],
        "rollback"
    );
    assert!(node.tools().is_empty());

    // The highest version may come back.
    node.ok(&["install", &new.display().to_string()]);
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
    assert_eq!(node.call_echo("back")["echo"]["text"], "back");
}

#[test]
fn a_running_node_installs_and_uninstalls_at_once() {
    let node = Node::new();
    let serve = Serve::start(&node);
    // While the node runs, a command cannot open the ledger itself: every
    // command below is answered by the node over its control socket.
    let old = node.build("1.0.0");
    node.ok(&["install", &old.display().to_string()]);
    assert_eq!(node.call_echo("live")["echo"]["text"], "live");

    let new = node.build("9.9.9");
    node.ok(&["install", &new.display().to_string()]);
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
    let before = node.ledger().len();
    let out = node.install(&old, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rollback"));
    assert_eq!(node.new_entries(before).len(), 1);
    assert_eq!(node.call_echo("newest")["echo"]["text"], "newest");

    node.ok(&["uninstall", "acme/echo", "--reason", "withdrawn live"]);
    let out = node.run(&["call", "echo", "--args", r#"{"text":"gone"}"#]);
    assert!(!out.status.success(), "the node no longer serves echo");
    assert!(text(&out.stderr).contains("tool `echo` is not admitted"));

    node.ok(&["install", &new.display().to_string()]);
    assert_eq!(node.call_echo("again")["echo"]["text"], "again");
    serve.stop();

    // The same state after a restart, with nothing refused.
    let serve = Serve::start(&node);
    assert_eq!(versions(&node.tools()), ["acme/echo@9.9.9"]);
    serve.stop();
}

#[test]
fn a_stored_package_changed_on_disk_never_runs() {
    let node = Node::new();
    let pkg = node.build("1.0.0");
    node.ok(&["install", &pkg.display().to_string()]);
    let stored = node
        .home()
        .join("packages")
        .join(format!("{}.vpkg", hash_of(&node, &pkg)));
    // A validly signed package of the same name and version, other module.
    let swapped = node.build_module("swapped", "1.0.0", LOOKUP);

    let serve = Serve::start(&node);
    std::fs::copy(&swapped, &stored).expect("swap the stored module");
    // The node keeps running the bytes it verified when it loaded them.
    assert_eq!(node.call_echo("original")["echo"]["text"], "original");
    serve.stop();

    // At restart the changed copy is refused, recorded, and not served.
    let before = node.ledger().len();
    let serve = Serve::start(&node);
    let entries = node.new_entries(before);
    let e = one_entry(&entries, "package.refused", "deny");
    assert_eq!(details(e)["code"], "stored-copy-changed", "{e}");
    let out = node.run(&["call", "echo", "--args", r#"{"text":"x"}"#]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("tool `echo` is not admitted"));
    serve.stop();
}

/// Waits for `child` to exit (at most 60 s) and returns its output.
fn exit_of(mut child: Child) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "vigil serve started on a disagreeing trust store"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_hand_edited_trust_store_is_refused_recorded_and_restored() {
    let node = Node::new();
    let trust_path = node.home().join("trust.toml");
    let recorded_text = std::fs::read_to_string(&trust_path).expect("trust.toml");

    // An attacker with the disk appends a publisher of their own, with
    // every name in its scope, and signs `acme/echo` with its key.
    node.ok(&["key", "generate", "--out", &node.path_str("evil")]);
    let evil_line = std::fs::read_to_string(node.path("evil.pub")).expect("evil.pub");
    let (evil_key, _) = vigil_crypto::keyfile::parse_public_key_line(&evil_line).expect("evil key");
    let evil_id = evil_key.key_id().to_string();
    let evil_pkg = node.build_signed("evil-echo", "9.0.0", ECHO, "evil.key");
    let edit = format!(
        "\n[[publishers]]\nkey_id = \"{evil_id}\"\nkey = \"{}\"\nname = \"evil\"\nscopes = [\"*\"]\nadded_at = 0\n",
        vigil_crypto::keyfile::public_key_line(&evil_key, None)
    );
    std::fs::write(&trust_path, format!("{recorded_text}{edit}")).expect("edit trust.toml");

    let before = node.ledger().len();
    let out = node.install(&evil_pkg, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("disagrees with the trust changes recorded"),
        "{err}"
    );
    assert!(
        err.contains(&evil_id) && err.contains("no trust.changed entry added it"),
        "{err}"
    );
    assert!(err.contains("vigil trust restore"), "{err}");
    let refused = one_entry(&node.new_entries(before), "trust.refused", "deny").clone();
    let differences = details(&refused)["differences"].to_string();
    assert!(differences.contains(&evil_id), "{differences}");
    assert!(node.tools_fail(), "no command uses the edited store");

    // Nor does the node: it refuses to start, and records why.
    let before = node.ledger().len();
    let serve = node
        .vigil()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil serve");
    let out = exit_of(serve);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&evil_id),
        "{}",
        text(&out.stderr)
    );
    one_entry(&node.new_entries(before), "trust.refused", "deny");

    // `vigil trust restore` rewrites the file from the ledger (recorded);
    // the attacker's package is then refused as an untrusted signer.
    let before = node.ledger().len();
    node.ok(&["trust", "restore"]);
    let restored = one_entry(&node.new_entries(before), "trust.changed", "record").clone();
    assert_eq!(details(&restored)["change"], "store-restored");
    assert!(details(&restored)["differences"]
        .to_string()
        .contains(&evil_id));
    assert!(!std::fs::read_to_string(&trust_path)
        .unwrap()
        .contains(&evil_id));
    let before = node.ledger().len();
    let out = node.install(&evil_pkg, &[]);
    assert_eq!(out.status.code(), Some(1));
    one_entry(&node.new_entries(before), "package.refused", "deny");

    // A revocation removed by hand is caught the same way.
    let acme = node.ok(&["trust", "list", "--json"]);
    let store: Value = serde_json::from_slice(&acme.stdout).expect("trust list JSON");
    let acme_id = store["publishers"][0]["key_id"]
        .as_str()
        .expect("key id")
        .to_string();
    node.ok(&[
        "trust",
        "publisher",
        "revoke",
        &acme_id,
        "--reason",
        "key leaked",
    ]);
    let revoked_text = std::fs::read_to_string(&trust_path).unwrap();
    let unrevoked: String = {
        let mut lines = revoked_text.lines().peekable();
        let mut kept = Vec::new();
        while let Some(line) = lines.next() {
            if line.trim() == "[publishers.revoked]" {
                while lines
                    .peek()
                    .is_some_and(|l| !l.trim().is_empty() && !l.starts_with('['))
                {
                    lines.next();
                }
                continue;
            }
            kept.push(line);
        }
        kept.join("\n")
    };
    assert!(!unrevoked.contains("key leaked"), "{unrevoked}");
    std::fs::write(&trust_path, unrevoked).expect("edit trust.toml");
    let before = node.ledger().len();
    let out = node.install(&node.build("1.0.0"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("not revoked in trust.toml but revoked on record"),
        "{err}"
    );
    let entries = node.new_entries(before);
    one_entry(&entries, "trust.refused", "deny");
    node.ok(&["audit", "verify"]);
}
