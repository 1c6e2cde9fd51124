//! Precision and recall of the privacy filter per type and overall on the
//! generated labelled corpus (tests/privacy_support/corpus.rs), and its
//! throughput. Targets: recall >= 0.98, precision >= 0.95 overall. Also the
//! time to redact a text made of one match repeated (`a@b.co `) at 0.25, 1
//! and 2 MiB: linear work reads as about 4x and 8x the 0.25 MiB time.

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/privacy_support/corpus.rs"]
mod corpus;

use std::collections::BTreeSet;
use std::time::Instant;

use vigil::privacy::{PiiKind, Redactor};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let samples = corpus::corpus(0xbe7c4, 300, 3000);
    let redactor = Redactor::new();
    let (per, all, wrong) = corpus::evaluate(&redactor, &samples);
    println!("== privacy filter on {} labelled samples", samples.len());
    println!(
        "{:<16} {:>6} {:>6} {:>6} {:>10} {:>8}",
        "type", "tp", "fp", "fn", "precision", "recall"
    );
    for kind in PiiKind::ALL {
        let c = per.get(&kind).copied().unwrap_or_default();
        println!(
            "{:<16} {:>6} {:>6} {:>6} {:>10.4} {:>8.4}",
            kind.tag(),
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
    }
    println!(
        "{:<16} {:>6} {:>6} {:>6} {:>10.4} {:>8.4}",
        "OVERALL",
        all.tp,
        all.fp,
        all.fn_,
        all.precision(),
        all.recall()
    );
    for w in wrong.iter().take(10) {
        println!("  {w}");
    }
    let kinds: BTreeSet<PiiKind> = PiiKind::ALL.into_iter().collect();
    let bytes: usize = samples.iter().map(|s| s.text.len()).sum();
    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed().as_secs_f64() < 2.0 {
        for s in &samples {
            std::hint::black_box(redactor.redact_text(&s.text, &kinds));
        }
        rounds += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput: {:.1} MB/s, {:.0} texts/s",
        (bytes * rounds) as f64 / secs / 1e6,
        (samples.len() * rounds) as f64 / secs
    );
    println!("== dense matches: `a@b.co ` repeated");
    let mut base = None;
    for kib in [256usize, 1024, 2048] {
        let text = "a@b.co ".repeat(kib * 1024 / 7);
        let started = Instant::now();
        let (_, found) = redactor.redact_text(&text, &kinds);
        let secs = started.elapsed().as_secs_f64();
        let ratio = secs / *base.get_or_insert(secs);
        println!(
            "{:>5} KiB: {:>8.1} ms, {} redactions, {:.1}x the 256 KiB time ({:.1}x the size)",
            kib,
            secs * 1e3,
            found.total(),
            ratio,
            kib as f64 / 256.0
        );
    }
}
