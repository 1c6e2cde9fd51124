//! Composite signature cost next to its parts, in one run.
//!
//! Measures composite sign and verify (`vigil_crypto`) and raw ML-DSA-65
//! (pqcrypto-mldsa) and Ed25519 (ed25519-dalek) over the same message
//! representative, interleaving the four in rounds so machine noise hits all
//! of them alike, and prints the ratio composite / (ML-DSA + Ed25519) for sign
//! and verify. Target: at most 1.10 for both. Ed25519 is verified with
//! `verify_strict` on both sides of the comparison, since that is what the
//! composite verifier runs (it refuses small-order keys and points); the
//! ratio measures the composite's own work, not that choice.
//!
//! Run: `cargo bench --bench crypto` (optionally `-- --rounds N`).

/// mimalloc: the allocator of every vigil binary and benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::Signer as _;
use pqcrypto_mldsa::mldsa65;
use vigil_crypto::composite::{message_representative, LABEL};
use vigil_crypto::SigningKey;

const TARGET_RATIO: f64 = 1.10;

fn time_per_op(iters: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    // `cargo test --benches` runs bench binaries with `--bench` absent; keep
    // that quick.
    let quick = !args.iter().any(|a| a == "--bench");
    let (rounds, iters) = if quick { (1, 5) } else { (rounds, 200) };

    let message = vec![0x5au8; 1024];
    let ctx = b"bench/ctx";
    let composite = SigningKey::generate();
    let (ml_pk, ml_sk) = mldsa65::keypair();
    let ed = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let m_prime = message_representative(&message, ctx).expect("ctx fits");

    let comp_sig = composite.sign(&message, ctx).expect("sign");
    let ml_sig = mldsa65::detached_sign_ctx(&m_prime, LABEL, &ml_sk);
    let ed_sig = ed.sign(&m_prime);

    let mut samples: [Vec<Duration>; 6] = Default::default();
    for _ in 0..rounds {
        samples[0].push(time_per_op(iters, || {
            black_box(composite.sign(black_box(&message), ctx).expect("sign"));
        }));
        samples[1].push(time_per_op(iters, || {
            black_box(mldsa65::detached_sign_ctx(
                black_box(&m_prime),
                LABEL,
                &ml_sk,
            ));
        }));
        samples[2].push(time_per_op(iters, || {
            black_box(ed.sign(black_box(&m_prime)));
        }));
        samples[3].push(time_per_op(iters, || {
            composite
                .public_key()
                .verify(black_box(&message), ctx, &comp_sig)
                .expect("verify");
        }));
        samples[4].push(time_per_op(iters, || {
            mldsa65::verify_detached_signature_ctx(&ml_sig, black_box(&m_prime), LABEL, &ml_pk)
                .expect("verify");
        }));
        samples[5].push(time_per_op(iters, || {
            ed.verifying_key()
                .verify_strict(black_box(&m_prime), &ed_sig)
                .expect("verify");
        }));
    }
    let [cs, ms, es, cv, mv, ev] = samples.map(median);
    let sign_ratio = cs.as_secs_f64() / (ms + es).as_secs_f64();
    let verify_ratio = cv.as_secs_f64() / (mv + ev).as_secs_f64();

    println!("composite signature bench: {rounds} rounds x {iters} ops, 1 KiB message, medians");
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>12}",
        "op", "composite us", "ML-DSA-65 us", "Ed25519 us", "ratio"
    );
    println!(
        "{:<10} {:>14.1} {:>14.1} {:>14.1} {:>12.3}",
        "sign",
        micros(cs),
        micros(ms),
        micros(es),
        sign_ratio
    );
    println!(
        "{:<10} {:>14.1} {:>14.1} {:>14.1} {:>12.3}",
        "verify",
        micros(cv),
        micros(mv),
        micros(ev),
        verify_ratio
    );
    for (name, ratio) in [("sign", sign_ratio), ("verify", verify_ratio)] {
        let verdict = if ratio <= TARGET_RATIO {
            "meets"
        } else {
            "MISSES"
        };
        println!("{name}: ratio {ratio:.3} {verdict} the target of {TARGET_RATIO:.2}");
    }
}
