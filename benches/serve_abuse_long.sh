#!/usr/bin/env bash
# The long versions of tests/serve_abuse.rs (issue 18): 1,100 idle sockets
# against the connection limit and 10,000 session attempts against the
# session limits, through the real `vigil serve`, each with a legitimate
# call meanwhile, the node's RSS bound and `vigil audit verify` afterwards.
# Not run in CI: `bash benches/serve_abuse_long.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
# 1,100 client sockets need more than the usual 1,024 descriptors.
ulimit -n 8192
VIGIL_ABUSE_LONG=1 timeout 1800 cargo test --release --test serve_abuse -- \
    --test-threads 1 --nocapture "$@"
