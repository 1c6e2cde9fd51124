//! The guest side of the vigil tool ABI (docs/tool-abi.md): the tool name is
//! argv[1], the JSON arguments come on stdin, the JSON result goes to stdout,
//! and the exit code is 0 on success. Failures print `{"error": "..."}` and
//! exit 1.

use std::io::{Read, Write};

use serde_json::{json, Value};

/// The tool name the node passed in argv[1] (empty when absent).
pub fn tool_name() -> String {
    std::env::args().nth(1).unwrap_or_default()
}

/// Reads and parses the JSON arguments from stdin (`null` when stdin is empty).
pub fn read_args() -> Result<Value, String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read arguments from stdin: {e}"))?;
    if input.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&input).map_err(|e| format!("arguments are not JSON: {e}"))
}

/// A string argument, or an error naming it.
pub fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, String> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string argument `{name}`"))
}

/// Runs a tool body: prints its result (or `{"error": ...}`) and exits.
pub fn run(body: impl FnOnce(&str, Value) -> Result<Value, String>) -> ! {
    let outcome = read_args().and_then(|args| body(&tool_name(), args));
    let (value, code) = match outcome {
        Ok(value) => (value, 0),
        Err(message) => (json!({ "error": message }), 1),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
    std::process::exit(code)
}
