#!/usr/bin/env bash
# Installs what building and testing vigil needs beyond cargo's own
# dependencies. Idempotent; safe to run on a fresh machine.
# `--bench` also installs what the benchmarks compare against (OpenSSH for
# the `ssh -L` column of the link bench).
set -euo pipefail
bench=false
[ "${1:-}" = "--bench" ] && bench=true

if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "deps: installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
  fi
fi

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The audit report test renders the report in headless Chromium.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The SIEM syslog test sends to a real rsyslog over TLS 1.3 (its OpenSSL driver).
[ -x /usr/sbin/rsyslogd ] || need_apt+=(rsyslog)
dpkg -s rsyslog-openssl >/dev/null 2>&1 || need_apt+=(rsyslog-openssl)
if $bench; then
  [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
  command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# The official MCP Python SDK, pinned, for tests/mcp_python.rs (a venv under
# target/, so nothing is installed system-wide).
MCP_PYTHON_SDK="mcp==2.3.0"
venv="$(cd "$(dirname "$0")/.." && pwd)/target/mcp-venv"
if ! "$venv/bin/python" -c "import mcp, importlib.metadata as m; assert m.version('mcp') == '${MCP_PYTHON_SDK#mcp==}'" >/dev/null 2>&1; then
  echo "deps: installing the MCP Python SDK ($MCP_PYTHON_SDK) into $venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q "$MCP_PYTHON_SDK"
fi

# The test identity provider for the OAuth tests (tests/idp: oidc-provider,
# pinned in its package-lock.json); reinstalled when the lock file changes.
idp="$(cd "$(dirname "$0")/.." && pwd)/tests/idp"
idp_lock="$(sha256sum "$idp/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$idp/node_modules/oidc-provider" ] || [ "$(cat "$idp/node_modules/.lock-sha256" 2>/dev/null)" != "$idp_lock" ]; then
  echo "deps: installing the test identity provider into $idp/node_modules"
  command -v npm >/dev/null 2>&1 || { echo "deps: tests/idp needs Node.js 20 or later and npm" >&2; exit 1; }
  (cd "$idp" && npm ci --silent --no-audit --no-fund)
  echo "$idp_lock" > "$idp/node_modules/.lock-sha256"
fi
