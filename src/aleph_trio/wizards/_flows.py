"""The shipped wizard types, bound to the services they use (built by the composition root)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ..cron import CronService
from ..identities import IdentityService
from ..kernel import Config, ConfigService
from ._cron_job import CronJobFlow
from ._identity import IdentityFlow
from ._service import Flow
from ._setup import SetupFlow

__all__ = ["builtin_flows"]


def builtin_flows(
    *,
    settings: ConfigService,
    http: httpx.AsyncClient,
    cron: CronService,
    identities: IdentityService,
    config: Callable[[], Config],
) -> list[Flow]:
    """The shipped wizard types, bound to the services they use."""
    return [
        SetupFlow(settings, http).flow(),
        CronJobFlow(cron, config).flow(),
        IdentityFlow(identities).flow(),
    ]
