#!/usr/bin/env python3
"""A client on MCP 2026-07-28 (the official Python SDK, pinned in
scripts/deps.sh) calls a `high` tool of a vigil node over streamable HTTP:
the node answers `input_required` with an approval form, the SDK asks its
user (the elicitation callback here) and retries with the answer, and the
call completes in-band. Also: a declined approval is refused, and a forged
or replayed `requestState` decides nothing. The last stdout line is a JSON
summary."""

import argparse
import json

import anyio
from client import check, text_of  # the sibling script's checks
from mcp import types
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(opts):
    asked = []
    answer = {"approve": True}

    async def user(context, params):
        asked.append(params.message)
        check("vault_read" in params.message, "the approval form names the tool")
        return types.ElicitResult(
            action="accept",
            content={"approve": answer["approve"], "reason": "checked in-band by the user"},
        )

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {opts.token}"})
    async with http:
        transport = streamable_http_client(opts.url, http_client=http)
        async with Client(transport, mode="auto", elicitation_callback=user) as client:
            check(client.protocol_version == "2026-07-28", f"negotiated 2026-07-28 (got {client.protocol_version})")

            with anyio.fail_after(30):
                approved = await client.call_tool("vault_read", {"text": "approved in-band"})
            check(len(asked) == 1, "the user was asked once")
            check(not approved.is_error, f"the approved call completed: {text_of(approved)}")
            check("approved in-band" in text_of(approved), "the tool's output came back")

            answer["approve"] = False
            with anyio.fail_after(30):
                declined = await client.call_tool("vault_read", {"text": "declined"})
            check(len(asked) == 2, "the user was asked again")
            check(declined.is_error and "approval-denied" in text_of(declined), f"a declined call is refused: {text_of(declined)}")

            # Driving the rounds by hand: the first answer is input_required.
            session = client.session
            first = await session.call_tool("vault_read", {"text": "by hand"}, allow_input_required=True)
            check(isinstance(first, types.InputRequiredResult), "the first round is input_required")
            key = next(iter(first.input_requests))
            yes = {key: {"action": "accept", "content": {"approve": True}}}
            # A forged state, with an approving answer, decides nothing.
            forged = await session.call_tool(
                "vault_read", {"text": "by hand"}, input_responses=yes,
                request_state="vigil-approval-" + "0" * 32, allow_input_required=True,
            )
            check(getattr(forged, "is_error", False) and "request-state" in text_of(forged), f"a forged requestState is refused: {text_of(forged)}")
            # The real state, for other arguments, neither.
            moved = await session.call_tool(
                "vault_read", {"text": "other arguments"}, input_responses=yes,
                request_state=first.request_state, allow_input_required=True,
            )
            check(getattr(moved, "is_error", False), f"a state moved to other arguments is refused: {text_of(moved)}")
            # It was used up by that attempt: replaying it for the right call is refused too.
            replay = await session.call_tool(
                "vault_read", {"text": "by hand"}, input_responses=yes,
                request_state=first.request_state, allow_input_required=True,
            )
            check(getattr(replay, "is_error", False), f"a used requestState is refused: {text_of(replay)}")

    print(json.dumps({"asked": len(asked), "calls": 5}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    anyio.run(main, p.parse_args())
