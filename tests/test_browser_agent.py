"""An agent browses a local site with the ``browser_*`` tools: a model on loopback (an
OpenAI-style stream, ``tests/llmserver.py``) calls them one after another, against a real
Chromium and pages served on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from aleph_trio import Config, open_gateway
from aleph_trio.kernel import AgentConfig, ProviderConfig
from llmserver import Reply, serve_llm, sse
from pageserver import PageServer, serve_pages
from runhelp import run_events, start

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium")

BROWSER_TOOLS = [
    "browser_click",
    "browser_navigate",
    "browser_screenshot",
    "browser_snapshot",
    "browser_type",
]


@pytest.fixture
async def site() -> AsyncIterator[PageServer]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_pages)
        nursery.cancel_scope.cancel()


def call(name: str, arguments: dict[str, Any], n: int) -> Reply:
    piece = {
        "index": 0,
        "id": f"c{n}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return Reply(
        parts=sse(
            {"choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        )
    )


def done(text: str) -> Reply:
    return Reply(
        parts=sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]})
    )


async def test_an_agent_fills_a_form(data_dir: Path, site: PageServer) -> None:
    steps: list[tuple[str, dict[str, Any]]] = [
        ("browser_navigate", {"url": f"{site.base}/form"}),
        ("browser_snapshot", {}),
        ("browser_type", {"target": {"text": "Your name"}, "text": "Grace", "clear": True}),
        ("browser_click", {"target": {"text": "Send it"}}),
        ("browser_screenshot", {}),
        ("browser_click", {"target": {"selector": "#absent"}}),
    ]
    async with serve_llm() as llm:
        llm.script.extend(call(name, args, n) for n, (name, args) in enumerate(steps))
        llm.script.append(done("Sent."))
        config = Config(
            providers={
                "local": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))
            },
            agents={
                "main": AgentConfig(model="local/m"),
                "surfer": AgentConfig(model="local/m", tools=("browser_*",)),
            },
        )
        async with open_gateway(config, data_dir=data_dir) as gateway, gateway.connect() as client:
            agents = {a["id"]: a["tools"] for a in (await client.call("agent.list"))["agents"]}
            assert agents["surfer"] == BROWSER_TOOLS
            assert not any(t.startswith("browser_") for t in agents["main"])  # opt-in only

            run_id = await start(client, "sign me up as Grace", agent_id="surfer")
            events = await run_events(client, run_id, timeout=60)
            assert events[-1].topic == "agent.completed"
            ends = [e.data for e in events if e.topic == "stream.tool_end"]
            assert [e["tool"] for e in ends] == [name for name, _ in steps]
            outputs = [e["output"] for e in ends]
            assert [e["is_error"] for e in ends] == [False] * 5 + [True], outputs
            assert "HTTP 200" in outputs[0] and "'Sign up'" in outputs[0]
            assert "textbox 'Your name' = 'old'" in outputs[1]
            assert outputs[4].startswith("Took a ") and "PNG" in outputs[4]
            assert len(outputs[4]) < 200  # a description, never the image
            assert "not found" in outputs[5]
            first_request = llm.requests[0].body
            assert sorted(t["function"]["name"] for t in first_request["tools"]) == BROWSER_TOOLS
            with trio.fail_after(15):
                while "/result" not in site.hits:  # the click's form submission arrives  # noqa: ASYNC110
                    await trio.sleep(0.02)
            heading = "document.querySelector('h1').innerText"
            page = await client.call("browser.evaluate", {"script": heading})
            assert page["value"] == "Hello Grace"  # the screenshot already waited for it
