//! `vigil demo`: vigil doing its job, end to end, as a short readable story,
//! in a temporary home (or `--home` / `--keep DIR`): node and publisher keys,
//! the example tools packaged, signed and admitted by the gatekeeper (and a
//! tampered package refused), calls through the node's MCP call pipeline
//! (allowed, refused for bad arguments, redacted, a hostile tool contained
//! by the sandbox), a signed checkpoint, an exported bundle and its offline
//! verification with the code `vigil-verify` runs. Everything it needs is in
//! the binary (the tools are embedded, see [`tools`]), so it works on a
//! machine with only the Rust toolchain.

mod tools;

use std::io::{BufReader, BufWriter, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use serde_json::{json, Value};
use vigil_crypto::{keyfile, SigningKey};
use vigil_ledger::bundle::{export, verify_bundle, ExportOptions};
use vigil_ledger::verify::VerifyError;

use base64::Engine as _;

use self::tools::DemoPackage;
use super::admin::execute;
use crate::control::protocol::{Reply, Request, TrustRequest};
use crate::mcp::pipeline::QueueOnly;
use crate::mcp::CallReply;
use crate::node::config::Config;
use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo home here instead of a temporary directory
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// The agent the demo calls tools as.
const AGENT: &str = "support-bot";

/// A numbered step of the story.
struct Story {
    step: u32,
}

impl Story {
    fn say(&mut self, text: &str) {
        self.step += 1;
        println!("\n{}. {text}", self.step);
    }
    fn detail(&self, text: &str) {
        println!("   {text}");
    }
}

pub fn run(home: Option<&Path>, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp;
    let home_is_temporary = home.is_none() && args.keep.is_none();
    let root = match (home, args.keep.as_deref()) {
        (Some(h), _) | (None, Some(h)) => h.to_path_buf(),
        (None, None) => {
            temp = tempfile::Builder::new()
                .prefix("vigil-demo-")
                .tempdir()
                .context("cannot create a temporary demo home")?;
            temp.path().join("home")
        }
    };
    let home = Home::at(&root);
    let mut story = Story { step: 0 };
    println!("vigil demo: signed tools, run in a sandbox, every decision on record.");

    story.say("The node gets a home and a hybrid ML-DSA-65 + Ed25519 key.");
    let report = home.init(None).context("cannot initialize the demo home")?;
    story.detail(&format!("home        {}", root.display()));
    story.detail(&format!("node key id {}", report.key_id));

    story.say("Two publishers sign their tools; the operator trusts each for its own names.");
    let work = root.join("publishers");
    std::fs::create_dir_all(&work).context("cannot create the publishers directory")?;
    let acme = publisher(&home, &work, "acme")?;
    let shady = publisher(&home, &work, "shady")?;
    let mut packages = Vec::new();
    for (package, key) in [
        (&tools::ECHO, &acme),
        (&tools::LOOKUP, &acme),
        (&tools::HOSTILE, &shady),
    ] {
        let bytes = crate::package::build(package.manifest.as_bytes(), package.wasm, key)
            .with_context(|| format!("cannot build the {} package", package.short))?;
        let path = work.join(format!("{}.vpkg", package.short));
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        packages.push((package, path, bytes));
    }
    story.detail(&format!(
        "built {} packages; each signature is {} bytes: ML-DSA-65 (3309) + Ed25519 (64)",
        packages.len(),
        acme.sign(b"size probe", b"demo")?.as_bytes().len()
    ));

    story.say("The gatekeeper checks each package before any of its code runs.");
    for (package, path, bytes) in &packages {
        install(
            &home,
            package,
            &path.display().to_string(),
            bytes,
            &mut story,
        )?;
    }
    let (_, _, echo_bytes) = packages
        .first()
        .ok_or_else(|| anyhow!("the demo has no packages"))?;
    let mut tampered = echo_bytes.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 0x01;
    }
    install(
        &home,
        &tools::ECHO,
        "echo.vpkg with one bit flipped",
        &tampered,
        &mut story,
    )?;

    story.say(&format!(
        "Agent `{AGENT}` calls tools through the node's MCP call pipeline."
    ));
    add_agent(&home)?;
    let config = Config::load(&home.config_path())?;
    let pipeline = super::serve::start_pipeline(&home, &config)?.pipeline;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let call = |tool: &str, arguments: Value| -> CallReply {
        runtime.block_on(pipeline.call(AGENT, tool, arguments, &QueueOnly))
    };
    let allowed = call("echo", json!({ "text": "hello from the agent" }));
    show(
        &story,
        "echo",
        &json!({ "text": "hello from the agent" }),
        &allowed,
    );
    let bad = json!({ "text": 42, "extra": true });
    let refused = call("echo", bad.clone());
    show(&story, "echo", &bad, &refused);
    let lookup = call("lookup", json!({ "customer": "C-1042" }));
    show(&story, "lookup", &json!({ "customer": "C-1042" }), &lookup);
    if lookup.redactions.total() > 0 {
        let kinds: Vec<String> = lookup
            .redactions
            .0
            .iter()
            .map(|(kind, n)| format!("{n} {kind:?}").to_lowercase())
            .collect();
        story.detail(&format!(
            "   the privacy filter replaced {} before the agent (or the stored payload) saw them",
            kinds.join(", ")
        ));
    }

    story.say("A signed but hostile tool runs in the sandbox with an empty grant.");
    let hostile = call("read-passwd", json!({}));
    show(&story, "read-passwd", &json!({}), &hostile);
    if let Some(report) = &hostile.capabilities {
        story.detail("   capability report (kept in the call's ledger entry):");
        for d in &report.denied {
            story.detail(&format!(
                "     denied {:?} {}: {}",
                d.resource, d.target, d.reason
            ));
        }
        if report.denied.is_empty() {
            story.detail("     nothing denied");
        }
    }
    let looped = call("endless-loop", json!({}));
    show(&story, "endless-loop", &json!({}), &looped);

    story.say("The node signs a checkpoint of its ledger.");
    let auditor = pipeline.auditor();
    let checkpoint = auditor.checkpoint()?;
    story.detail(&format!(
        "{} entries, Merkle root {}, origin {}",
        checkpoint.checkpoint.size,
        hex::encode(checkpoint.checkpoint.root),
        checkpoint.checkpoint.origin
    ));
    for index in 0..auditor.ledger().size() {
        if let Some(e) = auditor.ledger().entry(index)? {
            story.detail(&format!(
                "  #{:<2} {:<16} {:<6} {:<20} {}",
                e.index, e.kind, e.decision, e.actor, e.subject
            ));
        }
    }

    story.say("An auditor gets the exported bundle and the node's public key.");
    let bundle_path = root.join("audit.bundle");
    let node_pub = keyfile::read_public_key(&home.node_pub_path())?;
    let file = std::fs::File::create(&bundle_path)
        .with_context(|| format!("creating {}", bundle_path.display()))?;
    let mut out = BufWriter::new(file);
    let summary = export(
        auditor.ledger(),
        &node_pub,
        &mut out,
        &ExportOptions::default(),
        &mut |_, _| {},
    )?;
    out.flush()?;
    drop(out);
    story.detail(&format!(
        "{} ({} entries, {} checkpoints, {} payloads, {} bytes)",
        bundle_path.display(),
        summary.to - summary.from,
        summary.checkpoints,
        summary.payloads,
        summary.bytes
    ));

    story.say("Offline, the auditor verifies it (the same code as `vigil-verify`).");
    let file = std::fs::File::open(&bundle_path)
        .with_context(|| format!("opening {}", bundle_path.display()))?;
    let verified = verify_bundle(BufReader::new(file), &node_pub)
        .map_err(|e| anyhow!("the demo bundle does not verify: {e}"))?;
    story.detail(&format!("bundle as exported    -> {verified}"));
    let mut rewritten = std::fs::read(&bundle_path)?;
    rewrite_history(&mut rewritten);
    match verify_bundle(rewritten.as_slice(), &node_pub) {
        Ok(_) => bail!("a rewritten bundle verified; this must never happen"),
        Err(VerifyError::Failed(f)) => {
            story.detail(&format!("one entry rewritten   -> INVALID: {f}"))
        }
        Err(e) => story.detail(&format!("one entry rewritten   -> rejected: {e}")),
    }
    story.detail(&format!(
        "by hand: vigil-verify {} --key {}",
        bundle_path.display(),
        home.node_pub_path().display()
    ));

    if home_is_temporary {
        println!("\ndone (the temporary demo home is removed; pass --keep DIR to keep one)");
    } else {
        println!(
            "\ndone: the demo home is {} (try `vigil --home {} audit tail`)",
            root.display(),
            root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Generates a publisher key pair in `dir` and trusts it for `NAME/*`.
fn publisher(home: &Home, dir: &Path, name: &str) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate();
    keyfile::write_key_pair(&dir.join(name), &key, Some(name), None)?;
    let scopes = [format!("{name}/*")];
    let public = key.public_key();
    let request = Request::Trust(TrustRequest::AddPublisher {
        key: keyfile::public_key_line(public, None),
        name: name.to_string(),
        scopes: scopes.to_vec(),
    });
    execute(home, request, &mut |_| {})?;
    Ok(key)
}

/// Runs the gatekeeper on `bytes`, records its decision, stores the
/// package when admitted, and tells what happened.
fn install(
    home: &Home,
    package: &DemoPackage,
    source: &str,
    bytes: &[u8],
    story: &mut Story,
) -> anyhow::Result<()> {
    let request = Request::Install {
        source: source.to_string(),
        len: bytes.len() as u64,
        package_b64: base64::engine::general_purpose::STANDARD.encode(bytes),
        allow_findings: Vec::new(),
        allow_downgrade: false,
    };
    let Reply::Installed {
        admitted,
        package: label,
        tools,
        reason,
        ..
    } = execute(home, request, &mut |_| {})?
    else {
        bail!("the node answered `install` with something else");
    };
    if admitted {
        story.detail(&format!(
            "{:<32} -> admitted {} (tools: {})",
            format!("{}.vpkg", package.short),
            label.replace('@', " "),
            tools.join(", ")
        ));
    } else {
        let reason = reason.unwrap_or_default();
        story.detail(&format!("{source:<32} -> refused: {reason}"));
        if !source.contains("flipped") {
            bail!("the demo package {} was refused: {reason}", package.short);
        }
    }
    Ok(())
}

/// Lets the demo agent call the demo's tools (vigil.toml `[[agents]]`).
fn add_agent(home: &Home) -> anyhow::Result<()> {
    let path = home.config_path();
    let mut text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.push_str(&format!(
        "\n# Added by `vigil demo`.\n[[agents]]\nname = \"{AGENT}\"\n\
         tools = [\"echo\", \"lookup\", \"read-passwd\", \"endless-loop\"]\n"
    ));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Prints one call and what the agent got back (the text of its MCP result).
fn show(story: &Story, tool: &str, arguments: &Value, reply: &CallReply) {
    story.detail(&format!("{AGENT} -> {tool} {arguments}"));
    let entry = reply
        .ledger_index
        .map_or("not recorded".to_string(), |i| format!("ledger #{i}"));
    match &reply.result {
        Ok(value) => story.detail(&format!("   allowed: {value}  ({entry})")),
        Err(refusal) => story.detail(&format!(
            "   refused ({}): {refusal}  ({entry})",
            refusal.code()
        )),
    }
}

/// What someone rewriting history would do: change who made the first tool
/// call in the bundle (or, failing that, flip one byte in its middle).
fn rewrite_history(bundle: &mut [u8]) {
    let from = format!("agent:{AGENT}");
    let to = format!("agent:{}", AGENT.replace("bot", "b0t"));
    if let Some(at) = bundle
        .windows(from.len())
        .position(|w| w == from.as_bytes())
    {
        bundle[at..at + to.len()].copy_from_slice(to.as_bytes());
    } else {
        let middle = bundle.len() / 2;
        if let Some(b) = bundle.get_mut(middle) {
            *b ^= 0x01;
        }
    }
}
