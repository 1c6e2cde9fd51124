//! Precision and recall of the privacy filter per type and overall on the
//! generated labelled corpus (tests/privacy_support/corpus.rs), and its
//! throughput. Targets: recall >= 0.98, precision >= 0.95 overall.

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
}
