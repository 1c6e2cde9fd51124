//! The auditor's HTML report (issue 22 item 1), rendered in headless
//! Chromium (Debian's `chromium`, installed by scripts/deps.sh): the
//! report of the demo's bundle written by `vigil-verify --report` shows the
//! verification summary, the calls chart (its bars drawn), the tables and
//! the control mapping; a screenshot is written under target/. A tampered
//! bundle gets no report, and `vigil audit report` escapes what agents
//! wrote into entries, so a `<script>` in an actor name stays text.

use std::path::{Path, PathBuf};
use std::process::Command;

mod verify_support;
use verify_support::{ok, vigil, vigil_verify};

fn chromium() -> PathBuf {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.expect("Chromium is not installed: run scripts/deps.sh (it installs Debian's chromium)")
}

/// Chromium's view of `page`: the DOM after layout.
fn dom(page: &Path) -> String {
    ok(Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium"))
}

fn screenshot(page: &Path, png: &Path) {
    ok(Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg("--window-size=1200,2400")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium"));
}

#[test]
fn the_demo_report_renders_in_chromium_with_its_chart_and_controls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("demo");
    ok(Command::new(env!("CARGO_BIN_EXE_vigil"))
        .env_remove("VIGIL_HOME")
        .args(["demo", "--keep"])
        .arg(&home)
        .output()
        .expect("vigil demo"));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit-report");
    std::fs::create_dir_all(&out_dir).expect("target dir");
    let page = out_dir.join("report.html");
    let _ = std::fs::remove_file(&page);
    let verified = Command::new(vigil_verify())
        .arg(home.join("audit.bundle"))
        .arg("--key")
        .arg(home.join("node.pub"))
        .arg("--report")
        .arg(&page)
        .output()
        .expect("vigil-verify");
    let summary = ok(verified);
    let html = std::fs::read_to_string(&page).expect("the report");
    assert!(!html.contains("<script"), "no scripts in the report");
    assert!(
        !html.contains("http-equiv") && !html.contains("src=\"http"),
        "nothing fetched"
    );

    let rendered = dom(&page);
    let entries = summary
        .split_whitespace()
        .nth(1)
        .expect("the entry count")
        .to_string();
    for text in [
        "VALID",
        "Verification",
        "Calls over time",
        "Calls per agent and tool",
        "support-bot",
        "echo",
        "Refusals by code",
        "invalid-arguments",
        "Redactions by type",
        "email",
        "Capability denials by tool",
        "read-passwd",
        "Packages admitted, refused and removed",
        "package.refused",
        "Evidence by control",
        "SOC 2 CC6.1",
        "SOC 2 CC7.2",
        "ISO 27001 A.8.15",
        "ISO 27001 A.8.16",
        "GDPR Art. 30",
        "GDPR Art. 17",
        "HIPAA 164.312(b)",
        "EU AI Act Art. 12",
        "EU AI Act Art. 14",
    ] {
        assert!(
            rendered.contains(text),
            "the rendered report lacks {text:?}"
        );
    }
    assert!(
        rendered.contains(&format!("<td>{entries} (indices")),
        "the entry count"
    );
    // The chart is drawn: an SVG with bars of non-zero height.
    let chart_start = rendered.find("<svg id=\"calls-chart\"").expect("the chart");
    let chart =
        &rendered[chart_start..rendered[chart_start..].find("</svg>").expect("end") + chart_start];
    let heights: Vec<u64> = chart
        .split("<rect class=\"bar")
        .skip(1)
        .filter_map(|r| r.split("height=\"").nth(1)?.split('"').next()?.parse().ok())
        .collect();
    assert!(
        !heights.is_empty() && heights.iter().all(|h| *h > 0),
        "bars: {heights:?}"
    );
    let png = out_dir.join("report.png");
    let _ = std::fs::remove_file(&png);
    screenshot(&page, &png);
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000,
        "a real screenshot"
    );

    // A bundle with one byte changed gets no report.
    let mut bundle = std::fs::read(home.join("audit.bundle")).expect("bundle");
    let at = bundle.len() - 40;
    bundle[at] ^= 1;
    let tampered = dir.path().join("tampered.bundle");
    std::fs::write(&tampered, bundle).expect("write");
    let refused_page = dir.path().join("refused.html");
    let out = Command::new(vigil_verify())
        .arg(&tampered)
        .arg("--key")
        .arg(home.join("node.pub"))
        .arg("--report")
        .arg(&refused_page)
        .output()
        .expect("vigil-verify");
    assert_eq!(out.status.code(), Some(1));
    assert!(!refused_page.exists(), "no report from an invalid bundle");
}

#[test]
fn vigil_audit_report_escapes_what_agents_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(vigil(&home).arg("init").output().expect("init"));
    ok(vigil(&home)
        .args([
            "audit",
            "append",
            "--actor",
            "<script>alert(1)</script>",
            "--subject",
            "tool:\"><img src=x onerror=alert(2)>",
        ])
        .output()
        .expect("append"));
    let page = dir.path().join("report.html");
    let printed = ok(vigil(&home)
        .args(["audit", "report", "--out"])
        .arg(&page)
        .output()
        .expect("report"));
    assert!(printed.contains("verified"), "{printed}");
    let html = std::fs::read_to_string(&page).expect("report");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    let rendered = dom(&page);
    assert!(
        !rendered.contains("<img"),
        "the browser made no element of it"
    );
    assert!(
        rendered.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the actor is shown as text"
    );
    assert!(
        std::fs::read_dir(&home).expect("home").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".bundle")),
        "the temporary bundle is removed"
    );
}
