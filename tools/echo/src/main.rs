//! `echo`: returns its arguments unchanged.

fn main() {
    vigil_tool_abi::run(|_, args| Ok(serde_json::json!({ "echo": args })))
}
