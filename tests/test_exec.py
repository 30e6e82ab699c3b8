"""Exec approvals (policy file, pending requests, resolution) and the exec tool's processes."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.approvals import Policy, policy_hash
from aleph_trio.approvals._procfs import group_members
from aleph_trio.kernel import AgentConfig, EnvSecret, ProviderConfig
from aleph_trio.protocol import AlephError
from aleph_trio.store import ApprovalRecord
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import chunks, run_events, start, topics, wait_event


async def set_policy(client: Client, **config: Any) -> str:
    current = await client.call("exec.approvals.get")
    result = await client.call(
        "exec.approvals.set", {"config": config, "base_hash": current["hash"]}
    )
    assert result["applied"] is True
    new_hash: str = result["hash"]
    return new_hash


async def request(client: Client, command: str, **extra: Any) -> dict[str, Any]:
    params = {"command": command, "cwd": "/", "agent_id": "main", **extra}
    result: dict[str, Any] = await client.call("exec.approval.request", params)
    return result


# -- the policy ---------------------------------------------------------------------------------


async def test_default_policy_and_optimistic_replacement(client: Client, data_dir: Path) -> None:
    current = await client.call("exec.approvals.get")
    assert current["config"] == {
        "mode": "ask",
        "ask_timeout_ms": 120000,
        "allow": [],
        "deny": [],
        "agents": {},
    }
    assert current["hash"] == policy_hash(Policy())
    config = {"mode": "allowlist", "allow": ["git status"], "agents": {"ops": {"mode": "full"}}}
    result = await client.call(
        "exec.approvals.set", {"config": config, "base_hash": current["hash"]}
    )
    assert result["hash"] != current["hash"]
    again = await client.call("exec.approvals.get")
    assert again["hash"] == result["hash"]
    assert again["config"]["agents"] == {"ops": {"mode": "full", "allow": [], "deny": []}}
    path = data_dir / "exec-approvals.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert 'mode = "allowlist"' in path.read_text()

    with pytest.raises(AlephError) as err:  # the old hash is stale now
        await client.call("exec.approvals.set", {"config": {}, "base_hash": current["hash"]})
    assert err.value.code == -32602
    assert err.value.data == {"reason": "conflict", "current_hash": result["hash"]}
    with pytest.raises(AlephError) as err:
        await client.call(
            "exec.approvals.set",
            {"config": {"mode": "yolo", "deny": [5]}, "base_hash": result["hash"]},
        )
    assert err.value.code == -32602
    assert err.value.data is not None
    paths = {e["path"] for e in err.value.data["errors"]}
    assert paths == {"$.config.mode", "$.config.deny[0]"}
    assert (await client.call("exec.approvals.get"))["hash"] == result["hash"]


@pytest.mark.parametrize(
    ("config", "command", "agent", "decision"),
    [
        ({"mode": "full", "deny": ["rm -rf *"]}, "rm -rf /tmp/x", "main", "policy-deny"),
        ({"mode": "full"}, "anything at all", "main", "policy-allow"),
        ({"mode": "allowlist", "allow": ["git *"]}, "git status", "main", "policy-allow"),
        ({"mode": "allowlist", "allow": ["git *"]}, "make", "main", "policy-deny"),
        ({"mode": "deny", "allow": ["ls"]}, "ls", "main", "policy-deny"),
        ({"mode": "ask", "allow": ["ls *"]}, "ls -la", "main", "policy-allow"),
        (
            {"mode": "deny", "agents": {"ops": {"mode": "allowlist", "allow": ["uptime"]}}},
            "uptime",
            "ops",
            "policy-allow",
        ),
        (
            {"mode": "full", "agents": {"ops": {"deny": ["reboot*"]}}},
            "reboot now",
            "ops",
            "policy-deny",
        ),
    ],
)
async def test_policy_decisions_answer_at_once(
    data_dir: Path, config: dict[str, Any], command: str, agent: str, decision: str
) -> None:
    cfg = Config(agents={"ops": AgentConfig()})
    async with open_gateway(cfg, data_dir=data_dir) as gw, gw.connect() as client:
        await set_policy(client, **config)
        with trio.fail_after(5):
            result = await request(client, command, agent_id=agent)
        assert result["decision"] == decision
        assert result["approved"] is (decision == "policy-allow")
        assert result["id"].startswith("apr_")
        assert (await client.call("exec.approvals.pending"))["pending"] == []


async def test_a_broken_policy_file_denies_everything_until_fixed(
    client: Client, data_dir: Path
) -> None:
    await set_policy(client, mode="full")
    (data_dir / "exec-approvals.toml").write_text('mode = "full"\nallow = "not a list"\n')
    with pytest.raises(AlephError) as err:
        await client.call("exec.approvals.get")
    assert err.value.code == -32603
    assert err.value.data is not None
    assert [e["path"] for e in err.value.data["errors"]] == ["allow"]
    assert (await request(client, "echo hi"))["decision"] == "policy-deny"
    # It can be replaced by naming the broken file's hash.
    fixed = await client.call(
        "exec.approvals.set", {"config": {"mode": "full"}, "base_hash": err.value.data["hash"]}
    )
    assert (await client.call("exec.approvals.get"))["hash"] == fixed["hash"]
    assert (await request(client, "echo hi"))["decision"] == "policy-allow"


# -- pending approvals --------------------------------------------------------------------------


async def test_pending_request_is_resolved_by_another_owner(gateway: Gateway) -> None:
    async with gateway.connect() as asker, gateway.connect() as approver:
        await approver.subscribe(["exec.*"])
        results: list[dict[str, Any]] = []
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                results.append(await request(asker, "deploy --prod", cwd="/tmp"))

            nursery.start_soon(ask)
            asked = await wait_event(approver, "exec.approval_requested")
            assert asked.data["command"] == "deploy --prod"
            assert asked.data["cwd"] == "/tmp" and asked.data["agent_id"] == "main"
            assert "expires_at" in asked.data and "run_id" not in asked.data
            # The asking connection keeps serving while its request waits.
            assert (await asker.call("health"))["status"] == "ok"
            pending = (await approver.call("exec.approvals.pending"))["pending"]
            assert [p["id"] for p in pending] == [asked.data["id"]]
            await approver.call(
                "exec.approval.resolve",
                {"id": asked.data["id"], "decision": "allow-once", "resolved_by": "alice"},
            )
        assert results == [{"id": asked.data["id"], "approved": True, "decision": "allow-once"}]
        resolved = await wait_event(approver, "exec.approval_resolved")
        assert resolved.data == {
            "id": asked.data["id"],
            "decision": "allow-once",
            "approved": True,
            "resolved_by": "alice",
        }
        with pytest.raises(AlephError) as err:
            await approver.call(
                "exec.approval.resolve", {"id": asked.data["id"], "decision": "deny"}
            )
        assert err.value.code == -32602 and err.value.data == {"reason": "invalid_state"}
        with pytest.raises(AlephError) as err:
            await approver.call("exec.approval.resolve", {"id": "apr_nope", "decision": "deny"})
        assert err.value.code == -32004
        assert (await approver.call("exec.approvals.pending"))["pending"] == []


async def test_allow_always_remembers_the_exact_command(client: Client) -> None:
    before = (await client.call("exec.approvals.get"))["hash"]
    await client.subscribe(["exec.approval_requested"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(request, client, "ls [ab]*")
        asked = await wait_event(client, "exec.approval_requested")
        await client.call(
            "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-always"}
        )
    policy = await client.call("exec.approvals.get")
    assert policy["hash"] != before
    assert policy["config"]["allow"] == ["ls [[]ab][*]"]  # matches only the command itself
    assert (await request(client, "ls [ab]*"))["decision"] == "policy-allow"
    await set_policy(client, mode="allowlist", allow=policy["config"]["allow"])
    assert (await request(client, "ls a1"))["decision"] == "policy-deny"


async def test_an_unanswered_request_expires_as_a_denial(
    client: Client, patient_clock: trio.testing.MockClock
) -> None:
    await client.subscribe(["exec.approval_resolved"])
    with trio.fail_after(120):
        result = await request(client, "echo slow", timeout_ms=60_000)
    assert result["approved"] is False and result["decision"] == "timeout"
    resolved = await wait_event(client, "exec.approval_resolved", timeout=120)
    assert resolved.data["decision"] == "timeout" and resolved.data["approved"] is False
    with pytest.raises(AlephError) as err:
        await client.call("exec.approval.resolve", {"id": result["id"], "decision": "allow-once"})
    assert err.value.data == {"reason": "invalid_state"}


@pytest.mark.parametrize(
    ("params", "code", "path"),
    [
        ({"command": "  ", "cwd": "/", "agent_id": "main"}, -32602, "$.command"),
        ({"command": "ls", "cwd": "/no/such/dir", "agent_id": "main"}, -32602, "$.cwd"),
        ({"command": "ls", "cwd": "/", "agent_id": "ghost"}, -32004, None),
        ({"command": "ls", "cwd": "/", "agent_id": "main", "timeout_ms": 5}, -32602, None),
    ],
)
async def test_bad_requests_are_refused(
    client: Client, params: dict[str, Any], code: int, path: str | None
) -> None:
    with pytest.raises(AlephError) as err:
        await client.call("exec.approval.request", params)
    assert err.value.code == code
    if path is not None:
        assert err.value.data is not None
        assert [e["path"] for e in err.value.data["errors"]] == [path]
    assert (await client.call("exec.approvals.pending"))["pending"] == []


async def test_unknown_decision_is_refused(client: Client) -> None:
    with pytest.raises(AlephError) as err:
        await client.call("exec.approval.resolve", {"id": "apr_x", "decision": "maybe"})
    assert err.value.code == -32602


async def test_approvals_pending_at_a_crash_show_as_expired_after_restart(data_dir: Path) -> None:
    """A gateway that died with an approval pending left it stored as pending (written here
    directly, as the dead process would have): the next start expires it, never approves it."""
    async with open_gateway(Config(), data_dir=data_dir) as gw:
        await gw.store.save_approval(
            ApprovalRecord(
                id="apr_left",
                command="rm -rf /srv",
                cwd="/",
                agent_id="main",
                status="pending",
                requested_at="2026-11-25T06:00:00.000Z",
                expires_at="2026-11-25T06:02:00.000Z",
            )
        )
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        assert (await client.call("exec.approvals.pending"))["pending"] == []
        with pytest.raises(AlephError) as err:
            await client.call("exec.approval.resolve", {"id": "apr_left", "decision": "allow-once"})
        assert err.value.code == -32602 and "expired" in err.value.message
        record = await gw.store.get_approval("apr_left")
        assert record is not None and record.decision == "timeout"


# -- the exec tool --------------------------------------------------------------------------------


async def test_agent_command_waits_for_approval_then_runs(gateway: Gateway) -> None:
    async with gateway.connect() as user, gateway.connect() as admin:
        await admin.subscribe(["exec.*"])
        run_id = await start(user, "run echo one; echo two >&2; exit 3")
        asked = await wait_event(admin, "exec.approval_requested")
        assert asked.data["run_id"] == run_id
        assert asked.data["command"] == "echo one; echo two >&2; exit 3"
        assert (await user.call("agent.status", {"run_id": run_id}))["status"] == (
            "waiting_approval"
        )
        await admin.call(
            "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-once"}
        )
        events = await run_events(user, run_id)
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["is_error"] is False
        assert end["output"] == "exit code: 3\nstdout:\none\n\nstderr:\ntwo\n"
        assert topics(events)[-1] == "agent.completed"


async def test_a_denied_command_never_runs(gateway: Gateway, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    async with gateway.connect() as user, gateway.connect() as admin:
        await admin.subscribe(["exec.approval_requested"])
        run_id = await start(user, f"run touch {marker}")
        asked = await wait_event(admin, "exec.approval_requested")
        await admin.call("exec.approval.resolve", {"id": asked.data["id"], "decision": "deny"})
        events = await run_events(user, run_id)
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["is_error"] is True and "denied" in end["output"]
        assert topics(events)[-1] == "agent.completed"  # the model heard about it and went on
    assert not marker.exists()


async def test_cancel_kills_the_whole_process_group(client: Client, tmp_path: Path) -> None:
    await set_policy(client, mode="full")
    fifo = tmp_path / "pids"
    os.mkfifo(fifo)
    run_id = await start(client, f"run echo $$ $! > {fifo} & sleep 1000 & echo $! > {fifo}; wait")
    with trio.fail_after(10):
        first = (await trio.Path(fifo).read_text()).split()
    # The shell wrote its own pid (the process group) and a background grandchild's.
    group = int(first[0])
    assert await client.call("agent.cancel", {"run_id": run_id}) == {
        "cancelled": True,
        "run_id": run_id,
    }
    assert alive_in_group(group) == []
    events = await run_events(client, run_id)
    end = next(e.data for e in events if e.topic == "stream.tool_end")
    assert end["is_error"] is True and "cancelled" in end["output"]
    assert topics(events)[-2:] == ["stream.end", "agent.cancelled"]


def alive_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies waiting to be reaped count as gone)."""
    return [pid for pid, state in group_members(pgid) if state != b"Z"]


async def test_background_children_do_not_outlive_the_command(
    client: Client, tmp_path: Path
) -> None:
    await set_policy(client, mode="full")
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)
    run_id = await start(client, f"run sleep 1000 & echo $$ > {fifo}; echo started")
    with trio.fail_after(10):
        group = int(await trio.Path(fifo).read_text())
    events = await run_events(client, run_id)
    end = next(e.data for e in events if e.topic == "stream.tool_end")
    assert end["output"] == "exit code: 0\nstdout:\nstarted\n"
    assert alive_in_group(group) == []


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_huge_output_is_capped_without_memory_growth(client: Client) -> None:
    await set_policy(client, mode="full")
    before = rss_kib()
    run_id = await start(client, "run head -c 100000000 /dev/zero | tr '\\0' x")
    events = await run_events(client, run_id, timeout=60)
    end = next(e.data for e in events if e.topic == "stream.tool_end")
    assert "[output truncated: 99934464 more bytes]" in end["output"]
    assert end["output"].split("stdout:\n", 1)[1].count("x") == 65536
    assert rss_kib() - before < 30_000  # 100 MB went through; far less than that stayed


async def test_environment_hides_the_gateways_secrets(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-hidden")
    monkeypatch.setenv("ALEPH_TRIO_TOKEN", "tok-hidden")
    monkeypatch.setenv("HARMLESS_VALUE", "visible")
    config = Config(
        providers={
            "p": ProviderConfig(kind="openai", api_key=EnvSecret("MY_PROVIDER_KEY"), models=())
        }
    )
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        await set_policy(client, mode="full")
        events = await run_events(client, await start(client, "run env"))
        output = next(e.data for e in events if e.topic == "stream.tool_end")["output"]
        assert "HARMLESS_VALUE=visible" in output
        assert "sk-hidden" not in output and "tok-hidden" not in output


@contextlib.asynccontextmanager
async def scripted_exec(data_dir: Path, arguments: str) -> AsyncIterator[tuple[Client, LLMServer]]:
    """A gateway whose model asks for one exec call with ``arguments``, then says ok."""
    async with serve_llm() as llm:
        call = {"index": 0, "id": "x1", "type": "function"}
        call["function"] = {"name": "exec", "arguments": arguments}
        delta = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
        done = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
        llm.script += [Reply(parts=sse(delta)), Reply(parts=sse(done))]
        config = Config(
            providers={"up": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",))}
        )
        async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
            await set_policy(client, mode="full")
            yield client, llm


async def test_exec_tool_checks_cwd_and_enforces_its_timeout(
    data_dir: Path, tmp_path: Path
) -> None:
    async with scripted_exec(data_dir, '{"command": "pwd", "cwd": "/no/such/place"}') as (c, _):
        events = await run_events(c, await start(c, "go"))
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["is_error"] is True and "not an existing directory" in end["output"]
    async with scripted_exec(data_dir, f'{{"command": "pwd", "cwd": "{tmp_path}"}}') as (c, _):
        events = await run_events(c, await start(c, "go"))
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["output"] == f"exit code: 0\nstdout:\n{tmp_path}\n"
    args = '{"command": "echo begun; sleep 30", "timeout_ms": 300}'
    async with scripted_exec(data_dir, args) as (c, _):
        events = await run_events(c, await start(c, "go"))
        end = next(e.data for e in events if e.topic == "stream.tool_end")
        assert end["is_error"] is True
        assert end["output"].startswith("timed out") and "begun" in end["output"]
        assert end["duration_ms"] < 5000
        assert chunks(events) == "ok"


async def test_cancelling_a_run_cancels_its_pending_approval(gateway: Gateway) -> None:
    async with gateway.connect() as user, gateway.connect() as admin:
        await admin.subscribe(["exec.*"])
        run_id = await start(user, "run make deploy")
        asked = await wait_event(admin, "exec.approval_requested")
        await user.call("agent.cancel", {"run_id": run_id})
        resolved = await wait_event(admin, "exec.approval_resolved")
        assert resolved.data["id"] == asked.data["id"]
        assert resolved.data["decision"] == "cancelled" and resolved.data["approved"] is False
        assert (await admin.call("exec.approvals.pending"))["pending"] == []
        with pytest.raises(AlephError) as err:
            await admin.call(
                "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-once"}
            )
        assert err.value.data == {"reason": "invalid_state"}


async def test_deny_wins_over_allow_whatever_the_order(client: Client) -> None:
    """A command matching both an allow and a deny pattern (global or per agent) is denied by
    the policy, and in full mode too."""
    await set_policy(
        client,
        mode="allowlist",
        allow=["git *", "rm *"],
        deny=["git push *"],
        agents={"main": {"deny": ["rm -rf *"]}},
    )
    assert (await request(client, "git status"))["decision"] == "policy-allow"
    assert (await request(client, "git push origin main"))["decision"] == "policy-deny"
    assert (await request(client, "rm -rf /tmp/x"))["decision"] == "policy-deny"
    await set_policy(client, mode="full", allow=["*"], deny=["shutdown *"])
    assert (await request(client, "shutdown now"))["decision"] == "policy-deny"
