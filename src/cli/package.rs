//! `vigil package build` and `vigil package inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vigil_crypto::keyfile;

use super::passphrase;
use crate::gatekeeper::poisoning;
use crate::package::inspect::{inspect, Inspection};
use crate::package::manifest::MANIFEST_FILE;
use crate::package::{self, Manifest};

#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Build a signed package from DIR/vigil-tool.toml and its module
    Build(BuildArgs),
    /// Show what a package file holds and what the poisoning scan finds
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Directory holding vigil-tool.toml and the module it names
    pub dir: PathBuf,
    /// The publisher's secret key file (NAME.key)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Env var holding the passphrase of a sealed key
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Package file to write (FILE.vpkg)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A package file
    pub file: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: PackageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PackageCommand::Build(args) => build(args),
        PackageCommand::Inspect(args) => inspect_cmd(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let manifest_path = args.dir.join(MANIFEST_FILE);
    let manifest_bytes = std::fs::read(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&manifest_bytes)
        .with_context(|| format!("{} is not a valid manifest", manifest_path.display()))?;
    let module_path = args.dir.join(manifest.module_file());
    let module = std::fs::read(&module_path)
        .with_context(|| format!("cannot read the module {}", module_path.display()))?;
    let pass = passphrase::from_env(args.passphrase_env.as_deref())?;
    let key = keyfile::read_secret_key(&args.key, pass.as_deref().map(|p| p.as_slice()))?;
    let bytes = package::build(&manifest_bytes, &module, &key)?;
    std::fs::write(&args.out, &bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let file = package::PackageFile::parse(&bytes, u64::MAX)?;
    println!(
        "built {} {} -> {} ({} bytes)",
        manifest.package.name,
        manifest.package.version,
        args.out.display(),
        bytes.len()
    );
    println!("  content hash {}", hex::encode(file.content_hash));
    println!("  publisher    {}", key.public_key().key_id());
    for f in poisoning::scan(&manifest) {
        eprintln!(
            "warning: the gatekeeper will refuse this package unless allowed: {} ({:?})",
            f.id, f.evidence
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect_cmd(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let report = inspect(&bytes, u64::MAX)
        .with_context(|| format!("{} is not a package file", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &Inspection) {
    match &r.manifest {
        Ok(m) => {
            println!("package      {}", poisoning::printable(&m.name));
            println!("version      {}", m.version);
            println!("description  {}", poisoning::printable(&m.description));
        }
        Err(e) => println!("manifest     INVALID: {e}"),
    }
    println!("format       {}", r.format_version);
    println!(
        "publisher    {}",
        r.publisher_key_id.as_deref().unwrap_or("(invalid key)")
    );
    if let Some(fp) = &r.publisher_fingerprint {
        println!("fingerprint  {fp}");
    }
    println!(
        "hash         {} ({})",
        r.content_hash,
        if r.hash_matches {
            "matches the content"
        } else {
            "DOES NOT match the content"
        }
    );
    println!("signature    {}", r.signature);
    println!(
        "size         {} bytes (manifest {}, module {})",
        r.file_bytes, r.manifest_bytes, r.module_bytes
    );
    if let Ok(m) = &r.manifest {
        println!("tools");
        for t in &m.tools {
            println!(
                "  {} [{}] {}",
                poisoning::printable(&t.name),
                t.sensitivity,
                poisoning::printable(&t.description)
            );
        }
        let c = &m.capabilities;
        println!("capabilities");
        println!("  network     {}", list(&c.network));
        println!("  fs read     {}", list(&c.filesystem.read));
        println!("  fs write    {}", list(&c.filesystem.write));
        println!("  env         {}", list(&c.env));
        println!(
            "limits       memory {} MiB, timeout {} ms, output {} bytes",
            m.limits.memory_mib, m.limits.timeout_ms, m.limits.max_output_bytes
        );
    }
    if r.findings.is_empty() {
        println!("findings     none");
    } else {
        println!("findings");
        for f in &r.findings {
            println!("  {}  {:?}", f.id, f.evidence);
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}
