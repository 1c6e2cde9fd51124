//! Diagnostics on stderr: the tracing subscriber that vigil's crates log to
//! (links that could not be opened and their backoff, refused links and
//! tunnels, failed tunnel connections, and at `info` one line per tool call:
//! agent, tool, status, ledger index). `VIGIL_LOG` takes a filter in the
//! `tracing-subscriber` `EnvFilter` syntax (`info`, `vigil_transport=debug`,
//! `off`, ...); without it, warnings of vigil's own crates are shown.
//!
//! Whatever `VIGIL_LOG` says, crates whose verbose logs carry message
//! contents (tool arguments and output, stored ledger entries, HTTP headers
//! with bearer tokens) are capped below those levels ([`CAPPED`]): no filter
//! makes the log a second, unredacted copy of what agents send and receive.

use std::io::IsTerminal as _;

use anyhow::anyhow;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "VIGIL_LOG";

/// What is logged when `VIGIL_LOG` is not set.
const DEFAULT_FILTER: &str = "vigil=warn,vigil_transport=warn,vigil_ledger=warn,vigil_crypto=warn";

/// The most verbose level each of these targets (and the targets they
/// prefix) may log at, whatever `VIGIL_LOG` says.
pub const CAPPED: &[(&str, LevelFilter)] = &[
    // debug: every JSON-RPC request and response whole; info: client
    // notifications; warn: rejected requests with what was wrong in them.
    ("rmcp", LevelFilter::ERROR),
    // trace: every WASI call a tool makes, with its arguments (paths, host
    // names, strings taken from the tool's input). Covers wasmtime_wasi*.
    ("wasmtime", LevelFilter::INFO),
    // debug/trace (through `log`): every write batch with its keys and
    // values as byte arrays: ledger entries, whose details can quote
    // arguments (a refusal naming a value that failed the schema).
    ("sled", LevelFilter::INFO),
    // debug/trace: HTTP headers (bearer tokens) and frames.
    ("hyper", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("axum", LevelFilter::INFO),
    ("tower", LevelFilter::INFO),
    ("reqwest", LevelFilter::INFO),
];

/// Installs the stderr logger; fails on a malformed `VIGIL_LOG`.
pub fn init() -> anyhow::Result<()> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(directives) => EnvFilter::try_new(&directives)
            .map_err(|e| anyhow!("{LOG_ENV}={directives:?} is not a log filter: {e}"))?,
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let caps = CAPPED.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    );
    // Both filters are global: an event is logged only when both let it.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(filter)
        .with(caps)
        .with(output)
        .try_init()
        .map_err(|e| anyhow!("cannot install the logger: {e}"))
}
