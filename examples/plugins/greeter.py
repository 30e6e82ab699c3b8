"""An example plugin: a method, an agent tool, an event listener and a background task.

Load it into a running gateway (the path is read on the gateway's machine)::

    python -m aleph_trio call plugins.load '{"path": "/path/to/examples/plugins/greeter.py"}'
    python -m aleph_trio call greeter.greet '{"name": "Ada"}'

or list it in the config file, or drop it into ``<data dir>/plugins/``::

    [plugins]
    paths = ["/path/to/examples/plugins/greeter.py"]
"""

from __future__ import annotations

from typing import Annotated, Any

import attrs
import trio
from msgspec import Meta

from aleph_trio.plugins import InvalidArgument, PluginApi, PluginEvent, ToolContext

PLUGIN_ID = "greeter"  # methods are greeter.<name>; without it the file name is the id
PLUGIN_NAME = "Greeter"
__version__ = "1.0.0"

#: How often the background task publishes ``greeter.tick``.
TICK_S = 60.0


@attrs.frozen
class GreetParams:
    name: Annotated[str, Meta(min_length=1, max_length=100, description="who to greet")]


@attrs.frozen
class NoParams:
    pass


def setup(api: PluginApi) -> None:
    """Called each time the plugin is loaded or enabled; everything registered here is
    withdrawn when it is unloaded, disabled, or fails."""
    greeted: list[str] = []
    seen = {"runs_completed": 0, "ticks": 0}

    @api.method("greet", GreetParams, description="Greet someone by name.", owner_only=False)
    async def greet(params: GreetParams) -> dict[str, Any]:
        if params.name.strip() == "":
            raise InvalidArgument.field("name", "must not be blank")  # a clear -32602
        greeted.append(params.name)
        return {"greeting": f"Hello, {params.name}!"}

    @api.method("stats", NoParams, description="What the plugin has seen so far.", owner_only=True)
    async def stats(params: NoParams) -> dict[str, Any]:
        return {
            "greeted": greeted,
            **seen,
            "agents": sorted(api.config().agents),  # read access to the gateway's config
        }

    @api.tool("greet_person", GreetParams, description="Greet a person by name.")
    async def greet_person(ctx: ToolContext, params: GreetParams) -> str:
        greeted.append(params.name)
        return f"Hello, {params.name}! (greeted during run {ctx.run.run_id})"

    @api.on("agent.completed")
    async def count_runs(event: PluginEvent) -> None:
        seen["runs_completed"] += 1
        api.log.info("run %s completed", event.data["run_id"])

    async def heartbeat() -> None:
        api.publish("started", {})
        try:
            while True:
                await trio.sleep(TICK_S)
                seen["ticks"] += 1
                api.publish("tick", {"n": seen["ticks"]})
        finally:
            api.publish("stopped", {"ticks": seen["ticks"]})  # cancelled on unload/disable

    # Runs as service ``plugin:greeter:heartbeat``: ``services.stop`` / ``services.start``
    # cancel it and run it again without touching the rest of the plugin.
    api.start_task(heartbeat)
