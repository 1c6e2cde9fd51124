//! The call log: one `info` line on stderr per `tools/call` that went
//! through the pipeline (agent, tool, status, ledger index), for operators
//! watching a node (`VIGIL_LOG=info`). It never holds the arguments or the
//! output: those live in the ledger's erasable payloads, behind the privacy
//! filter. A call whose ledger entry could not be written is a warning.

use crate::mcp::pipeline::CallReply;

/// Logs one finished call. `status` is `ok` or the refusal code.
pub fn log_call(agent: &str, tool: &str, reply: &CallReply) {
    let status = match &reply.result {
        Ok(_) => "ok",
        Err(refusal) => refusal.code(),
    };
    match reply.ledger_index {
        Some(index) => tracing::info!(agent, tool, status, ledger_index = index, "call"),
        None => tracing::warn!(agent, tool, status, "call not recorded in the ledger"),
    }
}
