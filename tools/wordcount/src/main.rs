//! `wordcount`: counts lines, words and bytes of the files directly inside a
//! directory the node granted for reading. Arguments: `{"dir": "/path"}`.

use serde_json::{json, Value};

fn main() {
    vigil_tool_abi::run(|_, args| count(vigil_tool_abi::str_arg(&args, "dir")?))
}

fn count(dir: &str) -> Result<Value, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read directory {dir}: {e}"))?;
    let (mut files, mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {dir}: {e}"))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let text =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        files += 1;
        lines += text.lines().count() as u64;
        words += text.split_whitespace().count() as u64;
        bytes += text.len() as u64;
    }
    Ok(json!({ "dir": dir, "files": files, "lines": lines, "words": words, "bytes": bytes }))
}
