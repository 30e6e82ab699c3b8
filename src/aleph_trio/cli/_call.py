"""``aleph-trio call METHOD [PARAMS]``: one call, its result as JSON."""

from __future__ import annotations

import json
from typing import Any

from ..client import Client
from ..protocol import AlephError, AuthRequired
from ._connect import EXIT_ERROR, CliError
from ._output import Output

__all__ = ["call", "parse_params"]


_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def parse_params(text: str | None) -> dict[str, Any] | None:
    """The PARAMS argument: absent, or a JSON object."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"PARAMS is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"PARAMS must be a JSON object ({{...}}), not {_KINDS[type(value)]}")
    return value


async def call(client: Client, out: Output, method: str, params: dict[str, Any] | None) -> int:
    try:
        result = await client.call(method, params)
    except AuthRequired:
        raise  # no token: said in one line by the caller
    except AlephError as exc:
        out.error(exc)
        return EXIT_ERROR
    out.result(result)
    return 0
