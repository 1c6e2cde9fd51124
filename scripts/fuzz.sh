#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60): the link
# message parser, the ledger's bundle, checkpoint and proof parsers, and the
# package file and manifest parsers. Not part of CI (.ci/run): fuzzing is a
# long run. The toolchain here is stable, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# pass its -Z flags (AddressSanitizer, coverage instrumentation).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET ...]
#
# A crash leaves its input under <crate>/fuzz/artifacts/<target>/ and makes
# this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

declare -A crate_of=(
  [link_message]=transport/fuzz
  [bundle]=ledger/fuzz
  [checkpoint]=ledger/fuzz
  [proof]=ledger/fuzz
  [package_file]=fuzz
  [manifest]=fuzz
)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(link_message bundle checkpoint proof package_file manifest)
fi
for target in "${targets[@]}"; do
  dir="${crate_of[$target]:-}"
  if [ -z "$dir" ]; then
    echo "unknown fuzz target: $target (known: ${!crate_of[*]})" >&2
    exit 2
  fi
  echo "== fuzzing $target for ${seconds}s ($dir)"
  (cd "$dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds")
done
