#!/usr/bin/env bash
# Rebuilds the guest tools (tools/build.sh) and copies the ones `vigil demo`
# embeds into src/cli/demo/wasm/v1/. The demo includes these files in the
# binary so that it runs on a machine with only the Rust toolchain; run this
# after changing tools/echo, tools/lookup or tools/hostile, and commit the
# result. Bump the directory version when a tool's ABI or behaviour changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/src/cli/demo/wasm/v1"
env -u CARGO_TARGET_DIR -u RUSTFLAGS bash "$root/tools/build.sh"
mkdir -p "$dest"
for tool in echo lookup hostile; do
    cp "$root/tools/out/$tool.wasm" "$dest/$tool.wasm"
done
echo "demo tools refreshed in $dest: $(cd "$dest" && ls -l | awk 'NR>1 {printf "%s (%d bytes) ", $9, $5}')"
