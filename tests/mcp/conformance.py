"""MCP conformance check of `aifactory mcp` with the official Python SDK (package `mcp`).

Usage:
  python conformance.py stdio BINARY DB      launches `BINARY mcp --db DB` and talks over stdio
  python conformance.py http URL TOKEN        talks streamable HTTP to URL (e.g. .../mcp)

Checks: initialise; list the tools (every tool has an object input schema; the acting tools
are marked destructive, the others read-only); call a read tool and get structured data; call
an acting tool and get it held for approval, not executed; an unknown tool is an error. Prints
one JSON line with what it saw and exits 0 only if every check held.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ACT = {"create_work_order", "change_set_point"}


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def attr(obj, snake, camel):
    """The SDK's 2.x names are snake_case, 1.x camelCase: accept either."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


def text_of(result):
    return " ".join(getattr(c, "text", "") for c in result.content)


async def check(session):
    init = await session.initialize()
    seen = {"server": attr(init, "server_info", "serverInfo").name, "protocol": attr(init, "protocol_version", "protocolVersion")}
    tools = (await session.list_tools()).tools
    names = {t.name for t in tools}
    seen["tools"] = sorted(names)
    if len(tools) < 12:
        fail(f"expected at least 12 tools, got {len(tools)}")
    for t in tools:
        if attr(t, "input_schema", "inputSchema").get("type") != "object":
            fail(f"{t.name}: input schema is not an object")
        ann = t.annotations
        if ann is None:
            fail(f"{t.name}: no annotations")
        if t.name in ACT and not (attr(ann, "destructive_hint", "destructiveHint") and not attr(ann, "read_only_hint", "readOnlyHint")):
            fail(f"{t.name}: an acting tool not marked destructive")
        if t.name not in ACT and not attr(ann, "read_only_hint", "readOnlyHint"):
            fail(f"{t.name}: a reading tool not marked read-only")

    kpis = await session.call_tool("query_kpis", {})
    if attr(kpis, "is_error", "isError"):
        fail(f"query_kpis failed: {text_of(kpis)}")
    data = attr(kpis, "structured_content", "structuredContent") or json.loads(text_of(kpis))
    if data.get("outcome") != "done" or "oee" not in data.get("result", {}).get("kpis", {}):
        fail(f"query_kpis: unexpected result {data}")
    seen["oee"] = data["result"]["kpis"]["oee"]

    manuals = await session.call_tool("search_manuals", {"query": "主轴振动过大", "limit": 2})
    found = (attr(manuals, "structured_content", "structuredContent") or {}).get("result", {}).get("passages", [])
    if not found or "SOP-MNT-01" not in found[0]["id"]:
        fail(f"search_manuals: {text_of(manuals)[:300]}")

    held = await session.call_tool(
        "create_work_order", {"machine": "TURN-01", "reason": "conformance check"}
    )
    body = attr(held, "structured_content", "structuredContent") or {}
    if attr(held, "is_error", "isError") or body.get("outcome") != "queued" or not body.get("action", "").startswith("A-"):
        fail(f"create_work_order was not held for approval: {text_of(held)[:300]}")
    if "Held for approval" not in text_of(held):
        fail("the held answer does not say so in its text")
    seen["held"] = body["action"]

    bad = await session.call_tool(
        "change_set_point", {"machine": "TURN-01", "param": "cutting_speed", "value": 9999}
    )
    if not attr(bad, "is_error", "isError"):
        fail("an out-of-bounds set-point was not refused")

    try:
        unknown = await session.call_tool("format_disk", {})
        if not attr(unknown, "is_error", "isError"):
            fail("an unknown tool did not fail")
    except Exception as e:  # the SDK may raise the JSON-RPC error instead
        seen["unknown_tool_error"] = str(e)[:120]
    seen["ok"] = True
    print(json.dumps(seen, ensure_ascii=False))


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        binary, db = sys.argv[2], sys.argv[3]
        params = StdioServerParameters(
            command=binary, args=["mcp", "--db", db, "--warm-up-days", "0.25", "--user", "conformance"]
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await check(session)
    elif mode == "http":
        url, token = sys.argv[2], sys.argv[3]
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with client:
            async with streamable_http_client(url, http_client=client) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    await check(session)
    else:
        fail(f"unknown mode {mode}")


asyncio.run(main())
