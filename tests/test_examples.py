"""The examples in examples/ keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from aleph_trio import Client, Gateway

ROOT = Path(__file__).resolve().parent.parent


def test_embed_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "in-process health: ok" in result.stdout
    assert "demo.hello: {'greeting': 'hi from the host program'}" in result.stdout
    assert "echo: {'n': 1180591620717411303424}" in result.stdout


async def test_chat_example_streams_a_conversation(url: str, gateway: Gateway) -> None:
    """The chat example against a gateway on a real socket, typing through a real pipe."""
    lines = "count to 4\nask me which fruit?\nmango\necho: bye\n"
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, str(ROOT / "examples" / "chat.py"), url, gateway.owner_token],
            stdin=lines.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "models: builtin/offline" in out
    assert "1 2 3 4" in out
    assert "? which fruit?" in out
    assert "The tool returned: mango" in out
    assert "> bye\n> " in out  # the last answer, then the prompt that met end of input


async def test_example_skill_installs(client: Client, gateway: Gateway) -> None:
    source = ROOT / "examples" / "skills" / "release-notes"
    installed = await client.call(
        "skills.install", {"name": "release-notes", "source": str(source)}
    )
    assert installed["installed"] is True
    (skill,) = (await client.call("skills.list"))["skills"]
    assert skill["name"] == "release-notes"
    assert "release notes" in skill["description"]
    assert (Path(installed["path"]) / "style.md").read_text().startswith("# Style")
