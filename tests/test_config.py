"""Configuration: loading, errors with paths, secrets, reload, validate, schema, watching."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from aleph_trio import Client, ConfigError, load_config, open_gateway
from aleph_trio.kernel import Config
from aleph_trio.kernel._config_file import parse_config_text
from aleph_trio.protocol import AlephError

GOOD = """
[server]
port = 18800
allowed_origins = ["http://app.example"]

[auth]
token = "owner-secret"

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
api_key = { env = "LOCAL_KEY" }
models = ["llama3"]

[agents.main]
model = "local/llama3"
system_prompt = "Be brief."
tools = ["memory_*"]

[logging]
level = "warning"
components = { config = "debug" }
"""


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    loaded = load_config(tmp_path / "nope.toml")
    assert loaded.source == "defaults"
    assert loaded.config == Config()


def test_good_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    loaded = load_config(path)
    assert loaded.source == str(path)
    assert loaded.config.server.port == 18800
    assert loaded.config.agents["main"].tools == ("memory_*",)
    assert loaded.config.providers["local"].api_key is not None


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("[agents.main]\nmodel = 5\n", "agents.main.model", "expected string or null, got integer"),
        ("[server]\nport = '1'\n", "server.port", "expected integer, got string"),
        ("[server]\nport = 70000\n", "server.port", "expected integer <= 65535"),
        ("[server]\nprot = 1\n", "server.prot", "unknown field"),
        ("[nonsense]\n", "nonsense", "unknown field"),
        ("[providers.x]\nbase_url = 'u'\n", "providers.x.kind", "missing required field"),
        ("[providers.x]\nkind = 'magic'\n", "providers.x.kind", "invalid enum value 'magic'"),
        ("[auth]\nrequire_auth = 'false'\n", "auth.require_auth", "expected boolean, got string"),
        ("[logging]\nlevel = 'loud'\n", "logging.level", "invalid enum value 'loud'"),
    ],
)
def test_errors_name_the_path(text: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config_text(text)
    assert {"path": path, "message": message} in info.value.errors
    assert path in str(info.value)


def test_broken_toml_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config_text("[server\nport = 1")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    return path


async def test_config_get_redacts_secrets(
    config_file: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_KEY", "sk-live-123")
    async with open_gateway(config_path=config_file, data_dir=data_dir) as gateway:
        assert gateway.owner_token == "owner-secret"
        async with gateway.connect() as client:
            result = await client.call("config.get")
    assert result["source"] == str(config_file)
    assert result["config"]["auth"]["token"] == "***"
    assert result["config"]["providers"]["local"]["api_key"] == "***"
    assert result["config"]["server"]["port"] == 18800
    text = repr(result)
    assert "owner-secret" not in text and "sk-live-123" not in text and "LOCAL_KEY" not in text


async def test_reload_applies_and_announces(config_file: Path, data_dir: Path) -> None:
    async with open_gateway(
        config_path=config_file, data_dir=data_dir, watch_config=False
    ) as gateway:
        async with gateway.connect() as client:
            await client.call("events.subscribe", {"patterns": ["config.*"]})
            config_file.write_text(
                GOOD.replace('level = "warning"', 'level = "error"').replace("18800", "18801")
            )
            result = await client.call("config.reload")
            assert result["reloaded"] is True
            assert result["changed_keys"] == ["logging.level", "server.port"]
            assert any("server.port" in w for w in result["warnings"])
            changed = await client.next_event(timeout=5)
            assert changed.topic == "config.changed"
            assert changed.data == {
                "changed_keys": ["logging.level", "server.port"],
                "source": "rpc",
            }
            reloaded = await client.next_event(timeout=5)
            assert reloaded.topic == "config.reloaded" and reloaded.data["valid"] is True
            assert gateway.config.logging.level == "error"
            levels = await client.call("logs.levels")
            assert levels["levels"]["gateway"] == "error"
            assert levels["levels"]["config"] == "debug"


async def test_broken_file_never_replaces_running_config(config_file: Path, data_dir: Path) -> None:
    async with open_gateway(
        config_path=config_file, data_dir=data_dir, watch_config=False
    ) as gateway:
        before = gateway.config
        async with gateway.connect() as client:
            await client.call("events.subscribe", {"patterns": ["config.reloaded"]})
            config_file.write_text(GOOD + "\n[server]\nport = 'oops'\n")
            with pytest.raises(AlephError) as info:
                await client.call("config.reload")
            assert info.value.code == -32602
            assert info.value.data is not None and info.value.data["errors"]
            event = await client.next_event(timeout=5)
            assert event.data["valid"] is False
            assert gateway.config is before
            assert (await client.call("config.get"))["config"]["server"]["port"] == 18800


async def test_validate_never_applies(client: Client) -> None:
    good = await client.call("config.validate", {"config": {"server": {"port": 1}}})
    assert good == {
        "valid": True,
        "errors": [],
        "warnings": ["server.port changed: it takes effect at the next start"],
    }
    bad = await client.call("config.validate", {"config": {"server": {"port": "x", "nope": 1}}})
    assert bad["valid"] is False
    assert {e["path"] for e in bad["errors"]} == {"server.port", "server.nope"}
    assert (await client.call("config.get"))["config"]["server"]["port"] == 18790


async def test_validate_warns_about_unset_env_secret(client: Client) -> None:
    os.environ.pop("SURELY_UNSET_VAR", None)
    doc = {"providers": {"p": {"kind": "openai", "api_key": {"env": "SURELY_UNSET_VAR"}}}}
    result = await client.call("config.validate", {"config": doc})
    assert result["valid"] is True
    assert result["warnings"] == [
        "providers.p.api_key: environment variable SURELY_UNSET_VAR is not set"
    ]


async def test_schema_is_generated_from_the_model(client: Client) -> None:
    schema = await client.call("config.schema")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "server",
        "auth",
        "events",
        "runs",
        "sessions",
        "providers",
        "agents",
        "exec",
        "cron",
        "browser",
        "mcp",
        "logging",
        "plugins",
    }
    server = schema["$defs"]["ServerConfig"]
    assert server["properties"]["port"]["maximum"] == 65535
    assert server["additionalProperties"] is False


async def test_watcher_applies_saved_change_after_debounce(
    config_file: Path, data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(config_path=config_file, data_dir=data_dir) as gateway:
        async with gateway.connect() as client:
            assert (await client.call("health"))["services"]["config_watcher"] == "running"
            await client.call("events.subscribe", {"patterns": ["config.*"]})
            tmp = config_file.with_suffix(".tmp")
            tmp.write_text(GOOD.replace('"Be brief."', '"Be thorough."'))
            os.replace(tmp, config_file)  # an editor's atomic save
            start = trio.current_time()
            event = await client.next_event(timeout=10)
            assert event.topic == "config.changed"
            assert event.data == {"changed_keys": ["agents.main.system_prompt"], "source": "file"}
            assert trio.current_time() - start >= 0.3
            assert gateway.config.agents["main"].system_prompt == "Be thorough."


async def test_watcher_keeps_running_config_on_broken_save(
    config_file: Path, data_dir: Path, patient_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(config_path=config_file, data_dir=data_dir) as gateway:
        before = gateway.config
        async with gateway.connect() as client:
            await client.call("events.subscribe", {"patterns": ["config.*"]})
            config_file.write_text("[server\n")
            event = await client.next_event(timeout=10)
            assert event.topic == "config.reloaded" and event.data["valid"] is False
            assert gateway.config is before
            config_file.write_text(GOOD.replace("18800", "18802"))
            event = await client.next_event(timeout=10)
            assert event.topic == "config.changed"
            assert gateway.config.server.port == 18802
