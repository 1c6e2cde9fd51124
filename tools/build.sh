#!/usr/bin/env bash
# Builds the guest tools (release) into tools/out/:
#   NAME.wasm     WASI preview 2 components (wasm32-wasip2), one per tool
#   echo-p1.wasm  the echo tool as a WASI preview 1 module (wasm32-wasip1)
# Installs the rustup targets when missing. Safe to run repeatedly.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
done
export CARGO_TARGET_DIR="$here/target"
cargo build --manifest-path "$here/Cargo.toml" --release --locked --target wasm32-wasip2 --workspace --bins
cargo build --manifest-path "$here/Cargo.toml" --release --locked --target wasm32-wasip1 -p vigil-tool-echo
mkdir -p "$here/out"
install_tool() { # install SOURCE NAME: atomic copy so concurrent readers never see half a file
    cp "$1" "$here/out/$2.tmp.$$"
    mv "$here/out/$2.tmp.$$" "$here/out/$2"
}
for tool in echo wordcount notes fetch hostile; do
    install_tool "$CARGO_TARGET_DIR/wasm32-wasip2/release/$tool.wasm" "$tool.wasm"
done
install_tool "$CARGO_TARGET_DIR/wasm32-wasip1/release/echo.wasm" echo-p1.wasm
install_tool "$CARGO_TARGET_DIR/wasm32-wasip2/release/lookup.wasm" lookup.wasm
echo "tools built into $here/out: $(cd "$here/out" && ls | tr '\n' ' ')"
