"""The terminal client: ``aleph-trio call``, ``aleph-trio chat`` and ``aleph-trio tail``.

Built only on :mod:`aleph_trio.client` and :mod:`aleph_trio.protocol` (an import-linter contract
keeps it so): it is a client like any other and never loads server code of its own accord.
"""

from ._args import COMMANDS as COMMANDS
from ._main import main as main

__all__ = ["COMMANDS", "main"]
