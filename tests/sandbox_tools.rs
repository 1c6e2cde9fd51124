//! The example tools run in the sandbox: each works with its grant and fails
//! cleanly, with the refusal in the capability report, without it.

mod sandbox_support;

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::json;
use vigil::sandbox::capabilities::{Capabilities, Limits};
use vigil::sandbox::{CallResult, Resource};

use sandbox_support::*;

fn failed_message(result: &CallResult) -> &str {
    match result {
        CallResult::ToolFailed { message, .. } => message,
        other => panic!("expected a clean tool failure, got {other:?}"),
    }
}

#[test]
fn echo_returns_its_arguments() {
    let sandbox = shared_sandbox();
    let echo = load(
        &sandbox,
        "echo",
        &Capabilities::default(),
        Limits::default(),
    );
    let args = json!({"text": "hello", "n": [1, 2, 3]});
    let outcome = echo.call("echo", &args);
    assert_eq!(ok_value(&outcome)["echo"], args);
    assert!(outcome.report.denied.is_empty(), "{:?}", outcome.report);
}

#[test]
fn a_preview1_module_runs_too() {
    let sandbox = shared_sandbox();
    let echo = load(
        &sandbox,
        "echo-p1",
        &Capabilities::default(),
        Limits::default(),
    );
    let outcome = echo.call("echo", &json!({"p1": true}));
    assert_eq!(ok_value(&outcome)["echo"]["p1"], true);
}

/// The smallest preview 1 module that imports `poll_oneoff` (the one p1
/// call that can wait on a clock): types, import, one `_start`, a memory.
fn p1_module_importing_poll_oneoff() -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // type 0: (i32 i32 i32 i32) -> i32; type 1: () -> ()
    m.extend([
        1, 12, 2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0,
    ]);
    let (module, name) = (b"wasi_snapshot_preview1", b"poll_oneoff");
    m.extend([2, 38, 1, module.len() as u8]);
    m.extend(module);
    m.push(name.len() as u8);
    m.extend(name);
    m.extend([0, 0]); // func of type 0
    m.extend([3, 2, 1, 1]); // one function of type 1
    m.extend([5, 3, 1, 0, 1]); // one memory, min 1 page
    m.extend([7, 19, 2, 6]);
    m.extend(b"_start");
    m.extend([0, 1, 6]);
    m.extend(b"memory");
    m.extend([2, 0]);
    m.extend([10, 4, 1, 2, 0, 0x0b]); // _start: no locals, end
    m
}

#[test]
fn a_preview1_module_that_can_wait_on_clocks_is_refused() {
    let sandbox = shared_sandbox();
    let wasm = p1_module_importing_poll_oneoff();
    let package = signed::verified("sleepy", &wasm, &Capabilities::default(), Limits::default());
    let err = sandbox.load(&package).err().expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("poll_oneoff") && text.contains("wasm32-wasip2"),
        "{text}"
    );
}

#[test]
fn wordcount_reads_a_granted_directory_and_nothing_without_the_grant() {
    let tmp = temp_dir();
    let dir = canonical(&tmp).join("docs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "one two three\nfour\n").unwrap();
    std::fs::write(dir.join("b.txt"), "five six").unwrap();
    let sandbox = shared_sandbox();
    let args = json!({"dir": dir.display().to_string()});

    let granted = load(
        &sandbox,
        "wordcount",
        &caps(&[&dir], &[], &[], &[]),
        Limits::default(),
    );
    let outcome = granted.call("wordcount", &args);
    let value = ok_value(&outcome);
    assert_eq!(
        (value["files"].as_u64(), value["words"].as_u64()),
        (Some(2), Some(6))
    );
    assert!(outcome
        .report
        .paths_read
        .contains(&dir.join("a.txt").display().to_string()));
    assert!(outcome.report.denied.is_empty(), "{:?}", outcome.report);

    let ungranted = load(
        &sandbox,
        "wordcount",
        &Capabilities::default(),
        Limits::default(),
    );
    let outcome = ungranted.call("wordcount", &args);
    assert!(failed_message(&outcome.result).contains("cannot read directory"));
    assert!(
        outcome
            .report
            .was_denied(Resource::Path, &dir.display().to_string()),
        "{:?}",
        outcome.report
    );
}

#[test]
fn notes_writes_only_into_a_directory_granted_for_writing() {
    let tmp = temp_dir();
    let dir = canonical(&tmp).join("notes");
    std::fs::create_dir(&dir).unwrap();
    let sandbox = shared_sandbox();
    let args = json!({"dir": dir.display().to_string(), "name": "todo.md", "text": "buy milk"});
    let note = dir.join("todo.md");

    let writable = load(
        &sandbox,
        "notes",
        &caps(&[], &[&dir], &[], &[]),
        Limits::default(),
    );
    let outcome = writable.call("notes", &args);
    ok_value(&outcome);
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "buy milk\n");
    assert!(outcome
        .report
        .paths_written
        .contains(&note.display().to_string()));

    std::fs::remove_file(&note).unwrap();
    let read_only = load(
        &sandbox,
        "notes",
        &caps(&[&dir], &[], &[], &[]),
        Limits::default(),
    );
    let outcome = read_only.call("notes", &args);
    failed_message(&outcome.result);
    assert!(!note.exists());
    let denial = outcome
        .report
        .denied
        .iter()
        .find(|d| d.resource == Resource::Path)
        .unwrap();
    assert!(denial.reason.contains("read-only"), "{denial:?}");

    let ungranted = load(
        &sandbox,
        "notes",
        &Capabilities::default(),
        Limits::default(),
    );
    let outcome = ungranted.call("notes", &args);
    failed_message(&outcome.result);
    assert!(!note.exists());
    assert!(
        outcome.report.was_denied(Resource::Path, "todo.md"),
        "{:?}",
        outcome.report
    );
}

/// A one-thread HTTP server on 127.0.0.1 answering every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

#[test]
fn fetch_gets_from_a_granted_host_only() {
    let port = http_server("hello from the test server");
    let sandbox = shared_sandbox();
    let url = json!({"url": format!("http://127.0.0.1:{port}/greeting")});

    let granted = load(
        &sandbox,
        "fetch",
        &caps(&[], &[], &[format!("127.0.0.1:{port}")], &[]),
        Limits::default(),
    );
    let outcome = granted.call("fetch", &url);
    let value = ok_value(&outcome);
    assert_eq!(value["status"], 200);
    assert_eq!(value["body"], "hello from the test server");
    assert!(
        outcome.report.hosts.contains(&format!("127.0.0.1:{port}")),
        "{:?}",
        outcome.report
    );

    let by_name = load(
        &sandbox,
        "fetch",
        &caps(&[], &[], &[format!("localhost:{port}")], &[]),
        Limits::default(),
    );
    let outcome = by_name.call(
        "fetch",
        &json!({"url": format!("http://localhost:{port}/")}),
    );
    assert_eq!(ok_value(&outcome)["status"], 200);

    let ungranted = load(
        &sandbox,
        "fetch",
        &Capabilities::default(),
        Limits::default(),
    );
    let outcome = ungranted.call("fetch", &url);
    assert!(
        failed_message(&outcome.result).contains("refused")
            || failed_message(&outcome.result).contains("Denied")
    );
    assert!(
        outcome
            .report
            .was_denied(Resource::Http, &format!("127.0.0.1:{port}")),
        "{:?}",
        outcome.report
    );

    let other_port = load(
        &sandbox,
        "fetch",
        &caps(
            &[],
            &[],
            &[format!("127.0.0.1:{}", port.wrapping_add(1))],
            &[],
        ),
        Limits::default(),
    );
    let outcome = other_port.call("fetch", &url);
    failed_message(&outcome.result);
    let denial = outcome
        .report
        .denied
        .iter()
        .find(|d| d.resource == Resource::Http)
        .unwrap();
    assert!(denial.reason.contains("only port"), "{denial:?}");
}

#[test]
fn only_granted_environment_variables_are_visible() {
    // PATH is set in every test process; the tool sees it only when granted.
    let sandbox = shared_sandbox();
    let args = json!({"name": "PATH"});
    let granted = load(
        &sandbox,
        "hostile",
        &caps(&[], &[], &[], &["PATH"]),
        Limits::default(),
    );
    let outcome = granted.call("read-env", &args);
    assert_eq!(ok_value(&outcome)["outcome"], "escaped");
    assert!(outcome.report.env.contains("PATH"));

    let ungranted = load(
        &sandbox,
        "hostile",
        &Capabilities::default(),
        Limits::default(),
    );
    let outcome = ungranted.call("read-env", &args);
    assert_eq!(ok_value(&outcome)["outcome"], "blocked");
    assert!(outcome.report.env.is_empty());
}
