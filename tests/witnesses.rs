//! Witnesses (issue 19 item 2) with three real `vigil serve` nodes on
//! 127.0.0.1: a log node sends each checkpoint to two witness nodes over
//! C2SP tlog-witness, stores their cosignatures, and its export verifies
//! with `vigil-verify --witness ... --quorum 2`; a quorum the bundle lacks
//! fails. The witnesses restart (their state is durable). Then an insider
//! with the log's disk and key rewrites its history and shows the fork to a
//! third witness that never saw the log (it cosigns, trusting on first use)
//! and to the first two: each refuses it (and records the refusal as a
//! ledger entry), so the forked bundle fails a quorum of two.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod verify_support;
use verify_support::{text, vigil, vigil_verify, Served};

fn ok(cmd: &mut Command) -> String {
    verify_support::ok(cmd.output().expect("run vigil"))
}

fn append_config(home: &Path, extra: &str) {
    let path = home.join("vigil.toml");
    let mut config = std::fs::read_to_string(&path).expect("config");
    config.push_str(extra);
    std::fs::write(&path, config).expect("write config");
}

/// A witness home named `name` for the log `origin` signed by `log_pub`;
/// returns its home and verifier keys.
fn witness(dir: &Path, name: &str, origin: &str, log_pub: &Path) -> (PathBuf, Vec<String>) {
    let home = dir.join(name.replace('/', "_"));
    ok(vigil(&home).arg("init"));
    let vkeys: Vec<String> = ok(vigil(&home).args(["witness", "init", "--name", name]))
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(vkeys.len(), 2, "{vkeys:?}");
    append_config(
        &home,
        &format!(
            "\n[[witness.logs]]\norigin = \"{origin}\"\nkeys = [\"{}\"]\n",
            log_pub.display()
        ),
    );
    (home, vkeys)
}

fn append(home: &Path, n: usize, tag: &str) {
    for i in 0..n {
        ok(vigil(home).args([
            "audit",
            "append",
            "--actor",
            &format!("{tag}:{i}"),
            "--subject",
            "ticket:1",
        ]));
    }
}

fn export(home: &Path, out: &Path) {
    ok(vigil(home).args(["audit", "export", "--out"]).arg(out));
}

/// vigil-verify with the log's key and `--witness` each key set, `--quorum`.
fn verify(
    bundle: &Path,
    key: &Path,
    witnesses: &[&[String]],
    quorum: Option<usize>,
) -> (i32, String) {
    let mut cmd = Command::new(vigil_verify());
    cmd.arg(bundle).arg("--key").arg(key);
    for w in witnesses {
        for k in *w {
            cmd.arg("--witness").arg(k);
        }
    }
    if let Some(q) = quorum {
        cmd.args(["--quorum", &q.to_string()]);
    }
    let out = cmd.output().expect("run vigil-verify");
    (out.status.code().unwrap_or(-1), text(&out))
}

/// Exports and verifies until `quorum` witnesses cosigned the newest
/// checkpoint (the log submits in the background), or fails after 20 s.
fn wait_for_quorum(home: &Path, bundle: &Path, key: &Path, witnesses: &[&[String]]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        export(home, bundle);
        let (code, out) = verify(bundle, key, witnesses, None);
        if code == 0 {
            return out;
        }
        assert!(Instant::now() < deadline, "no quorum in time: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn entries(home: &Path) -> Vec<serde_json::Value> {
    ok(vigil(home).args(["audit", "tail", "--json", "-n", "1000"]))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn two_witnesses_cosign_the_log_and_refuse_its_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    ok(vigil(&log).arg("init"));
    append(&log, 1, "setup");
    let note = ok(vigil(&log).args(["audit", "checkpoint"]));
    let origin = note.lines().next().expect("origin line").to_string();
    let log_pub = log.join("node.pub");

    let (w1, k1) = witness(dir.path(), "witness.example/w1", &origin, &log_pub);
    let (w2, k2) = witness(dir.path(), "witness.example/w2", &origin, &log_pub);
    let (w3, k3) = witness(dir.path(), "witness.example/w3", &origin, &log_pub);
    let plain_config = std::fs::read_to_string(log.join("vigil.toml")).expect("config");
    let s1 = Served::start(&w1);
    let s2 = Served::start(&w2);
    append_config(&log, &witnesses_config(&[(&s1, &k1), (&s2, &k2)]));
    let served = Served::start(&log);
    let bundle = dir.path().join("log.bundle");
    let out = wait_for_quorum(&log, &bundle, &log_pub, &[&k1, &k2]);
    assert!(out.contains("cosigned by 2 witnesses"), "{out}");
    // The log grows: the next checkpoint is proven consistent to both.
    append(&log, 4, "honest");
    ok(vigil(&log).args(["audit", "checkpoint"]));
    let out = wait_for_quorum(&log, &bundle, &log_pub, &[&k1, &k2]);
    assert!(out.contains("cosigned by 2 witnesses"), "{out}");
    // A quorum of three, with a witness that never saw the log, fails.
    let (code, out) = verify(&bundle, &log_pub, &[&k1, &k2, &k3], Some(3));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cosigned by 2 of the required witnesses"),
        "{out}"
    );
    let (code, out) = verify(&bundle, &log_pub, &[&k1], Some(2));
    assert_eq!(
        code, 2,
        "a quorum above the witnesses given is a usage error: {out}"
    );
    served.stop();
    for w in [&w1, &w2] {
        let cosigned = entries(w)
            .iter()
            .filter(|e| e["kind"] == "witness.cosigned" && e["decision"] == "allow")
            .count();
        assert!(cosigned >= 2, "each witness records what it cosigned");
    }

    // The witnesses restart: what they cosigned is durable. A third one,
    // w3, has never seen the log.
    s1.stop();
    s2.stop();
    let s1 = Served::start(&w1);
    let s2 = Served::start(&w2);
    let s3 = Served::start(&w3);
    std::fs::write(
        log.join("vigil.toml"),
        plain_config + &witnesses_config(&[(&s3, &k3), (&s1, &k1), (&s2, &k2)]),
    )
    .expect("config");

    // The insider: the log's disk and key, a rewritten history, shown to
    // w3 (who trusts it on first use) and then to w1 and w2.
    std::fs::remove_dir_all(log.join("ledger")).expect("rm ledger");
    std::fs::remove_dir_all(log.join("payloads")).expect("rm payloads");
    append(&log, 9, "forged");
    ok(vigil(&log).args(["audit", "checkpoint"]));
    let served = Served::start(&log);
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = |w: &Path| {
        entries(w)
            .into_iter()
            .filter(|e| e["kind"] == "witness.refused")
            .collect::<Vec<_>>()
    };
    let cosigned_by_w3 = || entries(&w3).iter().any(|e| e["kind"] == "witness.cosigned");
    while refused(&w1).is_empty() || refused(&w2).is_empty() || !cosigned_by_w3() {
        assert!(
            Instant::now() < deadline,
            "the witnesses were never shown the fork"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    served.stop();
    for w in [&w1, &w2] {
        let r = refused(w);
        let statuses: Vec<u64> = r
            .iter()
            .filter_map(|e| match &e["details"] {
                serde_json::Value::String(text) => {
                    serde_json::from_str::<serde_json::Value>(text).ok()?["status"].as_u64()
                }
                details => details["status"].as_u64(),
            })
            .collect();
        assert!(
            statuses.contains(&422),
            "the fork's proof is refused: {statuses:?}"
        );
        assert_eq!(r[0]["decision"], "deny");
    }
    let forged = dir.path().join("forged.bundle");
    export(&log, &forged);
    let (code, _) = verify(&forged, &log_pub, &[], None);
    assert_eq!(
        code, 0,
        "alone, the forged bundle verifies with the log key"
    );
    for w in [&k1, &k2] {
        let (code, out) = verify(&forged, &log_pub, &[w], Some(1));
        assert_eq!(code, 1, "{out}");
    }
    // The split view: only w3 cosigned the fork, so a quorum of 2 fails.
    let (code, out) = verify(&forged, &log_pub, &[&k1, &k2, &k3], Some(2));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cosigned by 1 of the required witnesses (witness.example/w3)"),
        "{out}"
    );
    s1.stop();
    s2.stop();
    s3.stop();
}

/// `[[witnesses]]` tables for served witnesses and their keys.
fn witnesses_config(witnesses: &[(&Served, &Vec<String>)]) -> String {
    witnesses
        .iter()
        .map(|(s, keys)| {
            format!(
                "\n[[witnesses]]\nurl = \"{}/witness\"\nkeys = [{}]\n",
                s.url,
                keys.iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}
