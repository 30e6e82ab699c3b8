"""``aleph-trio call|chat|tail``: real processes, in a pseudo-terminal where a person would sit,
against a real gateway on a real socket.

Real clock: everything here waits for a subprocess, and waits for the output it expects.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.__main__ import main as aleph_main
from aleph_trio._gateway import default_data_dir
from aleph_trio.cli._args import parse
from aleph_trio.cli._chat import session_key_for
from aleph_trio.cli._connect import CliError
from aleph_trio.cli._token import (
    DEFAULT_PORT,
    DEFAULT_URL,
    default_data_dir as client_default_data_dir,
    find_token,
)
from aleph_trio.kernel import ServerConfig
from runhelp import wait_event
from terminal import CLIENT, Pipe, clean_env, open_terminal

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 60  # generous: each step waits for a Python process on a shared machine
NO_TRACEBACK = ("Traceback", "KeyboardInterrupt")


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway writes its token file only when the environment has none."""
    monkeypatch.delenv("ALEPH_TRIO_TOKEN", raising=False)


def quiet(text: str) -> bool:
    return not any(word in text for word in NO_TRACEBACK)


# -- defaults and token lookup ------------------------------------------------------------------


def test_the_client_defaults_are_the_servers() -> None:
    """Computed in the client (which may not import server code), equal to the server's."""
    assert client_default_data_dir() == default_data_dir()
    assert DEFAULT_PORT == ServerConfig().port
    assert DEFAULT_URL == f"ws://127.0.0.1:{ServerConfig().port}/"


def test_token_lookup_order(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-the-file\n")
    env = {"ALEPH_TRIO_TOKEN": "from-the-env"}
    assert find_token("explicit", tmp_path, env).value == "explicit"
    assert find_token(None, tmp_path, env).value == "from-the-env"
    found = find_token(None, tmp_path, {})
    assert (found.value, found.source) == ("from-the-file", str(tmp_path / "token"))
    missing = find_token(None, tmp_path / "elsewhere", {})
    assert missing.value is None
    assert str(tmp_path / "elsewhere" / "token") in missing.source


def test_a_token_may_begin_with_a_dash() -> None:
    assert parse(["call", "health", "--token", "-Ab_c"]).token == "-Ab_c"
    assert parse(["tail", "--token=-Ab_c", "x.*"]).token == "-Ab_c"


def test_chat_session_keys() -> None:
    assert re.fullmatch(r"agent:main:cli-[0-9a-f]{6}", session_key_for(None, None))
    assert re.fullmatch(r"agent:notes:cli-[0-9a-f]{6}", session_key_for(None, "notes"))
    assert session_key_for(None, None) != session_key_for(None, None)
    assert session_key_for("agent:notes:x", "notes") == "agent:notes:x"
    with pytest.raises(CliError, match="not a session of --agent main"):
        session_key_for("agent:notes:x", "main")


# -- call ---------------------------------------------------------------------------------------


async def test_call_health_prints_json(url: str, data_dir: Path) -> None:
    """On a terminal: indented JSON; the token comes from the data dir's token file."""
    args = [*CLIENT, "call", "health", "--url", url, "--data-dir", str(data_dir)]
    with trio.fail_after(DEADLINE):
        async with open_terminal(args) as term:
            assert await term.wait() == 0
    result = json.loads(term.output)
    assert result["status"] == "ok"
    assert '\n  "status": "ok"' in term.output


async def test_call_prints_one_json_line_when_piped(url: str, gateway: Gateway) -> None:
    """Through a pipe: one line per result; the token comes from $ALEPH_TRIO_TOKEN."""
    params = '{"big": 1180591620717411303424, "text": "καλημέρα"}'
    with trio.fail_after(DEADLINE):
        result = await trio.run_process(
            [*CLIENT, "call", "echo", params, "--url", url],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=clean_env(ALEPH_TRIO_TOKEN=gateway.owner_token),
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {"big": 1180591620717411303424, "text": "καλημέρα"}


async def test_call_error_exits_1_with_code_message_and_data_on_stderr(
    url: str, gateway: Gateway
) -> None:
    token = ["--url", url, "--token", gateway.owner_token]
    with trio.fail_after(DEADLINE):
        # stdout a terminal, stderr a pipe: the error is a JSON line there, stdout stays empty
        async with open_terminal(
            [*CLIENT, "call", "nosuch.method", *token], stderr=subprocess.PIPE
        ) as term:
            stderr = Pipe(term.process.stderr)
            assert await term.wait() == 1
            error = json.loads(await stderr.rest())
        assert term.output == ""
        assert error["code"] == -32601
        assert error["message"] == "Method not found: nosuch.method"
        # everything on the terminal: readable, with the data
        bad = '{"patterns": ["no spaces allowed"]}'
        async with open_terminal([*CLIENT, "call", "events.subscribe", bad, *token]) as term:
            assert await term.wait() == 1
    assert term.output.startswith("error -32602: Invalid params: $.patterns[0]")
    assert '"path": "$.patterns[0]"' in term.output


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["call", "health", "{not json"], "PARAMS is not valid JSON"),
        (["call", "echo", "[1, 2]"], "PARAMS must be a JSON object ({...}), not an array"),
        (["call", "health", "--url", "http://127.0.0.1/"], "--url: not a WebSocket URL"),
        (["tail", "--url", "ws://127.0.0.1:{closed}/"], "Connection refused"),
        (["chat", "--url", "ws://127.0.0.1:{closed}/"], "cannot reach the gateway at ws://"),
    ],
)
def test_usage_and_connection_problems_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process through ``python -m aleph_trio``'s ``main`` (no gateway is needed)."""
    argv = [a.replace("{closed}", str(closed_port())) for a in args]
    if "--url" not in argv:
        argv += ["--url", f"ws://127.0.0.1:{closed_port()}/"]
    assert aleph_main([*argv, "--token", "x"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("aleph-trio: "), err
    assert message in err


async def test_refusals_by_the_gateway_exit_2_with_one_line(
    url: str, gateway: Gateway, tmp_path: Path
) -> None:
    cases = {
        "refused the token from --token": ["call", "health", "--token", "wrong"],
        f"needs a token: no --token, no $ALEPH_TRIO_TOKEN and no token in {tmp_path}": [
            *["call", "health", "--data-dir", str(tmp_path)]
        ],
        "no agent 'nosuch' on this gateway (agents: main)": [
            *["chat", "--agent", "nosuch", "--token", gateway.owner_token]
        ],
    }
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(message: str, args: list[str]) -> None:
        results[message] = await trio.run_process(
            [*CLIENT, *args, "--url", url],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=clean_env(),
        )

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            for message, args in cases.items():
                nursery.start_soon(run, message, args)
    for message, result in results.items():
        stderr = result.stderr.decode()
        assert result.returncode == 2
        assert result.stdout == b""
        assert stderr.count("\n") == 1 and stderr.startswith("aleph-trio: "), stderr
        assert message in stderr


async def serve_until(
    gateway: Gateway, port: int = 0, *, task_status: trio.TaskStatus[tuple[int, trio.CancelScope]]
) -> None:
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(gateway.serve, "127.0.0.1", port)
            task_status.started((bound, scope))


# -- chat ---------------------------------------------------------------------------------------


def chat_args(url: str, gateway: Gateway, *extra: str) -> list[str]:
    return [*CLIENT, "chat", "--url", url, "--token", gateway.owner_token, *extra]


async def test_chat_answers_approvals_and_questions_inline(
    url: str, gateway: Gateway, client: Client
) -> None:
    """Allow once, answer a question, deny, allow always; then Ctrl-D."""
    with trio.fail_after(DEADLINE):
        async with open_terminal(chat_args(url, gateway)) as term:
            header = await term.expect("> ")
            key = re.search(r"session (agent:main:cli-[0-9a-f]{6})", header)
            assert key, header
            assert f"aleph-trio chat --session {key.group(1)}" in header

            # The command is shown as asked for; its output ($((...)) expanded) proves it ran.
            await term.type("run echo chat-$((40+2))\n")
            shown = await term.expect("allow once (o), always (a) or deny (d)? ")
            assert "[approval] the agent wants to run:\n    echo chat-$((40+2))\n" in shown
            assert f"\n  in {os.getcwd()}\n" in shown
            await term.type("o\n")
            answer = await term.expect("\n> ")
            assert "[allowed once by aleph-trio chat]" in answer
            assert "The tool returned: exit code: 0\nstdout:\nchat-42" in answer

            await term.type("ask me which fruit?\n")
            await term.expect("? which fruit? ")
            await term.type("mango\n")
            assert "The tool returned: mango" in await term.expect("\n> ")

            await term.type("run echo never-$((1+1))\n")
            await term.expect("deny (d)? ")
            await term.type("maybe\n")  # not an answer: asked again
            await term.expect("[answer o (allow once), a (allow always) or d (deny)]\n")
            await term.expect("deny (d)? ")
            await term.type("d\n")
            denied = await term.expect("\n> ")
            assert "[denied by aleph-trio chat]" in denied
            assert "the command was not run: the owner denied it" in denied
            assert "never-2" not in term.output

            await term.type("run echo always-ok\n")
            await term.expect("deny (d)? ")
            await term.type("a\n")
            assert "always-ok" in await term.expect("\n> ")
            await term.type("\x04")  # Ctrl-D
            assert await term.wait() == 0
    assert f"session {key.group(1)}" in term.output.rsplit("> ", 1)[1]
    assert quiet(term.output), term.output
    policy = await client.call("exec.approvals.get")
    assert "echo always-ok" in policy["config"]["allow"]
    assert "echo chat-$((40+2))" not in policy["config"]["allow"]
    history = await client.call("chat.history", {"session_key": key.group(1)})
    assert history["messages"][0]["content"] == "run echo chat-$((40+2))"


async def test_chats_have_sessions_of_their_own(url: str, gateway: Gateway) -> None:
    """A chat waiting for an approval does not hold up another chat."""
    with trio.fail_after(DEADLINE):
        async with open_terminal(chat_args(url, gateway)) as first:
            await first.expect("> ")
            await first.type("run echo first\n")
            await first.expect("deny (d)? ")
            async with open_terminal(chat_args(url, gateway)) as second:
                await second.expect("> ")
                await second.type("echo: not queued behind the first\n")
                answer = await second.expect("\n> ")
                assert "not queued behind the first" in answer.split("\n", 1)[1]
                assert "[queued" not in answer
                await second.type("\x04")
                assert await second.wait() == 0
            await first.type("o\n")
            assert "stdout:\nfirst" in await first.expect("\n> ")
            await first.type("\x04")
            assert await first.wait() == 0
    keys = [re.search(r"session (\S+)", t.output).group(1) for t in (first, second)]  # type: ignore[union-attr]
    assert keys[0] != keys[1]


async def test_chat_continues_a_session(url: str, gateway: Gateway, client: Client) -> None:
    key = "agent:main:kept"
    run = await client.call("chat.send", {"message": "echo: earlier", "session_key": key})
    await wait_event(client, "agent.completed", run_id=run["run_id"])
    with trio.fail_after(DEADLINE):
        async with open_terminal(chat_args(url, gateway, "--session", key)) as term:
            header = await term.expect("> ")
            assert f"session {key}" in header
            assert "2 earlier messages in this session" in header
            await term.type("echo: later\n")
            await term.expect("later\n> ")
            await term.type("\x04")
            assert await term.wait() == 0
    history = await client.call("chat.history", {"session_key": key})
    assert [m["content"] for m in history["messages"]] == [
        "echo: earlier",
        "earlier",
        "echo: later",
        "later",
    ]


async def test_chat_prompt_is_withdrawn_when_answered_elsewhere_and_ctrl_c_stops_the_run(
    url: str, gateway: Gateway, client: Client
) -> None:
    await client.subscribe(["exec.approval_requested", "agent.cancelled"])
    with trio.fail_after(DEADLINE):
        async with open_terminal(chat_args(url, gateway)) as term:
            await term.expect("> ")
            await term.type("run echo decided-elsewhere\n")
            await term.expect("deny (d)? ")
            request = await wait_event(client, "exec.approval_requested")
            await client.call(
                "exec.approval.resolve", {"id": request.data["id"], "decision": "deny"}
            )
            shown = await term.expect("\n> ")
            assert "[denied by" in shown
            assert "the command was not run: the owner denied it" in shown

            await term.type("run echo never-answered\n")
            await term.expect("deny (d)? ")
            request = await wait_event(client, "exec.approval_requested")
            term.interrupt()
            assert await term.wait() == 130
            # The run is not left waiting for an answer nobody will give.
            cancelled = await wait_event(client, "agent.cancelled", run_id=request.data["run_id"])
            assert "chat.abort" in cancelled.data["reason"]
    assert quiet(term.output), term.output


async def test_chat_finishes_an_answer_across_a_dropped_connection(gateway: Gateway) -> None:
    """The listener goes away while an answer streams and comes back on the same port: the
    chat reconnects, and the rest of the answer (from ``stream.end``) is shown."""
    async with trio.open_nursery() as nursery:
        port, scope = await nursery.start(serve_until, gateway)
        url = f"ws://127.0.0.1:{port}/"
        with trio.fail_after(DEADLINE):
            async with open_terminal(chat_args(url, gateway)) as term:
                await term.expect("> ")
                await term.type("long answer\n")  # about 20 words a second
                await term.expect("word2 ")
                scope.cancel()
                await term.expect("[connection lost; reconnecting]")
                _, scope = await nursery.start(serve_until, gateway, port)
                await term.expect("[reconnected]")
                await term.expect("word120\n> ")
                await term.type("\x04")
                assert await term.wait() == 0
        scope.cancel()
    words = re.findall(r"word\d+", term.output)
    assert words == [f"word{i}" for i in range(1, 121)]  # each once, in order


async def test_chat_writes_json_lines_when_piped(url: str, gateway: Gateway) -> None:
    with trio.fail_after(DEADLINE):
        result = await trio.run_process(
            chat_args(url, gateway),
            stdin=b"count to 3\nrun echo piped\no\n",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert lines[0]["session_key"].startswith("agent:main:cli-")
    topics = [line.get("topic") for line in lines]
    assert topics.count("agent.completed") == 2
    ends = [line["data"]["content"] for line in lines if line.get("topic") == "stream.end"]
    assert ends[0] == "1 2 3"
    assert "stdout:\npiped" in ends[1]
    assert "exec.approval_resolved" in topics


# -- tail ---------------------------------------------------------------------------------------


async def test_tail_shows_events_published_after_it_started(url: str, gateway: Gateway) -> None:
    args = [*CLIENT, "tail", "demo.*", "--url", url, "--token", gateway.owner_token]
    with trio.fail_after(DEADLINE):
        async with open_terminal(args) as term:
            await term.expect("following demo.*")
            gateway.bus.publish("other.thing", {"n": 0})
            event = gateway.bus.publish("demo.hello", {"greeting": "hi"})
            line = await term.expect('{"greeting":"hi"}')
            assert f"#{event.seq} demo.hello " in line
            assert "other.thing" not in term.output
            term.interrupt()
            assert await term.wait() == 130
    assert quiet(term.output), term.output


async def test_tail_writes_json_lines_when_piped(url: str, gateway: Gateway) -> None:
    args = [*CLIENT, "tail", "--url", url, "--token", gateway.owner_token]
    with trio.fail_after(DEADLINE):
        process = await trio.lowlevel.open_process(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env()
        )
        try:
            await Pipe(process.stderr).expect("following **")
            event = gateway.bus.publish("demo.piped", {"n": 1})
            stdout = Pipe(process.stdout)
            line = await stdout.expect("\n")
            assert json.loads(line) == {
                "topic": "demo.piped",
                "seq": event.seq,
                "ts": event.ts,
                "data": {"n": 1},
            }
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 130
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


async def test_tail_follows_events_and_logs_across_a_gateway_restart(tmp_path: Path) -> None:
    """The gateway stops and a new one (new boot_id) starts on the same port: tail says so,
    and goes on with events and with the log."""
    log = logging.getLogger("aleph_trio")
    with trio.fail_after(DEADLINE):
        async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
            async with open_gateway(Config(), data_dir=tmp_path) as first:
                port, scope = await nursery.start(serve_until, first)
                args = [*CLIENT, "tail", "--logs", "--url", f"ws://127.0.0.1:{port}/"]
                term = await stack.enter_async_context(
                    open_terminal([*args, "--data-dir", str(tmp_path)])
                )
                await term.expect("following ** and the log")
                first.bus.publish("demo.before", {"n": 1})
                await term.expect('demo.before {"n":1}')
                log.warning("a log line before the restart")
                await term.expect("gateway: a log line before the restart")
                scope.cancel()
                await term.expect("connection lost; reconnecting")
            async with open_gateway(Config(), data_dir=tmp_path) as second:
                _, scope = await nursery.start(serve_until, second, port)
                # (the client's own resubscription and tail's log request race: any order)
                await term.expect_each("gateway restarted: earlier events", "reconnected")
                second.bus.publish("demo.after", {"n": 2})
                await term.expect('demo.after {"n":2}')
                log.warning("a log line after the restart")
                await term.expect("gateway: a log line after the restart")
                term.interrupt()
                assert await term.wait() == 130
                scope.cancel()
    assert quiet(term.output), term.output


# -- Ctrl-C -------------------------------------------------------------------------------------


async def test_ctrl_c_during_a_call_exits_130_quietly(
    url: str, gateway: Gateway, client: Client
) -> None:
    """A call that waits (an approval nobody answers) is interrupted."""
    await client.subscribe(["exec.approval_requested"])
    params = json.dumps({"command": "true", "cwd": str(ROOT), "agent_id": "main"})
    args = [*CLIENT, "call", "exec.approval.request", params, "--url", url]
    args += ["--token", gateway.owner_token]
    with trio.fail_after(DEADLINE):
        async with open_terminal(args) as term:
            await wait_event(client, "exec.approval_requested", timeout=DEADLINE)
            term.interrupt()
            assert await term.wait() == 130
    assert term.output == ""


@pytest.mark.parametrize(
    ("example", "ready"),
    [("client.py", "following the log; Ctrl-C to stop"), ("chat.py", "> ")],
)
async def test_ctrl_c_in_the_examples_exits_130_quietly(
    url: str, gateway: Gateway, example: str, ready: str
) -> None:
    args = [sys.executable, str(ROOT / "examples" / example), url, gateway.owner_token]
    with trio.fail_after(DEADLINE):
        async with open_terminal(args) as term:
            await term.expect(ready)
            term.interrupt()
            assert await term.wait() == 130
    assert quiet(term.output), term.output
