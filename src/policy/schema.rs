//! JSON Schema checks: a tool's arguments against its `input_schema` and its
//! structured output against its `output_schema`, compiled once per tool.

use serde_json::Value;

/// A compiled schema of one tool.
pub struct SchemaCheck {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaCheck")
    }
}

/// At most this many problems are reported per value.
const MAX_PROBLEMS: usize = 8;

impl SchemaCheck {
    /// Compiles `schema`; the error says why it is not a usable schema.
    pub fn new(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(|validator| Self { validator })
            .map_err(|e| e.to_string())
    }

    /// The problems of `value` (empty: it matches), each naming the place.
    pub fn problems(&self, value: &Value) -> Vec<String> {
        // The common case first: validating is cheaper than collecting errors.
        if self.validator.is_valid(value) {
            return Vec::new();
        }
        self.validator
            .iter_errors(value)
            .take(MAX_PROBLEMS)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problems_name_the_place() {
        let check = SchemaCheck::new(&json!({
            "type": "object",
            "properties": { "text": { "type": "string" } },
            "required": ["text"]
        }))
        .unwrap();
        assert!(check.problems(&json!({"text": "hi"})).is_empty());
        let p = check.problems(&json!({"text": 5}));
        assert!(p[0].starts_with("/text:"), "{p:?}");
        assert!(check.problems(&json!({}))[0].contains("text"));
        assert!(SchemaCheck::new(&json!({"type": 5})).is_err());
    }
}
