"""Workspaces (PROTOCOL §17) through the real gateway: a real SQLite file, real directories, real
``exec`` subprocesses, and a loopback HTTP server standing in for the LLM provider to see which
model and tools a run in a workspace asks for."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.kernel import AgentConfig, ProviderConfig
from aleph_trio.protocol import AlephError
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import assert_quiet, chunks, run_events, start, topics, wait_event

ALL_TOOLS = ["ask_user", "exec", "memory_search", "memory_store"]


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


def llm_config(llm: LLMServer, **agents: AgentConfig) -> Config:
    """A provider ``local`` on the loopback server with models ``a`` (the default) and ``b``."""
    provider = ProviderConfig(kind="openai", base_url=llm.base_url, models=("a", "b"))  # type: ignore[arg-type]
    return Config(providers={"local": provider}, agents=agents)


def text_reply(content: str = "ok") -> Reply:
    delta = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": "stop"}]}
    return Reply(parts=sse(delta))


def tool_reply(name: str, arguments: dict[str, Any]) -> Reply:
    call = {"index": 0, "id": "c1", "type": "function"}
    call["function"] = {"name": name, "arguments": json.dumps(arguments)}
    return Reply(parts=sse({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}))


async def call_error(client: Client, method: str, params: dict[str, Any]) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


async def create(client: Client, name: str, **params: Any) -> str:
    result = await client.call("workspace.create", {"name": name, **params})
    assert set(result) == {"workspace_id"}
    workspace_id: str = result["workspace_id"]
    return workspace_id


# -- create, get, list ------------------------------------------------------------------------


async def test_create_makes_a_directory_under_the_data_dir(client: Client, data_dir: Path) -> None:
    await client.subscribe(["workspace.*"])
    workspace_id = await create(client, "docs", description="the manual")
    workspace = await client.call("workspace.get", {"workspace_id": workspace_id})
    directory = data_dir / "workspaces" / workspace_id
    assert workspace == {
        "workspace_id": workspace_id,
        "name": "docs",
        "path": str(directory),
        "description": "the manual",
        "config": {},
        "status": "active",
        "created_at": workspace["created_at"],
        "updated_at": workspace["created_at"],
    }
    assert directory.is_dir()
    assert (directory.stat().st_mode & 0o777) == 0o700
    event = await wait_event(client, "workspace.created", timeout=5)
    assert event.data == {"workspace": workspace}
    second = await create(client, "site", config={"tools": ["exec"]})
    listed = (await client.call("workspace.list"))["workspaces"]
    assert [w["workspace_id"] for w in listed] == [workspace_id, second]
    assert listed[1]["config"] == {"tools": ["exec"]}


async def test_a_given_path_must_be_absolute_and_is_created(client: Client, tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er"
    workspace_id = await create(client, "given", path=f"{tmp_path}/deep/./er/")
    workspace = await client.call("workspace.get", {"workspace_id": workspace_id})
    assert workspace["path"] == str(target)
    assert target.is_dir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for path, words in [("relative/dir", "not an absolute path"), (str(a_file), "not a directory")]:
        err = await call_error(client, "workspace.create", {"name": "bad", "path": path})
        assert err.code == -32602 and words in err.message
        assert err.data is not None and err.data["errors"][0]["path"] == "$.path"
    assert [w["name"] for w in (await client.call("workspace.list"))["workspaces"]] == ["given"]


async def test_duplicate_names_conflict_even_when_archived(client: Client) -> None:
    first = await create(client, "docs")
    err = await call_error(client, "workspace.create", {"name": "docs"})
    assert err.code == -32602 and err.data is not None and err.data["reason"] == "conflict"
    assert "docs" in err.message
    await client.call("workspace.archive", {"workspace_id": first})
    err = await call_error(client, "workspace.create", {"name": " docs "})
    assert err.code == -32602 and err.data is not None and err.data["reason"] == "conflict"
    listed = (await client.call("workspace.list", {"include_archived": True}))["workspaces"]
    assert [w["workspace_id"] for w in listed] == [first]


@pytest.mark.parametrize(
    ("config", "path", "words"),
    [
        ({"agent_id": "ghost"}, "$.config.agent_id", "no agent 'ghost'"),
        ({"model": "nope/x"}, "$.config.model", "unknown model 'nope/x'"),
        ({"tools": ["exec", "rm_rf"]}, "$.config.tools[1]", "unknown tool 'rm_rf'"),
        ({"tools": "exec"}, "$.config.tools", "expected array"),
        ({"colour": "red"}, "$.config.colour", ""),
    ],
)
async def test_config_is_checked_and_bad_config_stores_nothing(
    client: Client, data_dir: Path, config: dict[str, Any], path: str, words: str
) -> None:
    err = await call_error(client, "workspace.create", {"name": "w", "config": config})
    assert err.code == -32602
    assert err.data is not None and path in [e["path"] for e in err.data["errors"]]
    assert words in err.message
    assert (await client.call("workspace.list", {"include_archived": True}))["workspaces"] == []
    assert not (data_dir / "workspaces").exists() or not any((data_dir / "workspaces").iterdir())


async def test_blank_names_and_unknown_ids(client: Client) -> None:
    err = await call_error(client, "workspace.create", {"name": "   "})
    assert err.code == -32602 and "$.name" in err.message
    for method, params in [
        ("workspace.get", {}),
        ("workspace.update", {"config": {}}),
        ("workspace.archive", {}),
    ]:
        err = await call_error(client, method, {"workspace_id": "ws_missing", **params})
        assert err.code == -32004
        assert err.data == {"resource": "workspace", "id": "ws_missing"}


# -- update and archive -----------------------------------------------------------------------


async def test_update_replaces_the_config(client: Client) -> None:
    workspace_id = await create(client, "w", config={"tools": ["exec"], "model": "offline"})
    ref = {"workspace_id": workspace_id}
    # The bare model name was stored by its full id.
    assert (await client.call("workspace.get", ref))["config"] == {
        "model": "builtin/offline",
        "tools": ["exec"],
    }
    await client.subscribe(["workspace.*"])
    result = await client.call("workspace.update", {**ref, "config": {"agent_id": "main"}})
    assert result == {"updated": True}
    workspace = await client.call("workspace.get", ref)
    assert workspace["config"] == {"agent_id": "main"}
    assert workspace["updated_at"] >= workspace["created_at"]
    event = await wait_event(client, "workspace.updated", timeout=5)
    assert event.data == {"workspace": workspace}
    err = await call_error(client, "workspace.update", {**ref, "config": {"tools": ["nope"]}})
    assert err.code == -32602 and "$.config.tools[0]" in err.message
    err = await call_error(client, "workspace.update", ref)
    assert err.code == -32602
    assert (await client.call("workspace.get", ref)) == workspace


async def test_an_archived_workspace_changes_only_by_coming_back(client: Client) -> None:
    workspace_id = await create(client, "old", config={"tools": ["exec"]})
    ref = {"workspace_id": workspace_id}
    await client.subscribe(["workspace.*"])
    assert await client.call("workspace.archive", ref) == {"archived": True}
    archived = await client.call("workspace.get", ref)
    assert archived["status"] == "archived"
    assert (await wait_event(client, "workspace.archived", timeout=5)).data == {
        "workspace": archived
    }
    assert (await client.call("workspace.list"))["workspaces"] == []
    assert (await client.call("workspace.list", {"include_archived": True}))["workspaces"] == [
        archived
    ]
    assert await client.call("workspace.archive", ref) == {"archived": True}  # again: no change
    assert await client.call("workspace.get", ref) == archived

    err = await call_error(client, "workspace.update", {**ref, "config": {}})
    assert err.code == -32602 and err.data is not None and err.data["reason"] == "invalid_state"
    assert "archived" in err.message
    assert await client.call("workspace.get", ref) == archived
    err = await call_error(client, "workspace.update", {**ref, "status": "archived"})
    assert err.code == -32602 and "$.status" in err.message

    changed = {**ref, "status": "active", "config": {"agent_id": "main"}}
    assert await client.call("workspace.update", changed) == {"updated": True}
    back = await client.call("workspace.get", ref)
    assert back["status"] == "active" and back["config"] == {"agent_id": "main"}
    assert [w["workspace_id"] for w in (await client.call("workspace.list"))["workspaces"]] == [
        workspace_id
    ]


async def test_guests_may_read_workspaces_but_not_change_them_or_hear_of_them(
    gateway: Gateway,
) -> None:
    guest = Principal("guest", "guest-1", ("workspace.*", "events.*"), invitation_id="inv_1")
    gateway.auth.guest_resolvers.append(lambda token: guest if token == "guest-token" else None)
    async with gateway.connect() as owner, gateway.connect(token="guest-token") as visitor:
        await visitor.subscribe(["**"])
        workspace_id = await create(owner, "shared")
        ref = {"workspace_id": workspace_id}
        assert (await visitor.call("workspace.get", ref))["name"] == "shared"
        assert len((await visitor.call("workspace.list"))["workspaces"]) == 1
        for method, params in [
            ("workspace.create", {"name": "mine"}),
            ("workspace.update", {**ref, "config": {}}),
            ("workspace.archive", ref),
        ]:
            assert (await call_error(visitor, method, params)).code == -32002
        await owner.call("workspace.archive", ref)
        # No workspace.* event reached the guest, though it listens to everything.
        await assert_quiet(visitor, gateway.bus, subscribe=False, principal_id="guest-1")
        assert (await owner.call("workspace.get", ref))["status"] == "archived"


# -- runs in a workspace ----------------------------------------------------------------------


async def test_runs_in_unknown_or_archived_workspaces_are_refused(client: Client) -> None:
    workspace_id = await create(client, "gone")
    await client.call("workspace.archive", {"workspace_id": workspace_id})
    for method in ("agent.run", "chat.send"):
        err = await call_error(client, method, {"message": "hi", "workspace_id": "ws_nope"})
        assert err.code == -32004
        assert err.data == {"resource": "workspace", "id": "ws_nope"}
        err = await call_error(client, method, {"message": "hi", "workspace_id": workspace_id})
        assert err.code == -32602 and err.data is not None
        assert err.data["reason"] == "invalid_state" and "archived" in err.message
    assert (await client.call("session.list"))["total"] == 0


async def test_the_workspace_model_reaches_the_provider(llm: LLMServer, data_dir: Path) -> None:
    llm.script += [text_reply() for _ in range(3)]
    async with open_gateway(llm_config(llm), data_dir=data_dir) as gw, gw.connect() as client:
        workspace_id = await create(client, "w", config={"model": "local/b"})
        run_id = await start(client, "hi", workspace_id=workspace_id)
        assert topics(await run_events(client, run_id))[-1] == "agent.completed"
        assert llm.requests[0].body["model"] == "b"
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["model"] == "local/b" and status["workspace_id"] == workspace_id

        # The caller's own model still wins; outside the workspace the default applies.
        run_id = await start(client, "hi", workspace_id=workspace_id, model="local/a")
        await run_events(client, run_id)
        assert llm.requests[1].body["model"] == "a"
        run_id = await start(client, "hi")
        await run_events(client, run_id)
        assert llm.requests[2].body["model"] == "a"
        assert "workspace_id" not in await client.call("agent.status", {"run_id": run_id})


async def test_the_tools_override_limits_what_the_provider_offers_and_runs(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script += [text_reply(), tool_reply("exec", {"command": "true"}), text_reply("done")]
    async with open_gateway(llm_config(llm), data_dir=data_dir) as gw, gw.connect() as client:
        run_id = await start(client, "hi")
        await run_events(client, run_id)
        names = [tool["function"]["name"] for tool in llm.requests[0].body["tools"]]
        assert names == ALL_TOOLS

        workspace_id = await create(client, "notes", config={"tools": ["memory_search"]})
        run_id = await start(client, "hi", workspace_id=workspace_id)
        events = await run_events(client, run_id)
        names = [tool["function"]["name"] for tool in llm.requests[1].body["tools"]]
        assert names == ["memory_search"]
        # The model asked for exec anyway: refused as a tool result, never run.
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["is_error"] is True
        assert "unknown tool 'exec'" in end["output"] and "memory_search" in end["output"]
        assert topics(events)[-1] == "agent.completed" and chunks(events) == "done"


async def test_a_workspace_model_gone_from_the_config_is_named_with_the_workspace(
    llm: LLMServer, tmp_path: Path, data_dir: Path
) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[providers.local]\nkind = "openai"\nbase_url = "{llm.base_url}"\nmodels = ["a", "b"]\n'
    )
    async with (
        open_gateway(config_path=config_file, data_dir=data_dir, watch_config=False) as gw,
        gw.connect() as client,
    ):
        workspace_id = await create(client, "w", config={"model": "local/b"})
        config_file.write_text("")  # the provider goes away
        assert (await client.call("config.reload"))["reloaded"] is True
        err = await call_error(client, "agent.run", {"message": "hi", "workspace_id": workspace_id})
        assert err.code == -32602
        assert workspace_id in err.message and "'local/b'" in err.message
        assert "workspace.update" in err.message
        assert llm.requests == []


async def test_an_idempotency_key_tells_workspaces_apart(client: Client) -> None:
    workspace_id = await create(client, "w")
    params = {"message": "hi", "idempotency_key": "k1"}
    first = await client.call("agent.run", params)
    assert await client.call("agent.run", params) == first
    err = await call_error(client, "agent.run", {**params, "workspace_id": workspace_id})
    assert err.code == -32602 and err.data is not None and err.data["reason"] == "conflict"


async def test_the_workspace_agent_is_the_default_for_agent_run_and_chat_send(
    data_dir: Path,
) -> None:
    config = Config(agents={"notes": AgentConfig(tools=("memory_*",))})
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        workspace_id = await create(client, "w", config={"agent_id": "notes"})
        for method in ("agent.run", "chat.send"):
            result = await client.call(method, {"message": "hi", "workspace_id": workspace_id})
            assert result["session_key"] == "agent:notes:main"
            await run_events(client, result["run_id"])
            status = await client.call("agent.status", {"run_id": result["run_id"]})
            assert status["agent_id"] == "notes" and status["workspace_id"] == workspace_id
        # A session key or an agent named by the caller wins over the workspace's agent.
        result = await client.call(
            "chat.send",
            {"message": "hi", "workspace_id": workspace_id, "session_key": "agent:main:x"},
        )
        assert (await client.call("agent.status", {"run_id": result["run_id"]}))[
            "agent_id"
        ] == "main"
        run_id = await start(client, "hi", workspace_id=workspace_id, agent_id="main")
        assert (await client.call("agent.status", {"run_id": run_id}))["agent_id"] == "main"
        # Without a workspace chat.send keeps the default session.
        result = await client.call("chat.send", {"message": "hi"})
        assert result["session_key"] == "agent:main:main"


async def test_exec_runs_in_the_workspace_directory_once_approved(
    gateway: Gateway, tmp_path: Path
) -> None:
    async with gateway.connect() as user, gateway.connect() as approver:
        await approver.subscribe(["exec.approval_requested"])
        workspace_id = await create(user, "site", path=str(tmp_path / "site"))
        run_id = await start(user, "run pwd", workspace_id=workspace_id)
        asked = await wait_event(approver, "exec.approval_requested")
        assert asked.data["cwd"] == str(tmp_path / "site")
        await approver.call(
            "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-once"}
        )
        events = await run_events(user, run_id)
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["output"] == f"exit code: 0\nstdout:\n{tmp_path / 'site'}\n"

        # Outside a workspace the command runs where the gateway runs.
        run_id = await start(user, "run pwd")
        asked = await wait_event(approver, "exec.approval_requested")
        await approver.call(
            "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-once"}
        )
        events = await run_events(user, run_id)
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["output"] == f"exit code: 0\nstdout:\n{os.getcwd()}\n"


async def test_a_relative_cwd_is_taken_inside_the_workspace(
    llm: LLMServer, data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    llm.script += [tool_reply("exec", {"command": "pwd", "cwd": "sub"}), text_reply()]
    async with open_gateway(llm_config(llm), data_dir=data_dir) as gw, gw.connect() as client:
        current = await client.call("exec.approvals.get")
        await client.call(
            "exec.approvals.set", {"config": {"mode": "full"}, "base_hash": current["hash"]}
        )
        workspace_id = await create(client, "w", path=str(tmp_path / "ws"))
        events = await run_events(client, await start(client, "go", workspace_id=workspace_id))
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["output"] == f"exit code: 0\nstdout:\n{tmp_path / 'ws' / 'sub'}\n"


async def test_workspaces_and_the_workspace_of_a_run_survive_a_restart(
    data_dir: Path, tmp_path: Path
) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        kept = await create(client, "kept", config={"tools": ["exec", "ask_user"]})
        old = await create(client, "old", path=str(tmp_path / "old"), description="d")
        await client.call("workspace.archive", {"workspace_id": old})
        run_id = await start(client, "echo: hi", workspace_id=kept)
        await run_events(client, run_id)
        before = (await client.call("workspace.list", {"include_archived": True}))["workspaces"]
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        after = (await client.call("workspace.list", {"include_archived": True}))["workspaces"]
        assert after == before
        assert after[0]["config"] == {"tools": ["exec", "ask_user"]}
        assert after[1]["status"] == "archived" and after[1]["path"] == str(tmp_path / "old")
        status = await client.call("agent.status", {"run_id": run_id})
        assert status["workspace_id"] == kept and status["status"] == "completed"
        err = await call_error(client, "workspace.create", {"name": "kept"})
        assert err.data is not None and err.data["reason"] == "conflict"
        err = await call_error(client, "agent.run", {"message": "hi", "workspace_id": old})
        assert err.data is not None and err.data["reason"] == "invalid_state"
