"""Python plugins (PROTOCOL §15): modules with ``setup(api)`` that add RPC methods, agent tools,
event listeners and background tasks, each plugin in its own cancel scope.

A plugin imports what it needs from here: :class:`PluginApi` (what ``setup`` is handed),
:class:`PluginEvent`, the tool types and the domain errors its methods may raise.
"""

from ..kernel import (
    Conflict as Conflict,
    InvalidArgument as InvalidArgument,
    InvalidState as InvalidState,
    NotFound as NotFound,
)
from ..tools import ToolContext as ToolContext, ToolFailed as ToolFailed
from ._api import (
    MethodSpec as MethodSpec,
    MethodTable as MethodTable,
    PluginApi as PluginApi,
    PluginEvent as PluginEvent,
)
from ._manager import SETUP_TIMEOUT_S as SETUP_TIMEOUT_S, PluginManager as PluginManager
from ._plugin import Plugin as Plugin
from ._registrar import LISTENER_QUEUE as LISTENER_QUEUE
