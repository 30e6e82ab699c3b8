"""``config.get``, ``config.reload``, ``config.validate``, ``config.schema`` (PROTOCOL §9)."""

from __future__ import annotations

import functools
from typing import Any

import attrs

from ..kernel import Config, ConfigError, json_schema, public_dict
from ..protocol import InvalidParams
from ._context import CallContext
from ._registry import Namespace, NoParams

ns = Namespace()


@ns.method(
    "config.get",
    NoParams,
    description="The configuration in force, secrets shown as ***.",
    owner_only=True,
)
async def get(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    loaded = ctx.gateway.settings.loaded
    return {
        "config": public_dict(loaded.config),
        "source": loaded.source,
        "loaded_at": loaded.loaded_at,
    }


@ns.method(
    "config.reload",
    NoParams,
    description="Re-read the config file and apply it; an invalid file changes nothing.",
    owner_only=True,
)
async def reload(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    try:
        outcome = await ctx.gateway.settings.reload(source="rpc")
    except ConfigError as exc:
        raise InvalidParams(
            f"Invalid configuration, the running one is kept: {exc}", errors=exc.errors
        ) from None
    return {
        "reloaded": outcome.reloaded,
        "changed_keys": outcome.changed_keys,
        "warnings": outcome.warnings,
    }


@attrs.frozen
class ValidateParams:
    config: dict[str, Any]


@ns.method(
    "config.validate",
    ValidateParams,
    description="Check a configuration document (as JSON) without applying it.",
    owner_only=True,
)
async def validate(ctx: CallContext, params: ValidateParams) -> dict[str, Any]:
    return ctx.gateway.settings.validate(params.config)


@functools.cache
def _schema() -> dict[str, Any]:
    schema = json_schema(Config)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "aleph_trio configuration",
        **schema,
    }


@ns.method(
    "config.schema",
    NoParams,
    description="The JSON Schema (draft 2020-12) of the config file.",
    owner_only=False,
)
async def schema(ctx: CallContext, params: NoParams) -> dict[str, Any]:
    return _schema()
