"""The RPC layer: the method registry and one thin module per namespace."""

from ._context import CallContext as CallContext, Peer as Peer
from ._dispatch import dispatch as dispatch
from ._registry import (
    Method as Method,
    Namespace as Namespace,
    NoParams as NoParams,
    Registry as Registry,
)


def build_registry() -> Registry:
    """A registry holding every built-in method."""
    from . import (
        agent,
        auth,
        browser,
        chat,
        config,
        cron,
        events,
        exec,
        guests,
        identity,
        mcp,
        memory,
        models,
        plugins,
        poe,
        services,
        session,
        skills,
        system,
        wizard,
        workspace,
    )

    return Registry(
        auth.ns,
        system.ns,
        events.ns,
        config.ns,
        agent.ns,
        session.ns,
        chat.ns,
        memory.ns,
        models.ns,
        exec.ns,
        cron.ns,
        identity.ns,
        guests.ns,
        skills.ns,
        wizard.ns,
        workspace.ns,
        services.ns,
        mcp.ns,
        plugins.ns,
        poe.ns,
        browser.ns,
    )
