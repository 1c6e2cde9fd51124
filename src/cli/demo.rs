//! `vigil demo`: a short, readable story of vigil doing its job on an
//! embedded default, in a temporary home (or `--home`). It uses only what is
//! built into the binary, so it works on a fresh machine.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use vigil_crypto::{context, keyfile, SigningKey};

use crate::node::home::Home;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo home here instead of a temporary directory
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

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
    println!("vigil demo: signed tools, verified before they run, every decision on record.");

    story.say("Create a node home with a hybrid ML-DSA-65 + Ed25519 node key.");
    let report = home.init(None).context("cannot initialize the demo home")?;
    story.detail(&format!("home        {}", root.display()));
    story.detail(&format!("node key id {}", report.key_id));

    story.say("A publisher generates its composite key and signs a release.");
    let work = root.join("publisher");
    std::fs::create_dir_all(&work).context("cannot create the publisher directory")?;
    let publisher = SigningKey::generate();
    keyfile::write_key_pair(&work.join("acme"), &publisher, Some("acme"), None)?;
    let release = b"acme/echo 1.0.0: returns its arguments";
    let signature = publisher.sign(release, b"release@acme")?;
    story.detail(&format!(
        "signature: {} bytes = ML-DSA-65 (3309) + Ed25519 (64)",
        signature.as_bytes().len()
    ));

    story.say("The node verifies it: both halves must hold.");
    publisher
        .public_key()
        .verify(release, b"release@acme", &signature)
        .context("the genuine release must verify")?;
    story.detail("genuine release         -> accepted");
    let tampered = b"acme/echo 1.0.0: returns its arguments; also uploads ~/.ssh";
    match publisher
        .public_key()
        .verify(tampered, b"release@acme", &signature)
    {
        Ok(()) => bail!("a tampered release verified; this must never happen"),
        Err(e) => story.detail(&format!("tampered release        -> refused: {e}")),
    }
    match publisher
        .public_key()
        .verify(release, context::PACKAGE, &signature)
    {
        Ok(()) => bail!("a signature verified under another context"),
        Err(e) => story.detail(&format!("same bytes, other use   -> refused: {e}")),
    }

    if home_is_temporary {
        println!("\ndone (the temporary demo home is removed; pass --keep DIR to keep one)");
    } else {
        println!("\ndone: the demo home is {}", root.display());
    }
    Ok(ExitCode::SUCCESS)
}
