"""POE runs and contracts (PROTOCOL §16) against a scripted model on loopback: attempts are real
agent runs, criteria are checked against real files, real commands through exec approvals and
the model's own verdicts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.client import ClientEvent
from aleph_trio.kernel import AgentConfig, ProviderConfig
from aleph_trio.poe import read_criteria, read_verdict
from aleph_trio.protocol import AlephError
from aleph_trio.store import PoeRun
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import wait_event

POE_END = frozenset({"poe.completed", "poe.failed", "poe.cancelled"})
USAGE = {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 2}}


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


def config_for(llm: LLMServer) -> Config:
    return Config(
        providers={
            "local": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",)),  # type: ignore[arg-type]
        },
        agents={"main": AgentConfig(model="local/m")},
    )


@contextlib.asynccontextmanager
async def poe_gateway(llm: LLMServer, data_dir: Path) -> AsyncIterator[tuple[Gateway, Client]]:
    async with open_gateway(config_for(llm), data_dir=data_dir) as gw, gw.connect() as client:
        await client.subscribe(["poe.*"])
        yield gw, client


def text(content: str, finish: str | None = "stop") -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


def says(content: str, *extra: object) -> Reply:
    """A model answer of ``content`` (one SSE stream)."""
    return Reply(parts=sse(text(content), *extra))


def exec_call(command: str) -> Reply:
    call = {
        "index": 0,
        "id": "c0",
        "type": "function",
        "function": {"name": "exec", "arguments": json.dumps({"command": command})},
    }
    return Reply(
        parts=sse(
            {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        )
    )


def spec(*criteria: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "objective": "Report that the job is done",
        "instruction": "Do the job and say DONE.",
        "criteria": list(criteria),
        **extra,
    }


async def poe_events(client: Client, run_id: str, *, timeout: float = 20) -> list[ClientEvent]:
    """The ``poe.*`` events of ``run_id`` up to and including its outcome."""
    got: list[ClientEvent] = []
    with trio.fail_after(timeout):
        while True:
            event = await client.next_event()
            if event.topic.startswith("poe.") and event.data.get("run_id") == run_id:
                got.append(event)
                if event.topic in POE_END:
                    return got


async def call_error(client: Client, method: str, params: dict[str, Any] | None) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


def last_user_message(body: dict[str, Any]) -> str:
    content: str = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    return content


# -- the loop ------------------------------------------------------------------------------------


async def test_a_missed_criterion_is_retried_with_feedback_until_it_holds(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script += [says("I could not finish."), says("All DONE now.")]
    async with poe_gateway(llm, data_dir) as (_, client):
        run_id = (
            await client.call(
                "poe.run", {"spec": spec({"type": "output_contains", "pattern": r"\bDONE\b"})}
            )
        )["run_id"]
        events = await poe_events(client, run_id)
        assert [e.topic for e in events] == [
            "poe.started",
            "poe.attempt",
            "poe.evaluated",
            "poe.attempt",
            "poe.evaluated",
            "poe.completed",
        ]
        assert [e.data["passed"] for e in events if e.topic == "poe.evaluated"] == [False, True]
        status = await client.call("poe.status", {"run_id": run_id})
        assert status["status"] == "succeeded"
        assert status["progress"] == {
            "attempt": 2,
            "max_attempts": 3,
            "phase": "evaluation",
            "last_score": 1.0,
        }
        assert status["criteria"] == [
            {
                "index": 0,
                "type": "output_contains",
                "passed": True,
                "score": 1.0,
                "detail": "the final answer matches '\\\\bDONE\\\\b'",
            }
        ]
        first, second = status["agent_run_ids"]
        for agent_run in (first, second):  # each attempt is a normal agent run
            shown = await client.call("agent.status", {"run_id": agent_run})
            assert shown["status"] == "completed"
            assert shown["session_key"] == f"agent:main:poe:{run_id}"
        assert status["attempts"][0]["criteria"][0]["passed"] is False
    # What the provider got: the task first, then the failure as feedback.
    assert len(llm.requests) == 2
    assert "Do the job and say DONE." in last_user_message(llm.requests[0].body)
    retry = last_user_message(llm.requests[1].body)
    assert retry.startswith("Attempt 2 of 3. Your previous attempt did not meet every criterion.")
    assert "has no match for '\\\\bDONE\\\\b'" in retry
    # The second attempt continues the same session: it sees its first answer.
    contents = [m["content"] for m in llm.requests[1].body["messages"]]
    assert "I could not finish." in contents


async def test_max_attempts_exhausted_fails(llm: LLMServer, data_dir: Path) -> None:
    llm.script += [says("no"), says("still no")]
    async with poe_gateway(llm, data_dir) as (_, client):
        params = {"spec": spec({"type": "output_contains", "pattern": "DONE"}, max_attempts=2)}
        run_id = (await client.call("poe.run", params))["run_id"]
        events = await poe_events(client, run_id)
        assert events[-1].topic == "poe.failed"
        assert events[-1].data["attempts"] == 2
        status = await client.call("poe.status", {"run_id": run_id})
        assert status["status"] == "failed"
        assert status["error"] == "the criteria still failed after 2 attempt(s)"
        assert status["progress"]["attempt"] == 2
        assert status["progress"]["last_score"] == 0.0
    assert len(llm.requests) == 2  # no third attempt


async def test_the_token_budget_stops_the_retries(llm: LLMServer, data_dir: Path) -> None:
    llm.script += [says("no", USAGE), says("DONE", USAGE)]
    async with poe_gateway(llm, data_dir) as (_, client):
        params = {"spec": spec({"type": "output_contains", "pattern": "DONE"}, max_tokens=40)}
        run_id = (await client.call("poe.run", params))["run_id"]
        events = await poe_events(client, run_id)
        assert events[-1].topic == "poe.failed"
        status = await client.call("poe.status", {"run_id": run_id})
        assert status["tokens_used"] == 42
        assert "token budget exhausted" in status["error"]
        assert status["progress"]["attempt"] == 1
    assert len(llm.requests) == 1


async def test_file_criteria_hold_once_the_agent_wrote_the_file(
    llm: LLMServer, data_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "report.txt"
    target.parent.mkdir()
    llm.script += [
        says("I will do it later."),
        exec_call(f"printf 'status: green\\n' > {target}"),
        says("Written."),
    ]
    criteria = [
        {"type": "file_exists", "path": str(target)},
        {"type": "file_contains", "path": str(target), "pattern": r"^status: (green|amber)$"},
    ]
    async with poe_gateway(llm, data_dir) as (_, client):
        current = await client.call("exec.approvals.get")
        await client.call(
            "exec.approvals.set", {"config": {"mode": "full"}, "base_hash": current["hash"]}
        )
        run_id = (await client.call("poe.run", {"spec": spec(*criteria)}))["run_id"]
        events = await poe_events(client, run_id)
        evaluations = [e.data for e in events if e.topic == "poe.evaluated"]
        assert [c["detail"] for c in evaluations[0]["criteria"]] == [
            f"{target} does not exist",
            f"{target} does not exist",
        ]
        assert all(c["passed"] for c in evaluations[1]["criteria"])
        assert events[-1].topic == "poe.completed"
    assert target.read_text() == "status: green\n"


async def test_a_file_without_the_pattern_fails_its_criterion(
    llm: LLMServer, data_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "notes.md"
    target.write_text("# Notes\nnothing yet\n")
    llm.script += [says("ok")]
    criteria = [{"type": "file_contains", "path": str(target), "pattern": "^## Usage"}]
    async with poe_gateway(llm, data_dir) as (_, client):
        run_id = (await client.call("poe.run", {"spec": spec(*criteria, max_attempts=1)}))["run_id"]
        events = await poe_events(client, run_id)
        (evaluated,) = [e.data for e in events if e.topic == "poe.evaluated"]
        assert evaluated["criteria"][0]["detail"] == f"{target} has no match for '^## Usage'"
        assert events[-1].topic == "poe.failed"


async def test_command_criteria_go_through_exec_approvals(
    llm: LLMServer, data_dir: Path, tmp_path: Path
) -> None:
    """Under the default ``ask`` policy, an owner on another connection approves the check
    command of one run and denies that of another."""
    marker = tmp_path / "marker"
    llm.script += [says("first"), says("second")]
    async with poe_gateway(llm, data_dir) as (gw, client), gw.connect() as admin:
        await admin.subscribe(["exec.approval_requested"])
        check = {"type": "command_succeeds", "command": f"touch {marker} && test -f {marker}"}
        run_id = (await client.call("poe.run", {"spec": spec(check, max_attempts=1)}))["run_id"]
        asked = await wait_event(admin, "exec.approval_requested")
        assert asked.data["command"] == check["command"]
        waiting = await client.call("poe.status", {"run_id": run_id})
        assert waiting["status"] == "running"
        assert waiting["progress"]["phase"] == "evaluation"
        await admin.call(
            "exec.approval.resolve", {"id": asked.data["id"], "decision": "allow-once"}
        )
        events = await poe_events(client, run_id)
        assert events[-1].topic == "poe.completed"
        assert marker.exists()
        marker.unlink()

        denied = (await client.call("poe.run", {"spec": spec(check, max_attempts=1)}))["run_id"]
        asked = await wait_event(admin, "exec.approval_requested")
        await admin.call("exec.approval.resolve", {"id": asked.data["id"], "decision": "deny"})
        events = await poe_events(client, denied)
        assert events[-1].topic == "poe.failed"
        (evaluated,) = [e.data for e in events if e.topic == "poe.evaluated"]
        assert evaluated["criteria"][0]["passed"] is False
        assert evaluated["criteria"][0]["detail"].endswith("was not run: exec approval deny")
    assert not marker.exists()


async def test_a_failing_command_fails_its_criterion_with_its_output(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script += [says("ok")]
    async with poe_gateway(llm, data_dir) as (_, client):
        current = await client.call("exec.approvals.get")
        await client.call(
            "exec.approvals.set", {"config": {"mode": "full"}, "base_hash": current["hash"]}
        )
        check = {"type": "command_succeeds", "command": "echo 3 tests failed; exit 1"}
        run_id = (await client.call("poe.run", {"spec": spec(check, max_attempts=1)}))["run_id"]
        events = await poe_events(client, run_id)
        (evaluated,) = [e.data for e in events if e.topic == "poe.evaluated"]
        detail = evaluated["criteria"][0]["detail"]
        assert "exit code: 1" in detail and "3 tests failed" in detail


async def test_the_judge_grades_each_attempt(llm: LLMServer, data_dir: Path) -> None:
    verdict = {"verdict": "fail", "score": 0.2, "reason": "it names no capital"}
    llm.script += [
        says("Some city."),
        says("Sure! ```json\n" + json.dumps(verdict) + "\n```"),
        says("Paris is the capital of France."),
        says("VERDICT: PASS\nSCORE: 9/10\nIt names Paris."),
    ]
    judge = {"type": "judge", "prompt": "Does the answer name the capital of France?"}
    async with poe_gateway(llm, data_dir) as (_, client):
        run_id = (await client.call("poe.run", {"spec": spec(judge)}))["run_id"]
        events = await poe_events(client, run_id)
        evaluations = [e.data for e in events if e.topic == "poe.evaluated"]
        assert [(e["passed"], e["score"]) for e in evaluations] == [(False, 0.2), (True, 0.9)]
        assert evaluations[0]["criteria"][0]["detail"] == "judge: fail (0.20): it names no capital"
        assert events[-1].topic == "poe.completed"
        status = await client.call("poe.status", {"run_id": run_id})
        assert status["progress"]["last_score"] == 0.9
    asked = last_user_message(llm.requests[1].body)
    assert "Does the answer name the capital of France?" in asked
    assert "Some city." in asked and "Report that the job is done" in asked
    assert "it names no capital" in last_user_message(llm.requests[2].body)


async def test_an_unreadable_verdict_fails_the_criterion(llm: LLMServer, data_dir: Path) -> None:
    llm.script += [says("Done."), says("Hmm, hard to say.")]
    judge = {"type": "judge", "prompt": "Is it done?"}
    async with poe_gateway(llm, data_dir) as (_, client):
        run_id = (await client.call("poe.run", {"spec": spec(judge, max_attempts=1)}))["run_id"]
        events = await poe_events(client, run_id)
        (evaluated,) = [e.data for e in events if e.topic == "poe.evaluated"]
        assert "neither pass nor fail" in evaluated["criteria"][0]["detail"]
        assert events[-1].topic == "poe.failed"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"verdict": "pass", "score": 0.75, "reason": "ok"}', (True, 0.75, "ok")),
        ('Here:\n```json\n{"verdict": "FAIL", "score": 30}\n```', (False, 0.3, "")),
        ('I think {"verdict": true, "score": "80%"} fits.', (True, 0.8, "")),
        ("VERDICT: PASS\nSCORE: 8/10\nGood.", (True, 0.8, "Good.")),
        ("Verdict - failed. Score: 45%", (False, 0.45, "Verdict - failed. Score: 45%")),
        ("It passes.", (True, 1.0, "It passes.")),
        ("It does not pass.", (False, 0.0, "It does not pass.")),
        ("It didn't fail.", (True, 1.0, "It didn't fail.")),
        ("Hard to say.", None),
    ],
)
def test_verdicts_are_read_from_json_or_words(
    answer: str, expected: tuple[bool, float, str] | None
) -> None:
    verdict = read_verdict(answer)
    got = None if verdict is None else (verdict.passed, verdict.score, verdict.reason)
    assert got == expected


def test_drafted_criteria_are_found_in_prose_or_an_object() -> None:
    rules = [{"type": "file_exists", "path": "a"}]
    assert read_criteria("Sure:\n" + json.dumps(rules) + "\nDone.") == rules
    assert read_criteria(json.dumps({"criteria": rules})) == rules
    assert read_criteria('[{"type": "unknown"}]') is None
    assert read_criteria("no rules here") is None


# -- cancelling ----------------------------------------------------------------------------------


async def test_cancel_mid_run_cancels_the_agent_run_too(llm: LLMServer, data_dir: Path) -> None:
    never = trio.Event()
    llm.script.append(Reply(parts=[sse(text("thinking", None), done=False)[0], never]))
    async with poe_gateway(llm, data_dir) as (_, client):
        run_id = (
            await client.call(
                "poe.run", {"spec": spec({"type": "output_contains", "pattern": "x"})}
            )
        )["run_id"]
        attempt = await wait_event(client, "poe.attempt", run_id=run_id)
        agent_run = attempt.data["agent_run_id"]
        assert (await client.call("agent.status", {"run_id": agent_run}))["status"] == "running"
        assert await client.call("poe.cancel", {"run_id": run_id}) == {
            "cancelled": True,
            "run_id": run_id,
        }
        # Answered only once both have ended.
        assert (await client.call("agent.status", {"run_id": agent_run}))["status"] == "cancelled"
        status = await client.call("poe.status", {"run_id": run_id})
        assert status["status"] == "cancelled"
        assert status["progress"]["phase"] == "operation"
        assert status["attempts"][0]["agent_status"] == "cancelled"
        ended = await wait_event(client, "poe.cancelled", run_id=run_id)
        assert ended.data["reason"] == "cancelled"
        assert await client.call("poe.cancel", {"run_id": run_id}) == {
            "cancelled": False,
            "run_id": run_id,
        }
        err = await call_error(client, "poe.cancel", {"run_id": "poe_nope"})
        assert err.code == -32004


async def test_drain_cancels_poe_runs_left_at_the_end(llm: LLMServer, data_dir: Path) -> None:
    never = trio.Event()
    llm.script.append(Reply(parts=[sse(text("working", None), done=False)[0], never]))
    async with poe_gateway(llm, data_dir) as (gw, client):
        run_id = (
            await client.call(
                "poe.run", {"spec": spec({"type": "output_contains", "pattern": "x"})}
            )
        )["run_id"]
        attempt = await wait_event(client, "poe.attempt", run_id=run_id)
        hurry = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: gw.drain(60, hurry=hurry))
            await trio.testing.wait_all_tasks_blocked()
            assert gw.poe.live_count() == 1  # the drain waits for it
            err = await call_error(
                client, "poe.run", {"spec": spec({"type": "judge", "prompt": "?"})}
            )
            assert err.code == -32602 and "gateway shutting down" in err.message
            hurry.set()
        status = await client.call("poe.status", {"run_id": run_id})
        assert status["status"] == "cancelled"
        assert status["error"] == "gateway shutting down"
        agent = await client.call("agent.status", {"run_id": attempt.data["agent_run_id"]})
        assert agent["status"] == "cancelled"


async def test_drain_waits_for_poe_runs_and_starts_no_further_attempt(
    llm: LLMServer, data_dir: Path
) -> None:
    """Two POE runs are mid-attempt when the stop begins: the one whose criteria then hold
    succeeds; the other may not start its second attempt and ends cancelled. The drain returns
    on its own, without being hurried."""
    gate = trio.Event()
    for _ in range(2):
        first, rest = sse(text("DO", None), text("NE"))[0], sse(text("NE"))
        llm.script.append(Reply(parts=[first, gate, *rest]))
    async with poe_gateway(llm, data_dir) as (gw, client):
        ok = (
            await client.call(
                "poe.run", {"spec": spec({"type": "output_contains", "pattern": "DONE"})}
            )
        )["run_id"]
        never = (
            await client.call(
                "poe.run", {"spec": spec({"type": "output_contains", "pattern": "NEVER"})}
            )
        )["run_id"]
        await llm.wait_requests(2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gw.drain, 60)
            await trio.testing.wait_all_tasks_blocked()
            assert gw.poe.live_count() == 2
            gate.set()
        assert (await client.call("poe.status", {"run_id": ok}))["status"] == "succeeded"
        stopped = await client.call("poe.status", {"run_id": never})
        assert stopped["status"] == "cancelled"
        assert stopped["error"] == "gateway shutting down"
        assert stopped["progress"]["attempt"] == 1
    assert len(llm.requests) == 2


# -- contracts -----------------------------------------------------------------------------------


async def test_prepare_drafts_criteria_with_the_model_then_sign_starts_the_run(
    llm: LLMServer, data_dir: Path
) -> None:
    drafted = [{"type": "output_contains", "pattern": "DONE"}]
    llm.script += [says("Here you are:\n" + json.dumps(drafted)), says("DONE")]
    bare = {"objective": "Say done", "instruction": "Say DONE.", "max_attempts": 2}
    async with poe_gateway(llm, data_dir) as (_, client):
        prepared = await client.call("poe.prepare", {"spec": bare})
        terms = prepared["terms"]
        assert terms == {
            "objective": "Say done",
            "instruction": "Say DONE.",
            "criteria": drafted,
            "max_attempts": 2,
            "max_tokens": None,
            "agent_id": "main",
            "criteria_source": "model",
        }
        assert "success criteria" in last_user_message(llm.requests[0].body)
        contract_id = prepared["contract_id"]
        pending = (await client.call("poe.pending"))["contracts"]
        assert [(c["contract_id"], c["status"], c["terms"]) for c in pending] == [
            (contract_id, "pending", terms)
        ]
        signed = await client.call("poe.sign", {"contract_id": contract_id})
        assert signed["signed"] is True
        events = await poe_events(client, signed["run_id"])
        assert events[-1].topic == "poe.completed"
        status = await client.call("poe.status", {"run_id": signed["run_id"]})
        assert status["contract_id"] == contract_id
        assert status["spec"]["criteria"] == drafted
        assert (await client.call("poe.pending"))["contracts"] == []
        for method in ("poe.sign", "poe.reject"):
            err = await call_error(client, method, {"contract_id": contract_id})
            assert err.code == -32602 and err.data is not None
            assert err.data["reason"] == "invalid_state"
            assert "already signed" in err.message


async def test_an_unusable_draft_falls_back_to_a_judge_and_says_so(
    llm: LLMServer, data_dir: Path
) -> None:
    llm.script += [
        says("I would check that it works."),
        says('[{"type": "file_exists"}]'),  # a rule without its path
    ]
    bare = {"objective": "Ship it", "instruction": "Ship the release."}
    async with poe_gateway(llm, data_dir) as (_, client):
        for why in ("answered no JSON list of rules", "drafted an invalid rule"):
            terms = (await client.call("poe.prepare", {"spec": bare}))["terms"]
            assert terms["criteria"] == [
                {"type": "judge", "prompt": "Does the result achieve this objective: Ship it"}
            ]
            assert terms["criteria_source"] == "fallback"
            assert why in terms["criteria_note"]


async def test_given_criteria_are_kept_and_reject_ends_the_contract(
    llm: LLMServer, data_dir: Path
) -> None:
    async with poe_gateway(llm, data_dir) as (_, client):
        prepared = await client.call(
            "poe.prepare", {"spec": spec({"type": "file_exists", "path": "/tmp/x"})}
        )
        assert prepared["terms"]["criteria_source"] == "spec"
        assert await client.call("poe.reject", {"contract_id": prepared["contract_id"]}) == {
            "rejected": True
        }
        assert (await client.call("poe.pending"))["contracts"] == []
        err = await call_error(client, "poe.sign", {"contract_id": prepared["contract_id"]})
        assert err.data is not None and err.data["reason"] == "invalid_state"
        assert "already rejected" in err.message
        for method in ("poe.sign", "poe.reject"):
            err = await call_error(client, method, {"contract_id": "contract_nope"})
            assert err.code == -32004
    assert llm.requests == []  # nothing to draft


# -- validation and roles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "path", "words"),
    [
        ({"instruction": "x", "criteria": []}, "$.spec.objective", "missing required field"),
        (spec(), "$.spec.criteria", "needs at least one rule"),
        (spec({"type": "file_exists"}), "$.spec.criteria[0].path", "missing required field"),
        (spec({"type": "nope"}), "$.spec.criteria[0].type", "unknown rule type 'nope'"),
        (
            spec({"type": "output_contains", "pattern": "(a"}),
            "$.spec.criteria[0].pattern",
            "not a valid regular expression",
        ),
        (spec({"type": "judge", "prompt": "  "}), "$.spec.criteria[0].prompt", "must not be blank"),
        (
            spec({"type": "command_succeeds", "command": "true", "timeout_ms": 5}),
            "$.spec.criteria[0].timeout_ms",
            ">= 100",
        ),
        (spec({"type": "judge", "prompt": "?"}, max_attempts=0), "$.spec.max_attempts", ">= 1"),
        (spec({"type": "judge", "prompt": "?"}, colour="red"), "$.spec.colour", "unknown field"),
        (
            {"objective": " ", "instruction": "x", "criteria": [{"type": "file_exists"}]},
            "$.spec.objective",
            "must not be blank (and 1 more)",
        ),
        (spec("file_exists"), "$.spec.criteria[0]", "expected a rule object"),
    ],
)
async def test_bad_specs_are_refused_naming_the_field(
    client: Client, bad: dict[str, Any], path: str, words: str
) -> None:
    for method in ("poe.run", "poe.prepare"):
        if method == "poe.prepare" and path == "$.spec.criteria":
            continue  # prepare drafts the missing criteria
        err = await call_error(client, method, {"spec": bad})
        assert err.code == -32602
        assert err.message.startswith(f"Invalid params: {path}: ")
        assert words in err.message
        assert err.data is not None and err.data["errors"][0]["path"] == path
    assert (await client.call("poe.list"))["runs"] == []
    assert (await client.call("poe.pending"))["contracts"] == []


async def test_unknown_agents_and_runs_are_not_found(client: Client) -> None:
    good = spec({"type": "judge", "prompt": "?"})
    err = await call_error(client, "poe.run", {"spec": good, "agent_id": "ghost"})
    assert err.code == -32004
    err = await call_error(client, "poe.status", {"run_id": "poe_nope"})
    assert err.code == -32004
    err = await call_error(client, "poe.run", {"spec": "do it"})
    assert err.code == -32602


async def test_only_the_owner_signs_or_rejects(gateway: Gateway) -> None:
    guest = Principal("guest", "guest-1", ("poe.*",), invitation_id="inv_1")
    gateway.auth.guest_resolvers.append(lambda token: guest if token == "guest-token" else None)
    async with gateway.connect() as owner, gateway.connect(token="guest-token") as visitor:
        judge = {"type": "judge", "prompt": "?"}
        prepared = await owner.call("poe.prepare", {"spec": spec(judge)})
        for method in ("poe.sign", "poe.reject"):
            err = await call_error(visitor, method, {"contract_id": prepared["contract_id"]})
            assert err.code == -32002
        assert (await visitor.call("poe.pending"))["contracts"] == []  # not the guest's own
        assert len((await owner.call("poe.pending"))["contracts"]) == 1
        owners = (await owner.call("poe.run", {"spec": spec(judge, max_attempts=1)}))["run_id"]
        for method in ("poe.status", "poe.cancel"):
            err = await call_error(visitor, method, {"run_id": owners})
            assert err.code == -32004
        assert (await visitor.call("poe.list"))["runs"] == []
        mine = (await visitor.call("poe.run", {"spec": spec(judge, max_attempts=1)}))["run_id"]
        assert [r["run_id"] for r in (await visitor.call("poe.list"))["runs"]] == [mine]
        assert (await visitor.call("poe.status", {"run_id": mine}))["run_id"] == mine
        assert {r["run_id"] for r in (await owner.call("poe.list"))["runs"]} == {owners, mine}


# -- persistence ---------------------------------------------------------------------------------


async def test_contracts_and_runs_survive_a_restart_and_running_ones_fail(
    llm: LLMServer, data_dir: Path
) -> None:
    """The POE run left ``running`` is written straight to the store, as a process killed in
    the middle of one leaves it (a crash cannot be staged in-process)."""
    llm.script += [says("DONE")]
    async with poe_gateway(llm, data_dir) as (gw, client):
        prepared = await client.call(
            "poe.prepare", {"spec": spec({"type": "judge", "prompt": "?"})}
        )
        done = (
            await client.call(
                "poe.run", {"spec": spec({"type": "output_contains", "pattern": "DONE"})}
            )
        )["run_id"]
        await poe_events(client, done)
        before = await client.call("poe.status", {"run_id": done})
        await gw.store.save_poe_run(
            PoeRun(
                run_id="poe_crashed",
                status="running",
                spec=spec({"type": "judge", "prompt": "?"}, max_attempts=3),
                agent_id="main",
                session_key="agent:main:poe:poe_crashed",
                created_at="2026-12-01T00:00:00.000Z",
                attempt=2,
            )
        )
    async with poe_gateway(llm, data_dir) as (_, client):
        assert await client.call("poe.status", {"run_id": done}) == before
        crashed = await client.call("poe.status", {"run_id": "poe_crashed"})
        assert crashed["status"] == "failed"
        assert crashed["error"] == "interrupted by gateway restart"
        assert crashed["progress"]["attempt"] == 2
        pending = (await client.call("poe.pending"))["contracts"]
        assert [c["contract_id"] for c in pending] == [prepared["contract_id"]]
        listed = (await client.call("poe.list"))["runs"]
        assert [r["run_id"] for r in listed] == ["poe_crashed", done]
        signed = await client.call("poe.sign", {"contract_id": prepared["contract_id"]})
        assert signed["signed"] is True
