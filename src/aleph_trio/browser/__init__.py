"""The managed browser (PROTOCOL §13): a headless Chromium driven over the Chrome DevTools
Protocol by a client of our own, the ``browser`` service, and the agent tools over it."""

from ._actions import Target as Target
from ._cdp import (
    CdpClosed as CdpClosed,
    CdpConnection as CdpConnection,
    CdpError as CdpError,
    CdpEvent as CdpEvent,
    CdpSession as CdpSession,
)
from ._page import WaitUntil as WaitUntil
from ._service import BrowserService as BrowserService, BrowserStatistics as BrowserStatistics
from ._tools import browser_tools as browser_tools
