"""MCP servers through a real gateway: the test server ``tests/mcpserver.py`` runs as a real
subprocess speaking MCP over stdio, and a loopback HTTP server stands in for the model, scripting
the tool calls. These tests run on the real clock: a subprocess starting or exiting is kernel
work that a virtual clock would jump over. The only real waits are the restart backoff's first
step (0.5 s) where a test crashes the server on purpose."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.kernel import McpConfig, McpServerConfig, ProviderConfig
from aleph_trio.protocol import AlephError
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import run_events, start, wait_event

SERVER = str(Path(__file__).with_name("mcpserver.py"))


def demo(require_approval: bool | tuple[str, ...] = False, **env: str) -> McpServerConfig:
    return McpServerConfig(
        command=sys.executable, args=(SERVER,), env=env, require_approval=require_approval
    )


def script_call(llm: LLMServer, tool: str, arguments: dict[str, Any], answer: str = "ok") -> None:
    """The model's next turn calls ``tool``; the turn after says ``answer``."""
    call = {"index": 0, "id": "c1", "type": "function"}
    call["function"] = {"name": tool, "arguments": json.dumps(arguments)}
    delta = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    done = {"choices": [{"index": 0, "delta": {"content": answer}, "finish_reason": "stop"}]}
    llm.script += [Reply(parts=sse(delta)), Reply(parts=sse(done))]


async def wait_status(
    client: Client, name: str, status: str, *, restarts: int | None = None
) -> dict[str, Any]:
    """Poll ``services.status`` until the service is in ``status`` (with that restart count)."""
    with trio.fail_after(20):
        while True:
            state: dict[str, Any] = await client.call("services.status", {"name": name})
            if state["status"] == status and restarts in (None, state["restarts"]):
                return state
            await trio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@contextlib.asynccontextmanager
async def mcp_gateway(
    data_dir: Path, **servers: McpServerConfig
) -> AsyncIterator[tuple[Gateway, Client, LLMServer]]:
    async with serve_llm() as llm:
        config = Config(
            providers={"up": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))},
            mcp=McpConfig(servers=servers),
        )
        async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
            for name in servers:
                await wait_status(client, f"mcp:{name}", "running")
            yield gw, client, llm


def tool_end(events: list[Any]) -> dict[str, Any]:
    (end,) = [e.data for e in events if e.topic == "stream.tool_end"]
    return end


async def test_an_agent_calls_a_server_tool_with_its_schema(data_dir: Path) -> None:
    async with mcp_gateway(data_dir, demo=demo(MCP_DEMO_GREETING="hello ")) as (gw, c, llm):
        assert {"mcp__demo__echo", "mcp__demo__add", "mcp__demo__slow"} <= set(gw.tools.names())
        script_call(llm, "mcp__demo__echo", {"text": "there"})
        events = await run_events(c, await start(c, "go"))
        assert tool_end(events)["output"] == "hello there"  # the configured env arrived
        assert not tool_end(events)["is_error"]
        assert events[-1].topic == "agent.completed"
        offered = {t["function"]["name"]: t["function"] for t in llm.requests[0].body["tools"]}
        schema = offered["mcp__demo__echo"]["parameters"]
        assert schema["properties"] == {"text": {"type": "string"}}
        assert offered["mcp__demo__echo"]["description"] == "Answer the text given."
        # The server's own error results are error results for the model.
        script_call(llm, "mcp__demo__fail", {})
        end = tool_end(await run_events(c, await start(c, "go")))
        assert end["is_error"] and "always fails" in end["output"]


async def test_the_agents_tool_globs_apply_to_server_tools(data_dir: Path) -> None:
    async with mcp_gateway(data_dir, demo=demo()) as (gw, c, _):
        agents = await c.call("agent.list")
        assert "mcp__demo__echo" in agents["agents"][0]["tools"]
        names = gw.tools.names()
        from aleph_trio.runs import Agent

        only_echo = Agent("a", "a", "", None, ("mcp__demo__echo",), "", "off")
        assert only_echo.allowed(names) == ["mcp__demo__echo"]


async def test_calls_needing_approval_wait_for_the_owner(data_dir: Path) -> None:
    async with mcp_gateway(data_dir, demo=demo(("echo",))) as (_, c, llm):
        await c.subscribe(["mcp.*"])
        outcomes = []
        for answer in ("approve", "deny", "cancel"):
            script_call(llm, "mcp__demo__echo", {"text": answer})
            run_id = await start(c, "go")
            asked = await wait_event(c, "mcp.approval_requested", run_id=run_id)
            request_id = asked.data["id"]
            assert asked.data == {
                "id": request_id,
                "server": "demo",
                "tool": "echo",
                "run_id": run_id,
            }
            (pending,) = (await c.call("mcp.list_pending_approvals"))["approvals"]
            assert pending["arguments"] == {"text": answer}
            assert pending["run_id"] == run_id and pending["requested_at"]
            assert (await c.call("agent.status", {"run_id": run_id}))["status"] == (
                "waiting_approval"
            )
            if answer == "cancel":
                assert await c.call("mcp.cancel_approval", {"id": request_id}) == {
                    "cancelled": True
                }
            else:
                result = await c.call(
                    "mcp.respond_approval", {"id": request_id, "approved": answer == "approve"}
                )
                assert result == {"responded": True}
            resolved = await wait_event(c, "mcp.approval_resolved", run_id=run_id)
            assert resolved.data["approved"] is (answer == "approve")
            events = await run_events(c, run_id)
            outcomes.append(tool_end(events))
            assert events[-1].topic == "agent.completed"
            # Answered once: a second answer finds nothing.
            with pytest.raises(AlephError) as err:
                await c.call("mcp.respond_approval", {"id": request_id, "approved": True})
            assert err.value.code == -32004
        assert outcomes[0] == {**outcomes[0], "output": "approve", "is_error": False}
        assert outcomes[1]["is_error"] and "denied" in outcomes[1]["output"]
        assert outcomes[2]["is_error"] and "cancelled" in outcomes[2]["output"]
        assert "not called" in outcomes[2]["output"]
        # A tool not listed in require_approval runs at once.
        script_call(llm, "mcp__demo__add", {"a": 2, "b": 3})
        assert tool_end(await run_events(c, await start(c, "go")))["output"] == "5"
        assert (await c.call("mcp.list_pending_approvals"))["approvals"] == []
        for method, params in [
            ("mcp.cancel_approval", {"id": "mcpa_nope"}),
            ("mcp.respond_approval", {"id": "mcpa_nope", "approved": False}),
        ]:
            with pytest.raises(AlephError) as err:
                await c.call(method, params)
            assert err.value.code == -32004
        with pytest.raises(AlephError) as err:
            await c.call("mcp.respond_approval", {"id": "x"})
        assert err.value.code == -32602


async def test_cancelling_a_run_withdraws_its_approval_request(data_dir: Path) -> None:
    async with mcp_gateway(data_dir, demo=demo(True)) as (_, c, llm):
        await c.subscribe(["mcp.*"])
        script_call(llm, "mcp__demo__add", {"a": 1, "b": 1})
        run_id = await start(c, "go")
        await wait_event(c, "mcp.approval_requested", run_id=run_id)
        await c.call("agent.cancel", {"run_id": run_id})
        resolved = await wait_event(c, "mcp.approval_resolved", run_id=run_id)
        assert resolved.data["outcome"] == "cancelled"
        assert (await c.call("mcp.list_pending_approvals"))["approvals"] == []


async def scrape_metrics(gateway: Gateway) -> str:
    """``GET /metrics`` as Prometheus would, over an in-memory stream."""
    client, server = trio.testing.memory_stream_pair()
    request = (
        "GET /metrics HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        f"Authorization: Bearer {gateway.owner_token}\r\n\r\n"
    )
    answer = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.serve_stream, server)
        await client.send_all(request.encode())
        while chunk := await client.receive_some(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")
    return answer.decode()


async def test_a_crashed_server_fails_the_call_and_comes_back(data_dir: Path) -> None:
    async with mcp_gateway(data_dir, demo=demo()) as (gw, c, llm), gw.connect() as watcher:
        await watcher.subscribe(["services.*"])
        first_pid = gw.mcp.server("demo").pid
        script_call(llm, "mcp__demo__crash", {})
        events = await run_events(c, await start(c, "go"))
        end = tool_end(events)
        assert end["is_error"] and "went away" in end["output"]
        assert events[-1].topic == "agent.completed"  # the run went on
        failed = await wait_event(watcher, "services.failed")
        assert failed.data["name"] == "mcp:demo" and "code 3" in failed.data["error"]
        restarting = await wait_event(watcher, "services.restarting")
        assert restarting.data["delay_s"] == 0.5
        assert (await wait_event(watcher, "services.started")).data == {"name": "mcp:demo"}
        state = await wait_status(c, "mcp:demo", "running", restarts=1)
        assert "code 3" in state["error"]  # the last error stays visible
        assert gw.mcp.server("demo").pid != first_pid
        assert 'aleph_service_restarts_total{service="mcp:demo"} 1' in await scrape_metrics(gw)
        script_call(llm, "mcp__demo__echo", {"text": "back"})
        assert tool_end(await run_events(c, await start(c, "go")))["output"] == "back"


async def test_stopping_a_server_fails_its_calls_and_withdraws_its_tools(
    data_dir: Path,
) -> None:
    async with mcp_gateway(data_dir, demo=demo()) as (gw, c, llm):
        pid = gw.mcp.server("demo").pid
        assert pid is not None
        script_call(llm, "mcp__demo__slow", {"seconds": 3600})
        run_id = await start(c, "go")
        await wait_event(c, "stream.tool_start", run_id=run_id)
        assert await c.call("services.stop", {"name": "mcp:demo"}) == {"stopped": True}
        assert not alive(pid)  # the whole group was killed before stop answered
        end = tool_end(await run_events(c, run_id))
        assert end["is_error"] and "stopped" in end["output"]
        assert not [n for n in gw.tools.names() if n.startswith("mcp__")]
        state = await c.call("services.status", {"name": "mcp:demo"})
        assert state["status"] == "stopped"
        assert await c.call("services.stop", {"name": "mcp:demo"}) == {"stopped": True}
        assert await c.call("services.start", {"name": "mcp:demo"}) == {"started": True}
        assert (await c.call("services.status", {"name": "mcp:demo"}))["status"] == "running"
        assert "mcp__demo__echo" in gw.tools.names()
        script_call(llm, "mcp__demo__echo", {"text": "again"})
        assert tool_end(await run_events(c, await start(c, "go")))["output"] == "again"


async def test_closing_the_gateway_kills_the_servers(data_dir: Path) -> None:
    async with mcp_gateway(data_dir, demo=demo(), other=demo()) as (gw, c, _):
        pids = [gw.mcp.server(name).pid for name in ("demo", "other")]
        listed = {s["name"]: s for s in (await c.call("services.list"))["services"]}
        assert listed["mcp:other"]["status"] == "running" and listed["mcp:other"]["started_at"]
    assert pids and not [pid for pid in pids if pid is not None and alive(pid)]


async def test_a_server_that_cannot_start_fails_without_harm(data_dir: Path) -> None:
    broken = McpServerConfig(command="/no/such/mcp-server")
    async with serve_llm() as llm:
        config = Config(
            providers={"up": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))},
            mcp=McpConfig(servers={"broken": broken}),
        )
        async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as c:
            state = await wait_status(c, "mcp:broken", "failed")
            assert "No such file" in state["error"]
            assert (await c.call("health"))["status"] == "ok"
            with pytest.raises(AlephError) as err:
                await c.call("services.start", {"name": "mcp:broken"})
            assert err.value.code == -32603 and "No such file" in err.value.message


async def test_config_reload_starts_and_stops_servers(tmp_path: Path, data_dir: Path) -> None:
    path = tmp_path / "config.toml"
    head = '[providers.builtin]\nkind = "builtin"\n'
    entry = (
        f"[mcp.servers.demo]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(SERVER)}, '--tools', 'echo']\nrequire_approval = false\n"
    )
    path.write_text(head)
    async with open_gateway(config_path=path, data_dir=data_dir, watch_config=False) as gw:
        async with gw.connect() as c:
            names = [s["name"] for s in (await c.call("services.list"))["services"]]
            assert not [n for n in names if n.startswith("mcp:")]
            path.write_text(head + entry)
            await c.call("config.reload")
            await wait_status(c, "mcp:demo", "running")
            assert [n for n in gw.tools.names() if n.startswith("mcp__")] == ["mcp__demo__echo"]
            pid = gw.mcp.server("demo").pid
            # A changed command line restarts it.
            path.write_text(head + entry.replace("'echo'", "'echo,add'"))
            await c.call("config.reload")
            await gw.mcp.reconcile()  # after (or instead of) the one the reload started
            assert "mcp__demo__add" in gw.tools.names()
            assert pid is not None and not alive(pid)
            pid = gw.mcp.server("demo").pid
            path.write_text(head)
            await c.call("config.reload")
            await gw.mcp.reconcile()
            assert "mcp:demo" not in gw.services.statuses()
            assert not [n for n in gw.tools.names() if n.startswith("mcp__")]
            assert pid is not None and not alive(pid)
            with pytest.raises(AlephError) as err:
                await c.call("services.status", {"name": "mcp:demo"})
            assert err.value.code == -32004


async def test_the_example_server_works(data_dir: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "mcp_server.py"
    text = McpServerConfig(command=sys.executable, args=(str(example),), require_approval=False)
    async with mcp_gateway(data_dir, text=text) as (gw, c, llm):
        assert {"mcp__text__shout", "mcp__text__word_count"} <= set(gw.tools.names())
        script_call(llm, "mcp__text__word_count", {"text": "one two three"})
        assert tool_end(await run_events(c, await start(c, "go")))["output"] == "3"


async def test_guests_see_their_own_waiting_calls_and_cannot_answer(data_dir: Path) -> None:
    from aleph_trio.auth import Principal

    grants = ("agent.run", "mcp.*")
    guests = {
        "token-1": Principal("guest", "g-1", grants, invitation_id="inv_1"),
        "token-2": Principal("guest", "g-2", grants, invitation_id="inv_2"),
    }
    async with mcp_gateway(data_dir, demo=demo(True)) as (gw, owner, llm):
        gw.auth.guest_resolvers.append(guests.get)
        await owner.subscribe(["mcp.*"])
        async with gw.connect(token="token-1") as one, gw.connect(token="token-2") as two:
            script_call(llm, "mcp__demo__echo", {"text": "guest"})
            run_id = (await one.call("agent.run", {"message": "go"}))["run_id"]
            asked = await wait_event(owner, "mcp.approval_requested", run_id=run_id)
            mine = (await one.call("mcp.list_pending_approvals"))["approvals"]
            assert [a["id"] for a in mine] == [asked.data["id"]]
            assert (await two.call("mcp.list_pending_approvals"))["approvals"] == []
            for method, params in [
                ("mcp.respond_approval", {"id": asked.data["id"], "approved": True}),
                ("mcp.cancel_approval", {"id": asked.data["id"]}),
            ]:
                with pytest.raises(AlephError) as err:
                    await one.call(method, params)
                assert err.value.code == -32002
            await owner.call("mcp.respond_approval", {"id": asked.data["id"], "approved": True})
            end = tool_end(await run_events(one, run_id))
            assert end["output"] == "guest"


async def test_kill_9_of_the_gateway_takes_its_mcp_servers(tmp_path: Path) -> None:
    """The gateway as a real process, killed with SIGKILL: the exec watcher, which knows the
    MCP server's process group, kills it at once (this server would outlive its closed stdin)."""
    import signal

    from gatewayproc import start_server
    from test_exec_orphans import processes, unique_seconds, wait_until

    tag = f"mcp-{unique_seconds()}"
    (tmp_path / "absent.toml").write_text(
        f"[mcp.servers.demo]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(SERVER)}, '--tools', 'echo', '--linger', '{tag}']\n"
    )
    log = tmp_path / "gateway.log"
    async for server in start_server(tmp_path, stderr=log):
        # Ready means handed to the watcher (the group is registered before the handshake).
        await wait_until(lambda: b"MCP server demo ready" in log.read_bytes(), timeout=30)
        assert processes(tag.encode())
        server.process.send_signal(signal.SIGKILL)
        await wait_until(lambda: not processes(tag.encode()))


async def test_a_tool_name_taken_by_another_server_is_skipped(data_dir: Path) -> None:
    """``x.y`` and ``x_y`` both make ``mcp__x_y__echo``: the first server keeps it, and the
    other's stop does not take it away."""
    async with mcp_gateway(data_dir, **{"x.y": demo(), "x_y": demo()}) as (gw, c, _):
        owners = [n for n in ("x.y", "x_y") if "mcp__x_y__echo" in gw.mcp.server(n).tools]
        assert len(owners) == 1
        (other,) = {"x.y", "x_y"} - set(owners)
        assert gw.mcp.server(other).tools == []
        await c.call("services.stop", {"name": f"mcp:{other}"})
        assert "mcp__x_y__echo" in gw.tools.names()
        await c.call("services.stop", {"name": f"mcp:{owners[0]}"})
        assert "mcp__x_y__echo" not in gw.tools.names()
