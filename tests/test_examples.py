"""The examples in examples/ keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
