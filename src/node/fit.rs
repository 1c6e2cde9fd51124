//! Bounds a decision to what one ledger entry can hold, so that a request
//! too large to record verbatim is still recorded: an actor or subject
//! longer than the ledger allows is cut and labelled with its length and
//! SHA-256; details too large are summarized (their length and SHA-256,
//! plus the small fields that fit, long strings cut). Without this an agent
//! could make its refused attempts leave no entry, by sending a huge tool
//! name or argument set.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use vigil_ledger::entry::{MAX_DETAILS_LEN, MAX_NAME_LEN};

/// Bytes of a cut name kept before its label.
const NAME_KEPT: usize = 256;
/// Details above this (JSON text) are summarized; the margin leaves room
/// for canonical escaping.
const DETAILS_BUDGET: usize = MAX_DETAILS_LEN - 4096;
/// A summary keeps fields whose JSON text is at most this long...
const FIELD_KEPT: usize = 1024;
/// ...up to this much in all.
const SUMMARY_KEPT: usize = 16 * 1024;

/// `text` cut at a character boundary at or below `max` bytes.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `name` unchanged when the ledger can hold it, else its first bytes
/// labelled with its length and SHA-256.
pub fn name(name: String) -> String {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    format!(
        "{}...[{} bytes, sha256 {}]",
        cut(&name, NAME_KEPT),
        name.len(),
        sha256_hex(name.as_bytes())
    )
}

/// `details` unchanged when the ledger can hold them, else a summary:
/// `{"summarized": true, "length": N, "sha256": HEX, ...}` with the small
/// top-level fields (long strings cut) that fit in the summary's budget.
pub fn details(details: Value) -> Value {
    let text = details.to_string();
    if text.len() <= DETAILS_BUDGET {
        return details;
    }
    let mut summary = Map::new();
    summary.insert("summarized".into(), Value::Bool(true));
    summary.insert("length".into(), Value::from(text.len()));
    summary.insert("sha256".into(), Value::String(sha256_hex(text.as_bytes())));
    let mut kept = 0;
    if let Value::Object(fields) = details {
        for (key, value) in fields {
            let value = match value {
                Value::String(s) if s.len() > FIELD_KEPT => {
                    Value::String(format!("{}...[{} bytes]", cut(&s, FIELD_KEPT), s.len()))
                }
                other => other,
            };
            let size = key.len() + value.to_string().len();
            if size > FIELD_KEPT + 64 || kept + size > SUMMARY_KEPT || summary.contains_key(&key) {
                continue;
            }
            kept += size;
            summary.insert(key, value);
        }
    }
    Value::Object(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_kept_as_they_are() {
        assert_eq!(name("tool:echo".into()), "tool:echo");
        let d = serde_json::json!({"code": "unknown-tool", "n": 1});
        assert_eq!(details(d.clone()), d);
    }

    #[test]
    fn long_names_are_cut_and_labelled() {
        let long = format!("tool:{}", "é".repeat(5000));
        let fitted = name(long.clone());
        assert!(fitted.len() <= MAX_NAME_LEN);
        assert!(fitted.contains(&format!("{} bytes", long.len())));
        assert!(fitted.contains(&sha256_hex(long.as_bytes())));
    }

    #[test]
    fn large_details_are_summarized_keeping_small_fields() {
        let problems: Vec<String> = (0..20_000)
            .map(|i| format!("additional property p{i} is not allowed"))
            .collect();
        let d = serde_json::json!({
            "code": "invalid-arguments",
            "tool": "echo",
            "reason": problems.join("; "),
            "problems": problems,
        });
        let text = d.to_string();
        let s = details(d);
        assert!(s.to_string().len() <= DETAILS_BUDGET);
        assert_eq!(s["summarized"], true);
        assert_eq!(s["length"], text.len());
        assert_eq!(s["sha256"], sha256_hex(text.as_bytes()));
        assert_eq!(s["code"], "invalid-arguments");
        assert!(s["reason"].as_str().is_some_and(|r| r.contains("bytes]")));
        assert!(s.get("problems").is_none(), "a field too large is left out");
    }
}
