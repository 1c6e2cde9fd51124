//! Admission time of 100 KB, 1 MB and 10 MB packages (read the file, parse,
//! hash, verify both signature halves, trust, name, version and poisoning
//! checks), printed next to `openssl dgst -sha256` of the same file measured
//! in the same run, with the ratio and the target (at most 1.5x the openssl
//! time plus 0.5 ms). Run with `cargo bench --bench admission`.

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vigil::gatekeeper::history::AdmissionHistory;
use vigil::gatekeeper::{Decision, Gatekeeper};
use vigil::trust::TrustStore;
use vigil_crypto::SigningKey;

const MANIFEST: &str = "[package]\nname = \"acme/bench\"\nversion = \"1.0.0\"\ndescription = \"Benchmark package.\"\n\n[[tools]]\nname = \"bench\"\ndescription = \"Does nothing quickly.\"\ninput_schema = { type = \"object\", properties = { n = { type = \"integer\", description = \"How many.\" } } }\n";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_admission(path: &Path, gatekeeper: &Gatekeeper<'_>, runs: usize) -> Duration {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let bytes = std::fs::read(path).expect("read package");
        let decision = gatekeeper.admit(&bytes, &Default::default());
        times.push(start.elapsed());
        assert!(matches!(decision, Decision::Admitted(_)), "{decision:?}");
    }
    median(times)
}

fn time_openssl(path: &Path, runs: usize) -> Option<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256"])
            .arg(path)
            .output()
            .ok()?;
        times.push(start.elapsed());
        if !out.status.success() {
            return None;
        }
    }
    Some(median(times))
}

fn time_sha256(bytes: &[u8], runs: usize) -> Duration {
    use sha2::Digest as _;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(sha2::Sha256::digest(bytes));
        times.push(start.elapsed());
    }
    median(times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate();
    let mut trust = TrustStore::default();
    trust
        .add_publisher(key.public_key(), "bench", &["acme/*".to_string()], 0)
        .expect("trust");
    let history = AdmissionHistory::default();
    let gatekeeper = Gatekeeper {
        trust: &trust,
        history: &history,
        max_package_bytes: vigil::package::format::DEFAULT_MAX_PACKAGE_BYTES,
    };
    // openssl's time includes starting the process; show that floor too.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("write");
    if let Some(startup) = time_openssl(&empty, 30) {
        println!(
            "openssl dgst -sha256 of an empty file: {:.3} ms",
            ms(startup)
        );
    }
    println!(
        "{:>8}  {:>12}  {:>12}  {:>6}  {:>12}  {:>14}  result",
        "size", "admit ms", "openssl ms", "ratio", "target ms", "sha2 only ms"
    );
    for (label, size) in [
        ("100 KB", 100 * 1000),
        ("1 MB", 1000 * 1000),
        ("10 MB", 10 * 1000 * 1000),
    ] {
        let module: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
        let bytes = vigil::package::build(MANIFEST.as_bytes(), &module, &key).expect("build");
        let path = dir.path().join(format!("bench-{size}.vpkg"));
        std::fs::write(&path, &bytes).expect("write");
        let runs = if size >= 10_000_000 { 30 } else { 100 };
        // Warm the page cache and the code paths once.
        time_admission(&path, &gatekeeper, 3);
        let _ = time_openssl(&path, 3);
        let admit = time_admission(&path, &gatekeeper, runs);
        let hash_only = time_sha256(&bytes, runs);
        match time_openssl(&path, runs) {
            Some(openssl) => {
                let target = ms(openssl) * 1.5 + 0.5;
                println!(
                    "{label:>8}  {:>12.3}  {:>12.3}  {:>6.2}  {:>12.3}  {:>14.3}  {}",
                    ms(admit),
                    ms(openssl),
                    ms(admit) / ms(openssl),
                    target,
                    ms(hash_only),
                    if ms(admit) <= target {
                        "ok"
                    } else {
                        "OVER TARGET"
                    }
                );
            }
            None => println!(
                "{label:>8}  {:>12.3}  {:>12}  (openssl not available)",
                ms(admit),
                "-"
            ),
        }
    }
}
