//! The hostile tool tries every escape; each attempt is denied or stopped,
//! shows up in the capability report (or as the limit that stopped it), and
//! `echo` on the same sandbox still works afterwards.

mod sandbox_support;

use std::net::TcpListener;
use std::path::Path;

use serde_json::{json, Value};
use vigil::node::home::Home;
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::sandbox::{CallOutcome, Limit, Resource, Sandbox};

use sandbox_support::*;

/// Runs one attack, checks the tool itself saw it fail, returns the outcome.
fn attack(sandbox: &Sandbox, caps: &Capabilities, name: &str, args: Value) -> CallOutcome {
    let hostile = load(sandbox, "hostile", caps, Limits::default());
    let outcome = hostile.call(name, &args);
    assert_eq!(
        ok_value(&outcome)["outcome"],
        "blocked",
        "{name} escaped: {outcome:#?}"
    );
    outcome
}

fn denied(outcome: &CallOutcome, resource: Resource, target: &str) {
    assert!(
        outcome.report.was_denied(resource, target),
        "{}: no {resource:?} denial for {target} in {:#?}",
        outcome.tool,
        outcome.report
    );
}

#[test]
fn filesystem_escapes_are_denied_and_reported() {
    let tmp = temp_dir();
    let root = canonical(&tmp);
    let grant = root.join("grant");
    let secret = root.join("secret");
    let outside = root.join("outside");
    for dir in [&grant, &secret, &outside] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(secret.join("plans.txt"), "secret").unwrap();
    let home = Home::at(root.join("home"));
    home.init(None).expect("init node home");
    let key = home.node_key_path();
    assert!(key.is_file());
    std::os::unix::fs::symlink(&outside, grant.join("planted")).unwrap();

    let sandbox = shared_sandbox();
    let caps = caps(&[], &[&grant], &[], &[]);
    let s = |p: &Path| p.display().to_string();

    let o = attack(&sandbox, &caps, "read-passwd", json!({}));
    denied(&o, Resource::Path, "/etc/passwd");
    echo_still_works(&sandbox);

    let o = attack(
        &sandbox,
        &caps,
        "read-undeclared-dir",
        json!({"path": s(&secret)}),
    );
    denied(&o, Resource::Path, &s(&secret));
    echo_still_works(&sandbox);

    let o = attack(&sandbox, &caps, "read-key-file", json!({"path": s(&key)}));
    denied(&o, Resource::Path, &s(&key));
    echo_still_works(&sandbox);

    let o = attack(&sandbox, &caps, "write-dotdot", json!({"dir": s(&grant)}));
    denied(&o, Resource::Path, &s(&root.join("escaped.txt")));
    assert!(!root.join("escaped.txt").exists());
    echo_still_works(&sandbox);

    let o = attack(
        &sandbox,
        &caps,
        "write-planted-symlink",
        json!({"dir": s(&grant), "link": "planted"}),
    );
    denied(&o, Resource::Path, &s(&grant.join("planted/escaped.txt")));
    assert!(!outside.join("escaped.txt").exists());
    echo_still_works(&sandbox);

    for target in ["/etc", "../outside"] {
        let o = attack(
            &sandbox,
            &caps,
            "write-own-symlink",
            json!({"dir": s(&grant), "target": target}),
        );
        denied(
            &o,
            Resource::Path,
            &format!("{} -> {target}", s(&grant.join("escape"))),
        );
        assert!(!outside.join("escaped.txt").exists());
        echo_still_works(&sandbox);
    }
}

#[test]
fn an_undeclared_environment_variable_is_not_visible() {
    let sandbox = shared_sandbox();
    let o = attack(
        &sandbox,
        &caps(&[], &[], &[], &["LANG"]),
        "read-env",
        json!({"name": "PATH"}),
    );
    // WASI hands the whole (filtered) environment over at once, so the name
    // the tool looked for never reaches the host: the report shows what it
    // was given and every node variable that was withheld from it.
    assert!(!o.report.env.contains("PATH"), "{:?}", o.report);
    denied(&o, Resource::Env, "PATH");
    assert!(
        !o.report.was_denied(Resource::Env, "LANG"),
        "a granted name is not a denial: {:?}",
        o.report
    );
    echo_still_works(&sandbox);
}

#[test]
fn network_escapes_are_denied_and_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sandbox = shared_sandbox();
    let caps = caps(&[], &[], &[format!("localhost:{port}")], &[]);

    let o = attack(
        &sandbox,
        &caps,
        "lookup-undeclared",
        json!({"host": "evil.example"}),
    );
    denied(&o, Resource::Lookup, "evil.example");
    echo_still_works(&sandbox);

    let o = attack(
        &sandbox,
        &caps,
        "connect-undeclared-host",
        json!({"host": "evil.example", "port": port}),
    );
    denied(&o, Resource::Lookup, "evil.example");
    echo_still_works(&sandbox);

    let o = attack(
        &sandbox,
        &caps,
        "connect-wrong-port",
        json!({"host": "localhost", "port": port}),
    );
    denied(
        &o,
        Resource::Connect,
        &format!("127.0.0.1:{}", port.wrapping_add(1)),
    );
    echo_still_works(&sandbox);

    let o = attack(
        &sandbox,
        &caps,
        "connect-unlooked-address",
        json!({"addr": "127.0.0.1", "port": port}),
    );
    denied(&o, Resource::Connect, &format!("127.0.0.1:{port}"));
    echo_still_works(&sandbox);

    // Control: the same tool reaches the granted host after looking it up.
    let hostile = load(&sandbox, "hostile", &caps, Limits::default());
    let o = hostile.call(
        "connect-undeclared-host",
        &json!({"host": "localhost", "port": port}),
    );
    assert_eq!(ok_value(&o)["outcome"], "escaped", "{o:#?}");
    assert!(
        o.report.hosts.contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        o.report
    );
}

fn stopped(sandbox: &Sandbox, name: &str, limits: Limits, limit: Limit) {
    let hostile = load(sandbox, "hostile", &Capabilities::default(), limits);
    let outcome = hostile.call(name, &json!({}));
    assert_eq!(outcome.result.limit(), Some(limit), "{name}: {outcome:#?}");
    echo_still_works(sandbox);
}

#[test]
fn resource_attacks_are_stopped_at_their_limit() {
    let sandbox = shared_sandbox();
    let limits = Limits {
        memory_mib: 32,
        timeout_ms: 300,
        max_output_bytes: 64 * 1024,
    };
    stopped(&sandbox, "endless-loop", limits, Limit::Timeout);
    stopped(&sandbox, "memory-bomb", limits, Limit::Memory);
    stopped(&sandbox, "recursion", limits, Limit::Stack);
    stopped(&sandbox, "output-flood", limits, Limit::Output);
}

/// Runs `attack` on a thread and waits at most a minute for it: a tool
/// blocked in the host must be stopped by the sandbox, not by this test.
fn stopped_within_a_minute(
    sandbox: &std::sync::Arc<Sandbox>,
    caps: Capabilities,
    attack: &'static str,
    args: Value,
    limits: Limits,
) -> CallOutcome {
    let (done, outcome) = std::sync::mpsc::channel();
    let sandbox = std::sync::Arc::clone(sandbox);
    std::thread::spawn(move || {
        let hostile = load(&sandbox, "hostile", &caps, limits);
        let _ = done.send(hostile.call(attack, &args));
    });
    outcome
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{attack}: the call was not stopped at its time limit"))
}

#[test]
fn tools_blocked_in_host_calls_are_stopped_at_their_time_limit() {
    let sandbox = std::sync::Arc::new(shared_sandbox());
    let limits = Limits {
        memory_mib: 32,
        timeout_ms: 300,
        max_output_bytes: 64 * 1024,
    };
    let o = stopped_within_a_minute(
        &sandbox,
        Capabilities::default(),
        "sleep-forever",
        json!({}),
        limits,
    );
    assert_eq!(o.result.limit(), Some(Limit::Timeout), "{o:#?}");

    // A declared peer that accepts (the kernel completes the handshake on
    // the backlog) and never sends: the tool blocks reading from it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let o = stopped_within_a_minute(
        &sandbox,
        caps(&[], &[], &[format!("localhost:{port}")], &[]),
        "wait-on-silent-peer",
        json!({"host": "localhost", "port": port}),
        limits,
    );
    assert_eq!(o.result.limit(), Some(Limit::Timeout), "{o:#?}");
    assert!(
        o.report.hosts.iter().any(|h| h.contains(&port.to_string())),
        "{:?}",
        o.report
    );
    echo_still_works(&sandbox);
    drop(listener);
}

#[test]
fn calls_beyond_the_pool_wait_for_a_slot_or_are_refused_clearly() {
    let dir = temp_dir();
    let mut config = vigil::sandbox::SandboxConfig::new(dir.path().join("compiled"));
    config.max_concurrent_calls = 1;
    let sandbox = std::sync::Arc::new(Sandbox::new(&config).expect("sandbox"));
    // Both tools are compiled before the race starts.
    let hog_limits = Limits {
        timeout_ms: 3_000,
        ..Limits::default()
    };
    let hog_tool = load(&sandbox, "hostile", &Capabilities::default(), hog_limits);
    let impatient = Limits {
        timeout_ms: 50,
        ..Limits::default()
    };
    let echo = load(&sandbox, "echo", &Capabilities::default(), impatient);
    // The one slot is held by a tool sleeping until its 3 s limit ...
    let hog = std::thread::spawn(move || hog_tool.call("sleep-forever", &json!({})));
    // ... so a call that may wait only 50 ms is refused with a reason (once
    // the hog holds the slot: until then the echo call simply runs).
    let started = std::time::Instant::now();
    let refusal = loop {
        let o = echo.call("echo", &json!({}));
        if let vigil::sandbox::CallResult::NotRun { message } = &o.result {
            break message.clone();
        }
        assert!(o.result.is_ok(), "{o:#?}");
        assert!(
            started.elapsed() < std::time::Duration::from_millis(2_500),
            "the sleeping tool never held the only slot"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(refusal.contains("maximum of 1 concurrent"), "{refusal}");
    // ... while one with the default limit (5 s) waits for the slot and runs.
    echo_still_works(&sandbox);
    let hogged = hog.join().expect("hog thread");
    assert_eq!(hogged.result.limit(), Some(Limit::Timeout), "{hogged:#?}");
    // Many more concurrent calls than slots all complete.
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let sandbox = std::sync::Arc::clone(&sandbox);
            std::thread::spawn(move || echo_still_works(&sandbox))
        })
        .collect();
    for t in threads {
        t.join().expect("queued echo call");
    }
}
