"""The package's layering (docs/design.md, "Layers") holds, and a backwards import breaks it.

The contracts live in ``pyproject.toml`` under ``[tool.importlinter]``; ``lint-imports`` checks
them against the real import graph, imports under ``TYPE_CHECKING`` included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aleph_trio

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(aleph_trio.__file__).resolve().parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(project / "pyproject.toml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT, PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "8 kept, 0 broken" in result.stdout  # every contract was read and checked


@pytest.mark.parametrize(
    ("module", "source", "contract"),
    [
        # a domain reaching up to the composition root, even only for typing
        (
            "runs/_sneaky.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from .._gateway import Gateway\n",
            "Each layer imports only the layers below it",
        ),
        # a service building a JSON-RPC error instead of raising a domain error
        (
            "cron/_sneaky.py",
            "from ..protocol import InvalidParams\n",
            "Services raise domain errors",
        ),
        # the store depending on a domain
        ("store/_sneaky.py", "from ..runs import LIVE\n", "Each layer imports only"),
        # the sans-IO protocol touching trio
        ("protocol/_sneaky.py", "import trio\n", "protocol is sans-IO"),
        # a provider stream decoder doing I/O
        ("providers/_framing.py", "import trio\n", "decoders are sans-IO"),
        # the terminal client loading server code
        (
            "cli/_sneaky.py",
            "from ..kernel import ServerConfig\n",
            "The terminal client needs only the client and the protocol",
        ),
        # the server depending on the terminal client
        ("server/_sneaky.py", "from ..cli import COMMANDS\n", "Each layer imports only"),
        # a package reaching into another's private module
        (
            "runs/_sneaky.py",
            "from ..cron._service import CronService\n",
            "private modules only via",
        ),
    ],
)
def test_a_backwards_import_breaks_a_contract(
    tmp_path: Path, module: str, source: str, contract: str
) -> None:
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "aleph_trio", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "aleph_trio" / module).write_text(source)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    result = lint_imports(tmp_path, copy)
    assert result.returncode != 0
    assert "Broken contracts" in result.stdout, result.stdout + result.stderr
    assert contract in result.stdout.split("Broken contracts", 1)[1], result.stdout
