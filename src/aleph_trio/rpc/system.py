"""System methods (PROTOCOL §18): health, echo, version, logs.*, commands.list."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Annotated, Any, Literal

import attrs
import trio
from msgspec import Meta

from .._version import __version__
from ..kernel import COMPONENTS, apply_component_level, current_levels
from ..protocol import InvalidParams
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()

Level = Literal["debug", "info", "warning", "error", "critical"]


@ns.method(
    "health",
    NoParams,
    description="Liveness, uptime, connection count and service states.",
    owner_only=False,
)
async def health(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    stats = ctx.gateway.statistics()
    return {
        "status": "ok",
        "uptime_s": round(stats.uptime_s, 3),
        "connections": stats.connections,
        "services": stats.services,
        "runs": {"running": stats.runs.running, "queued": stats.runs.queued},
    }


@ns.method(
    "echo",
    None,
    description="Answer with the params exactly as received ({} when none).",
    owner_only=False,
)
async def echo(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return params


def _build() -> str:
    """The git commit this package runs from, when it runs from a checkout; else ``release``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        head = parent / ".git" / "HEAD"
        if head.is_file():
            try:
                ref = head.read_text().strip()
                if ref.startswith("ref: "):
                    ref_file = parent / ".git" / ref[5:]
                    if not ref_file.is_file():
                        return "dev"
                    ref = ref_file.read_text().strip()
                return ref[:12]
            except OSError:
                break
    return "release"


_BUILD = _build()


@ns.method(
    "version",
    NoParams,
    description="Gateway, protocol, Python and Trio versions.",
    owner_only=False,
)
async def version(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {
        "version": __version__,
        "build": _BUILD,
        "protocol": 1,
        "python": platform.python_version(),
        "trio": trio.__version__,
    }


@ns.method(
    "logs.levels", NoParams, description="The log level of every component.", owner_only=False
)
async def logs_levels(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {"levels": current_levels()}


@attrs.frozen
class SetLevelParams:
    component: Annotated[str, Meta(min_length=1, max_length=64)]
    level: Level


@ns.method(
    "logs.set_level",
    SetLevelParams,
    description="Set one component's log level until the next config reload.",
    owner_only=True,
)
async def logs_set_level(ctx: CallContext, params: SetLevelParams) -> dict[str, Any]:
    if params.component not in COMPONENTS:
        known = ", ".join(sorted(COMPONENTS))
        raise InvalidParams(
            f"Invalid params: unknown component {params.component!r} (known: {known})",
            errors=[{"path": "$.component", "message": f"unknown component; known: {known}"}],
        )
    apply_component_level(params.component, params.level)
    return {"set": True}


@attrs.frozen
class TailParams:
    lines: Annotated[int, Meta(ge=0, le=1000)] = 100
    follow: bool = False


@ns.method(
    "logs.tail",
    TailParams,
    description="Recent log entries; with follow, later entries arrive as logs.entry events.",
    owner_only=False,
)
async def logs_tail(ctx: CallContext, params: TailParams) -> dict[str, Any]:
    principal = ctx.peer.principal
    # Logs are the owner's (PROTOCOL §6.2): a guest's tail is empty, its follow gets nothing.
    guest = principal is not None and principal.role != "owner"
    entries = [] if guest else ctx.gateway.logs.tail(params.lines)
    ctx.peer.subscriber.follow_logs = params.follow
    return {"entries": entries}


@ns.method(
    "commands.list",
    NoParams,
    description="Every method this gateway answers, with its params schema.",
    owner_only=False,
)
async def commands_list(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return {
        "commands": [
            {
                "method": m.name,
                "description": m.description,
                "params": m.schema,
                "owner_only": m.owner_only,
            }
            for m in ctx.gateway.registry
        ]
    }
