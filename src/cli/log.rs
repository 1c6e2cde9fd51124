//! Diagnostics on stderr: the tracing subscriber that vigil's crates log to
//! (links that could not be opened and their backoff, refused links and
//! tunnels, failed tunnel connections). `VIGIL_LOG` takes a filter in the
//! `tracing-subscriber` `EnvFilter` syntax (`info`, `vigil_transport=debug`,
//! `off`, ...); without it, warnings of vigil's own crates are shown.

use std::io::IsTerminal as _;

use anyhow::anyhow;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "VIGIL_LOG";

/// What is logged when `VIGIL_LOG` is not set.
const DEFAULT_FILTER: &str = "vigil=warn,vigil_transport=warn,vigil_ledger=warn,vigil_crypto=warn";

/// Installs the stderr logger; fails on a malformed `VIGIL_LOG`.
pub fn init() -> anyhow::Result<()> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(directives) => EnvFilter::try_new(&directives)
            .map_err(|e| anyhow!("{LOG_ENV}={directives:?} is not a log filter: {e}"))?,
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow!("cannot install the logger: {e}"))
}
