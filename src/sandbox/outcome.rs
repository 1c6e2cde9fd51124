//! The result of one tool call and the rule that derives it from how the run
//! ended (exit code, trap, limits hit, stdout). No I/O: the runtime gathers
//! the facts, [`classify`] decides what they mean.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::capabilities::Limits;
use super::report::CapabilityReport;

/// Which limit stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// The wall-clock timeout.
    Timeout,
    /// The linear memory cap.
    Memory,
    /// The stdout size cap.
    Output,
    /// The wasm stack.
    Stack,
}

/// What a call produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallResult {
    /// Exit code 0 and a JSON value on stdout.
    Ok { value: Value },
    /// The tool exited non-zero; `output` is its stdout when that was JSON.
    ToolFailed {
        exit_code: i32,
        output: Option<Value>,
        message: String,
    },
    /// The tool exited 0 but its stdout was not one JSON value.
    BadOutput { message: String },
    /// The sandbox stopped the tool at a limit.
    Stopped { limit: Limit, message: String },
    /// The tool trapped (crashed) for another reason.
    Crashed { message: String },
    /// The sandbox could not start the call (e.g. a granted directory is missing).
    NotRun { message: String },
}

impl CallResult {
    /// The `status` tag this result serializes with (`ok`, `tool_failed`, ...).
    pub fn status(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "ok",
            Self::ToolFailed { .. } => "tool_failed",
            Self::BadOutput { .. } => "bad_output",
            Self::Stopped { .. } => "stopped",
            Self::Crashed { .. } => "crashed",
            Self::NotRun { .. } => "not_run",
        }
    }

    /// True for [`CallResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }

    /// The limit that stopped the call, if one did.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Self::Stopped { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}

/// One call's result with its capability report and audit data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallOutcome {
    /// The tool name passed in argv[1].
    pub tool: String,
    pub result: CallResult,
    /// What the tool used and was denied.
    pub report: CapabilityReport,
    /// The tool's stderr, truncated, kept for the audit.
    pub stderr: String,
    /// True when stderr was longer than what is kept.
    pub stderr_truncated: bool,
    /// Wall-clock time of the call in microseconds.
    pub elapsed_us: u64,
}

/// How the guest's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The guest returned or called exit with this code.
    Exited(i32),
    /// The guest trapped.
    Trapped { kind: TrapKind, message: String },
}

/// The trap kinds the sandbox tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The epoch deadline passed (wall-clock timeout).
    Interrupted,
    /// The wasm stack overflowed.
    StackOverflow,
    /// Anything else (unreachable, out-of-bounds access, host error...).
    Other,
}

/// Everything the runtime observed about one run.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    pub end: RunEnd,
    pub stdout: &'a [u8],
    /// The memory size (bytes) a refused grow asked for, if one was refused.
    pub memory_refused: Option<usize>,
    pub limits: Limits,
}

/// Derives the call result. Limits win over what the guest made of them: a
/// tool that panics because its stdout was closed at the cap was stopped by
/// the output cap, not crashed.
pub fn classify(facts: &RunFacts<'_>) -> CallResult {
    let limits = facts.limits;
    if facts.stdout.len() as u64 > limits.max_output_bytes {
        return CallResult::Stopped {
            limit: Limit::Output,
            message: format!(
                "the tool wrote more than the output cap of {} bytes to stdout",
                limits.max_output_bytes
            ),
        };
    }
    if let Some(wanted) = facts.memory_refused {
        return CallResult::Stopped {
            limit: Limit::Memory,
            message: format!(
                "the tool tried to grow its memory to {} MiB, over the cap of {} MiB",
                wanted.div_ceil(1024 * 1024),
                limits.memory_mib
            ),
        };
    }
    match &facts.end {
        RunEnd::Trapped {
            kind: TrapKind::Interrupted,
            ..
        } => CallResult::Stopped {
            limit: Limit::Timeout,
            message: format!(
                "the tool ran longer than the timeout of {} ms",
                limits.timeout_ms
            ),
        },
        RunEnd::Trapped {
            kind: TrapKind::StackOverflow,
            ..
        } => CallResult::Stopped {
            limit: Limit::Stack,
            message: "the tool exhausted its wasm stack (unbounded recursion?)".to_string(),
        },
        RunEnd::Trapped {
            kind: TrapKind::Other,
            message,
        } => CallResult::Crashed {
            message: format!("the tool trapped: {message}"),
        },
        RunEnd::Exited(0) => match serde_json::from_slice::<Value>(facts.stdout) {
            Ok(value) => CallResult::Ok { value },
            Err(e) => CallResult::BadOutput {
                message: format!("the tool exited 0 but stdout is not one JSON value: {e}"),
            },
        },
        RunEnd::Exited(code) => {
            let output = serde_json::from_slice::<Value>(facts.stdout).ok();
            let message = output
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("the tool exited with code {code}"));
            CallResult::ToolFailed {
                exit_code: *code,
                output,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_serialized_tag() {
        let message = String::new();
        for r in [
            CallResult::Ok { value: Value::Null },
            CallResult::ToolFailed {
                exit_code: 1,
                output: None,
                message: message.clone(),
            },
            CallResult::BadOutput {
                message: message.clone(),
            },
            CallResult::Stopped {
                limit: Limit::Timeout,
                message: message.clone(),
            },
            CallResult::Crashed {
                message: message.clone(),
            },
            CallResult::NotRun { message },
        ] {
            let json = serde_json::to_value(&r).expect("serialize");
            assert_eq!(json["status"], r.status(), "{json}");
        }
    }

    fn facts(end: RunEnd, stdout: &[u8]) -> RunFacts<'_> {
        RunFacts {
            end,
            stdout,
            memory_refused: None,
            limits: Limits::default(),
        }
    }

    #[test]
    fn exit_zero_with_json_is_ok() {
        let r = classify(&facts(RunEnd::Exited(0), br#"{"a":1}"#));
        assert_eq!(
            r,
            CallResult::Ok {
                value: serde_json::json!({"a": 1})
            }
        );
    }

    #[test]
    fn exit_zero_without_json_is_bad_output() {
        assert!(matches!(
            classify(&facts(RunEnd::Exited(0), b"hello")),
            CallResult::BadOutput { .. }
        ));
    }

    #[test]
    fn non_zero_exit_keeps_the_tool_error() {
        match classify(&facts(RunEnd::Exited(1), br#"{"error":"no dir"}"#)) {
            CallResult::ToolFailed {
                exit_code: 1,
                message,
                output: Some(_),
            } => {
                assert_eq!(message, "no dir")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_win_over_the_guest_reaction() {
        let big = vec![b'A'; Limits::default().max_output_bytes as usize + 1];
        let crashed = RunEnd::Trapped {
            kind: TrapKind::Other,
            message: "unreachable".into(),
        };
        assert_eq!(
            classify(&facts(crashed.clone(), &big)).limit(),
            Some(Limit::Output)
        );
        let mut f = facts(crashed, b"");
        f.memory_refused = Some(128 << 20);
        let r = classify(&f);
        assert_eq!(r.limit(), Some(Limit::Memory));
        assert!(format!("{r:?}").contains("128 MiB"));
    }

    #[test]
    fn traps_are_told_apart() {
        let trap = |kind| RunEnd::Trapped {
            kind,
            message: "m".into(),
        };
        assert_eq!(
            classify(&facts(trap(TrapKind::Interrupted), b"")).limit(),
            Some(Limit::Timeout)
        );
        assert_eq!(
            classify(&facts(trap(TrapKind::StackOverflow), b"")).limit(),
            Some(Limit::Stack)
        );
        assert!(matches!(
            classify(&facts(trap(TrapKind::Other), b"")),
            CallResult::Crashed { .. }
        ));
    }
}
