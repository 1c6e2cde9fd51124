//! `notes`: appends a note to a file in a directory the node granted for
//! writing. Arguments: `{"dir": "/path", "name": "todo.md", "text": "..."}`.

use std::io::Write;

use serde_json::{json, Value};

fn main() {
    vigil_tool_abi::run(|_, args| write_note(&args))
}

fn write_note(args: &Value) -> Result<Value, String> {
    let dir = vigil_tool_abi::str_arg(args, "dir")?;
    let name = vigil_tool_abi::str_arg(args, "name")?;
    let text = vigil_tool_abi::str_arg(args, "text")?;
    if name.contains('/') || name == ".." || name == "." {
        return Err(format!("note name `{name}` must be a plain file name"));
    }
    let path = format!("{}/{name}", dir.trim_end_matches('/'));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open {path} for writing: {e}"))?;
    writeln!(file, "{text}").map_err(|e| format!("cannot write {path}: {e}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(json!({ "written": path, "bytes": size }))
}
