//! The SIEM stream (issue 22 item 2) of a real `vigil serve`: entries go to
//! `[siem] file` as ECS-shaped JSON lines, rotated by size. The node is
//! killed (SIGKILL) mid-stream, a torn half line is left at the end of the
//! file, more entries are recorded while it is down, and after a restart
//! the files hold every entry exactly once, in order. `vigil audit follow
//! --jsonl` prints the same lines live.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod verify_support;
use verify_support::{ledger_size, ok, vigil, Served};

/// Records `n` outside events in one JSON Lines import.
fn import(home: &Path, dir: &Path, tag: &str, n: usize) {
    let pad = "x".repeat(100);
    let lines: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"actor":"ci:{tag}","subject":"job:{i}","details":{{"n":{i},"pad":"{pad}"}}}}"#
            )
        })
        .collect();
    verify_support::import_lines(home, dir, tag, &lines);
}

/// Every line of the stream's files (rotated ones first), by index.
///
/// While the node runs, the current file may end in a line it is still
/// writing: that piece is left for the next look. Once the node has stopped
/// (`settled`), every file must end with a whole line.
fn streamed(dir: &Path, settled: bool) -> (BTreeMap<u64, usize>, usize, Vec<serde_json::Value>) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("siem dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name == "events.jsonl", name)
    });
    let mut seen = BTreeMap::new();
    let mut lines = Vec::new();
    for f in &files {
        // A file being rotated while the node streams is read at the next look.
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let whole = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        assert!(
            !settled || whole.len() == text.len(),
            "{} ends with a torn line: {:?}",
            f.display(),
            &text[whole.len()..]
        );
        for line in whole.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            *seen
                .entry(v["vigil"]["index"].as_u64().expect("index"))
                .or_insert(0) += 1;
            lines.push(v);
        }
    }
    (seen, files.len(), lines)
}

#[test]
fn the_stream_survives_a_kill_with_every_entry_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(vigil(&home).arg("init").output().expect("init"));
    let config = home.join("vigil.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text = text.replace(
        "[siem]\n",
        "[siem]\nfile = \"siem/events.jsonl\"\nmax_file_bytes = 16384\n",
    );
    std::fs::write(&config, text).expect("config");
    let siem = home.join("siem");

    let mut node = Served::start(&home);
    let mut follow = vigil(&home)
        .args(["audit", "follow", "--jsonl", "--from", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("follow");
    import(&home, dir.path(), "a", 300);
    // Kill the node while it streams.
    let deadline = Instant::now() + Duration::from_secs(20);
    while streamed(&siem, false).2.len() < 50 {
        assert!(Instant::now() < deadline, "nothing streamed");
        std::thread::sleep(Duration::from_millis(10));
    }
    node.child.kill().expect("kill");
    node.child.wait().expect("wait");
    // `follow` printed the same ECS lines as the file, from entry 0.
    let mut printed = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    for i in 0..20 {
        let line = printed.next().expect("a followed line").expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["vigil"]["index"], i);
        assert_eq!(v["event"]["module"], "vigil");
        assert!(v["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    let _ = follow.kill();
    let _ = follow.wait();

    // A torn half line, as a crash in the middle of a write leaves it.
    let mut current = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(siem.join("events.jsonl"))
        .expect("open");
    current.write_all(b"{\"@timestamp\":\"2026-").expect("torn");
    drop(current);
    import(&home, dir.path(), "b", 100);

    let node = Served::start(&home);
    let size = ledger_size(&home);
    assert!(size >= 400, "{size}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, _, _) = streamed(&siem, false);
        if seen.len() as u64 == size {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {size} entries streamed",
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    node.stop();
    let (seen, files, lines) = streamed(&siem, true);
    let final_size = ledger_size(&home);
    assert_eq!(
        seen.len() as u64,
        final_size,
        "every entry, the last checkpoint's too"
    );
    assert!(seen.values().all(|n| *n == 1), "each exactly once");
    assert!(seen.keys().copied().eq(0..final_size), "no gap");
    let order: Vec<u64> = lines
        .iter()
        .filter_map(|v| v["vigil"]["index"].as_u64())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "in order across rotated files"
    );
    assert!(files > 2, "the file was rotated ({files} files)");
    let outcome = &lines[0]["event"]["outcome"];
    assert!(outcome.is_string(), "{outcome}");
}
