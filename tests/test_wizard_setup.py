"""The ``setup`` wizard (PROTOCOL §11) over a real WebSocket, against a loopback HTTP server
standing in for an OpenAI-compatible provider: the base URL and key are checked against its
model list, the config file is rewritten in place and reloaded, a fresh gateway runs with it,
and the key never shows anywhere but in that file."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from aleph_trio import Client, open_client, open_gateway
from aleph_trio.protocol import AlephError, ErrorCode
from gatewayproc import start_server
from llmserver import LLMServer, Reply, models_reply, serve_llm, sse
from runhelp import run_events, start, topics
from terminal import CLIENT, clean_env

GOOD_KEY = "sk-good-SECRET123"
BAD_KEY = "sk-bad-SECRET456"
EXISTING = """\
[cron]
max_concurrent = 2

[logging]
level = "debug"

[providers.spare]
kind = "ollama"
base_url = "http://127.0.0.1:9"
models = ["tiny"]
"""


@pytest.fixture
async def llm() -> AsyncIterator[LLMServer]:
    async with serve_llm() as server:
        yield server


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text(EXISTING)
    return path


async def call_error(client: Client, method: str, params: dict[str, Any]) -> AlephError:
    with pytest.raises(AlephError) as err:
        await client.call(method, params)
    return err.value


async def answer(client: Client, session: str, step: dict[str, Any], value: Any) -> dict[str, Any]:
    result: dict[str, Any] = await client.call(
        "wizard.answer", {"session_id": session, "step_id": step["id"], "value": value}
    )
    return result


async def refused(client: Client, session: str, step: dict[str, Any], value: Any) -> str:
    """Answer ``step`` wrongly: -32602, and the step is still the current one."""
    err = await call_error(
        client, "wizard.answer", {"session_id": session, "step_id": step["id"], "value": value}
    )
    assert err.code == ErrorCode.INVALID_PARAMS
    status = await client.call("wizard.status", {"session_id": session})
    assert status == {"status": "running", "step": step}
    return err.message


async def test_a_newcomer_configures_the_gateway_through_setup(
    llm: LLMServer, config_path: Path, tmp_path: Path
) -> None:
    statuses: list[object] = []
    async with (
        open_gateway(config_path=config_path, data_dir=tmp_path / "d1", watch_config=False) as gw,
        trio.open_nursery() as nursery,
    ):
        port = await nursery.start(gw.serve, "127.0.0.1", 0)
        async with open_client(f"ws://127.0.0.1:{port}/", token=gw.owner_token) as client:
            await client.call("events.subscribe", {"patterns": ["**"]})
            await client.call("logs.tail", {"lines": 0, "follow": True})
            started = await client.call("wizard.start", {"wizard_type": "setup"})
            session = started["session_id"]
            kind = started["step"]
            assert kind["type"] == "select"
            assert [o["value"] for o in kind["options"]] == ["openai", "anthropic", "ollama"]
            base = (await answer(client, session, kind, "openai"))["step"]
            assert base["type"] == "text" and base["default"] == "https://api.openai.com/v1"

            # Nobody listens there: refused with the reason, and asked again.
            message = await refused(client, session, base, "http://127.0.0.1:1/v1")
            assert "could not be reached" in message and "127.0.0.1:1/v1/models" in message
            assert "expected an http" in await refused(client, session, base, "ftp://x")
            # The server is there and wants a key.
            llm.script.append(models_reply(status=401))
            key = (await answer(client, session, base, llm.base_url))["step"]
            assert key["type"] == "password" and key["required"] is True
            assert "default" not in key

            llm.script.append(models_reply(status=401))
            message = await refused(client, session, key, BAD_KEY)
            assert "refused the API key (HTTP 401)" in message
            statuses.append(await client.call("wizard.status", {"session_id": session}))
            llm.script.append(models_reply("model-b", "model-a"))
            model = (await answer(client, session, key, GOOD_KEY))["step"]
            listed = llm.requests[-1]
            assert (listed.method, listed.path) == ("GET", "/v1/models")
            assert listed.headers["authorization"] == f"Bearer {GOOD_KEY}"
            assert model["type"] == "select"
            assert [o["value"] for o in model["options"]] == ["model-a", "model-b"]
            statuses.append(await client.call("wizard.status", {"session_id": session}))

            check = (await answer(client, session, model, "model-b"))["step"]
            assert check["type"] == "confirm"
            assert str(config_path) in check["message"] and "openai/model-b" in check["message"]
            statuses.append(await client.call("wizard.status", {"session_id": session}))
            done = await answer(client, session, check, True)
            assert done["status"] == "done" and done["done"] is True
            assert done["step"]["title"] == "Configuration saved"
            statuses.append(await client.call("wizard.status", {"session_id": session}))

            # Written in place, private, every other table kept; and already in force.
            assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600
            assert [p.name for p in config_path.parent.iterdir()] == ["config.toml"]
            written = tomllib.loads(config_path.read_text())
            assert written["providers"]["openai"] == {
                "kind": "openai",
                "base_url": llm.base_url.rstrip("/"),
                "api_key": GOOD_KEY,
                "models": ["model-b"],
            }
            assert written["agents"] == {"main": {"model": "openai/model-b"}}
            assert written["cron"] == {"max_concurrent": 2}
            assert written["logging"] == {"level": "debug"}
            assert written["providers"]["spare"]["models"] == ["tiny"]
            assert gw.config.agents["main"].model == "openai/model-b"
            shown = await client.call("config.get")
            assert shown["config"]["providers"]["openai"]["api_key"] == "***"

            # The key is nowhere but in the file: not in events, logs or wizard.status.
            gw.bus.publish("test.barrier", {})
            seen: list[str] = []
            with trio.fail_after(10):
                while True:
                    event = await client.next_event()
                    seen.append(json.dumps({"topic": event.topic, "data": event.data}))
                    if event.topic == "test.barrier":
                        break
            assert any('"wizard.step"' in line for line in seen)
            assert any('"config.changed"' in line for line in seen)
            assert any('"logs.entry"' in line for line in seen)
            logs = [json.dumps(entry) for entry in gw.logs.tail(5000)]
            assert any("wizard" in line for line in logs)
            for text in [*seen, *logs, json.dumps(statuses), json.dumps(done)]:
                assert "SECRET" not in text
            nursery.cancel_scope.cancel()

    # A fresh gateway reads the file and runs agent main on the chosen model, with the key.
    llm.script.append(Reply(parts=sse(_text("configured", "stop"))))
    async with (
        open_gateway(config_path=config_path, data_dir=tmp_path / "d2", watch_config=False) as gw,
        gw.connect() as client,
    ):
        assert gw.config.cron.max_concurrent == 2
        events = await run_events(client, await start(client, "hello"))
        assert topics(events)[-1] == "agent.completed"
        request = llm.requests[-1]
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {GOOD_KEY}"
        assert request.body["model"] == "model-b"


async def test_a_keyless_server_and_a_declined_setup(
    llm: LLMServer, config_path: Path, tmp_path: Path
) -> None:
    before = config_path.read_bytes()
    async with (
        open_gateway(config_path=config_path, data_dir=tmp_path / "d", watch_config=False) as gw,
        gw.connect() as client,
    ):
        started = await client.call(
            "wizard.start",
            {"wizard_type": "setup", "initial_data": {"provider": "local", "base_url": "x"}},
        )
        session = started["session_id"]
        base = (await answer(client, session, started["step"], "openai"))["step"]
        assert base["default"] == "x"
        # A server that lists its models without a key: the key may be left empty.
        llm.script.append(models_reply("m1"))
        key = (await answer(client, session, base, llm.base_url))["step"]
        assert key["required"] is False and "without a key" in key["message"]
        model = (await answer(client, session, key, ""))["step"]
        assert [o["value"] for o in model["options"]] == ["m1"]
        check = (await answer(client, session, model, "m1"))["step"]
        assert "without an API key" in check["message"]
        done = await answer(client, session, check, False)
        assert done["step"]["title"] == "Nothing was changed"
        assert config_path.read_bytes() == before
        assert len(llm.requests) == 1


async def test_an_unreachable_ollama_is_refused_at_its_base_url(
    llm: LLMServer, config_path: Path, tmp_path: Path
) -> None:
    async with (
        open_gateway(config_path=config_path, data_dir=tmp_path / "d", watch_config=False) as gw,
        gw.connect() as client,
    ):
        started = await client.call("wizard.start", {"wizard_type": "setup"})
        session = started["session_id"]
        base = (await answer(client, session, started["step"], "ollama"))["step"]
        assert base["default"] == "http://127.0.0.1:11434"
        message = await refused(client, session, base, "http://127.0.0.1:1")
        assert "could not be reached" in message
        root = f"http://127.0.0.1:{llm.port}"
        llm.script.append(
            Reply(
                parts=[json.dumps({"models": [{"name": "llama3"}]})],
                content_type="application/json",
            )
        )
        model = (await answer(client, session, base, root))["step"]
        assert llm.requests[-1].path == "/api/tags"
        assert model["title"] == "Default model"
        check = (await answer(client, session, model, "llama3"))["step"]
        done = await answer(client, session, check, True)
        assert done["status"] == "done"
        written = tomllib.loads(config_path.read_text())
        assert written["providers"]["ollama"] == {
            "kind": "ollama",
            "base_url": root,
            "models": ["llama3"],
        }
        assert gw.config.agents["main"].model == "ollama/llama3"


async def test_a_newcomer_sets_up_a_fresh_gateway_with_aleph_trio_call(
    llm: LLMServer, tmp_path: Path
) -> None:
    """The README's walk-through: a real gateway process started with no config file, driven by
    ``aleph-trio call`` processes only, ends configured with the model the provider listed."""
    config_path = tmp_path / "absent.toml"
    data_dir = tmp_path / "data"

    async def call(method: str, params: dict[str, Any]) -> Any:
        args = [*CLIENT, "call", method, json.dumps(params), "--url", server.url]
        with trio.fail_after(30):
            done = await trio.run_process(
                [*args, "--data-dir", str(data_dir)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env=clean_env(),
            )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    async for server in start_server(tmp_path):
        started = await call("wizard.start", {"wizard_type": "setup"})
        session, step = started["session_id"], started["step"]
        llm.script += [models_reply(status=401), models_reply("model-x")]
        for value in ["openai", llm.base_url, GOOD_KEY, "model-x", True]:
            result = await call(
                "wizard.answer", {"session_id": session, "step_id": step["id"], "value": value}
            )
            step = result["step"]
        assert result["status"] == "done" and step["title"] == "Configuration saved"
        assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600
        shown = await call("config.get", {})
        assert shown["source"] == str(config_path)
        assert shown["config"]["agents"]["main"]["model"] == "openai/model-x"
        server.process.terminate()


def _text(content: str, finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


async def test_anthropic_models_are_listed_with_its_headers(llm: LLMServer) -> None:
    from aleph_trio.providers import ProviderError, list_models, open_http_client

    root = f"http://127.0.0.1:{llm.port}"
    llm.script.append(models_reply("claude-b", "claude-a"))
    llm.script.append(models_reply(status=403))
    async with open_http_client() as http:
        assert await list_models(http, "anthropic", root, "ak-SECRET") == ["claude-a", "claude-b"]
        with pytest.raises(ProviderError) as err:
            await list_models(http, "anthropic", root, "ak-SECRET")
    assert err.value.status == 403 and "SECRET" not in err.value.message
    request = llm.requests[0]
    assert request.path == "/v1/models"
    assert request.headers["x-api-key"] == "ak-SECRET"
    assert request.headers["anthropic-version"]
