#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need that
# cargo cannot (the wasm32-wasip2 target, system packages), builds the example
# and hostile wasm tools, then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
if [ -f tools/build.sh ]; then
  bash tools/build.sh
fi
cargo test --workspace --all-targets "$@"
