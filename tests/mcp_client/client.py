#!/usr/bin/env python3
"""Drives a vigil node with the official MCP Python SDK (pinned in
scripts/deps.sh) over stdio or streamable HTTP, and checks what an agent
sees: the tool list, a plain call, a validation error, redacted output, a
tool its token does not allow, and approvals through MCP elicitation and
through the operator queue (`vigil approve` / `vigil deny` run from here, in
another process). Exits non-zero on the first failed check; the last line of
stdout is a JSON summary with the number of tool calls made (each must have
exactly one ledger entry)."""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

CALLS = 0


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}", file=sys.stderr)


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def call(session, tool, arguments):
    global CALLS
    CALLS += 1
    return await session.call_tool(tool, arguments)


async def approve_by_elicitation(context, params):
    check("vault_read" in params.message, "elicitation names the tool")
    return types.ElicitResult(action="accept", content={"approve": True, "reason": "ok by the user"})


class Operator:
    """Answers the next held call from another process, like a human would."""

    def __init__(self, vigil, home, verb, reason):
        self.vigil, self.home, self.verb, self.reason = vigil, home, verb, reason
        self.answered = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(
                [self.vigil, "--home", self.home, "approvals", "--json"], capture_output=True, text=True, check=True
            ).stdout
            pending = json.loads(out)
            if pending:
                args = [self.vigil, "--home", self.home, self.verb, pending[0]["id"], "--reason", self.reason]
                subprocess.run(args, capture_output=True, text=True, check=True)
                self.answered = pending[0]
                return
            time.sleep(0.1)


async def common(session, opts, *, label):
    await session.initialize()
    listed = await session.list_tools()
    names = sorted(t.name for t in listed.tools)
    check("echo" in names and "vault_read" in names, f"{label}: tools/list shows admitted tools {names}")
    echo = next(t for t in listed.tools if t.name == "echo")
    check(echo.input_schema.get("required") == ["text"], f"{label}: echo's input schema is listed")

    r = await call(session, "echo", {"text": "hello"})
    check(not r.is_error and json.loads(text_of(r)) == {"echo": {"text": "hello"}}, f"{label}: echo answers")

    r = await call(session, "echo", {"text": 5})
    check(r.is_error and "invalid-arguments" in text_of(r) and "/text" in text_of(r), f"{label}: bad arguments refused: {text_of(r)}")

    pii = "write to alice@example.com, card 4111 1111 1111 1111, ssn 123-45-6789"
    r = await call(session, "echo", {"text": pii})
    t = text_of(r)
    check(
        not r.is_error and "[REDACTED:EMAIL]" in t and "[REDACTED:CREDIT_CARD]" in t and "[REDACTED:SSN]" in t
        and "alice@example.com" not in t and "4111" not in t,
        f"{label}: output redacted: {t}",
    )


async def vault_call(session, label, what):
    r = await call(session, "vault_read", {"text": "balance"})
    return r, text_of(r)


async def run_stdio(opts):
    params = StdioServerParameters(command=opts.vigil, args=["--home", opts.home, "mcp", "--agent", "local"])
    # 1. A client with elicitation: the human approves in the client.
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, elicitation_callback=approve_by_elicitation) as s:
            await common(s, opts, label="stdio")
            r, t = await vault_call(s, "stdio", "elicitation")
            check(not r.is_error and "balance" in t, f"stdio: high-sensitivity call approved through elicitation: {t}")
    # 2. A client without elicitation: the call waits for `vigil approve`, then `vigil deny`.
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            op = Operator(opts.vigil, opts.home, "approve", "checked by the operator")
            r, t = await vault_call(s, "stdio", "queue")
            op.thread.join()
            check(op.answered is not None and not r.is_error and "balance" in t, f"stdio: approved with `vigil approve`: {t}")
            op = Operator(opts.vigil, opts.home, "deny", "not during the audit")
            r, t = await vault_call(s, "stdio", "queue")
            op.thread.join()
            check(r.is_error and "not during the audit" in t, f"stdio: denied with `vigil deny`: {t}")
    # 3. An agent whose allow-list lacks the tool.
    params = StdioServerParameters(command=opts.vigil, args=["--home", opts.home, "mcp", "--agent", "bob"])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            listed = await s.list_tools()
            check([t.name for t in listed.tools] == ["echo"], "stdio: bob sees only the tools he may call")
            r, t = await vault_call(s, "stdio", "refused")
            check(r.is_error and "tool-not-allowed" in t, f"stdio: tool outside bob's allow-list refused: {t}")


async def http_session(opts, token, elicit, body):
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with client:
        async with streamable_http_client(opts.url, http_client=client) as (read, write):
            async with ClientSession(read, write, elicitation_callback=approve_by_elicitation if elicit else None) as s:
                await body(s)


async def run_http(opts):
    alice, bob = os.environ["VIGIL_TEST_TOKEN_ALICE"], os.environ["VIGIL_TEST_TOKEN_BOB"]

    async def with_elicitation(s):
        await common(s, opts, label="http")
        r, t = await vault_call(s, "http", "elicitation")
        check(not r.is_error and "balance" in t, f"http: high-sensitivity call approved through elicitation: {t}")

    await http_session(opts, alice, True, with_elicitation)

    async def with_queue(s):
        await s.initialize()
        op = Operator(opts.vigil, opts.home, "approve", "checked by the operator")
        r, t = await vault_call(s, "http", "queue")
        op.thread.join()
        check(op.answered is not None and not r.is_error, f"http: approved with `vigil approve`: {t}")
        op = Operator(opts.vigil, opts.home, "deny", "not during the audit")
        r, t = await vault_call(s, "http", "queue")
        op.thread.join()
        check(r.is_error and "not during the audit" in t, f"http: denied with `vigil deny`: {t}")

    await http_session(opts, alice, False, with_queue)

    async def as_bob(s):
        await s.initialize()
        listed = await s.list_tools()
        check([t.name for t in listed.tools] == ["echo"], "http: bob's token sees only echo")
        r, t = await vault_call(s, "http", "refused")
        check(r.is_error and "tool-not-allowed" in t, f"http: tool outside bob's token refused: {t}")

    await http_session(opts, bob, False, as_bob)

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}}
    hdrs = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient() as raw:
        r = await raw.post(opts.url, json=init, headers=hdrs)
        check(r.status_code == 401, f"http: no bearer token -> {r.status_code}")
        r = await raw.post(opts.url, json=init, headers={**hdrs, "Authorization": "Bearer wrong"})
        check(r.status_code == 401, f"http: unknown token -> {r.status_code}")
        r = await raw.post(opts.url, json=init, headers={**hdrs, "Authorization": f"Bearer {alice}", "Origin": "http://evil.example"})
        check(r.status_code == 403, f"http: foreign Origin refused -> {r.status_code}")
        r = await raw.post(opts.url, json=init, headers={**hdrs, "Authorization": f"Bearer {alice}", "Origin": "http://localhost:3000"})
        check(r.status_code == 200, f"http: local Origin accepted -> {r.status_code}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("transport", choices=["stdio", "http"])
    p.add_argument("--vigil", required=True)
    p.add_argument("--home", required=True)
    p.add_argument("--url")
    opts = p.parse_args()
    anyio.run(run_stdio if opts.transport == "stdio" else run_http, opts)
    print(json.dumps({"transport": opts.transport, "calls": CALLS}))


if __name__ == "__main__":
    main()
