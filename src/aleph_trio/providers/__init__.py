"""LLM providers behind one streaming interface, and the catalogue of models they offer."""

from ._builtin import (
    BUILTIN_MODEL as BUILTIN_MODEL,
    HELP_TEXT as HELP_TEXT,
    SUMMARY_REQUEST as SUMMARY_REQUEST,
    BuiltinProvider as BuiltinProvider,
)
from ._catalog import ModelCatalog as ModelCatalog, agent_model_warnings as agent_model_warnings
from ._errors import ProviderError as ProviderError
from ._http import open_http_client as open_http_client
from ._listing import (
    DEFAULT_BASE_URLS as DEFAULT_BASE_URLS,
    RemoteKind as RemoteKind,
    list_models as list_models,
)
from ._types import (
    ChatMessage as ChatMessage,
    Delta as Delta,
    Finish as Finish,
    ModelInfo as ModelInfo,
    ModelRequest as ModelRequest,
    Provider as Provider,
    TextDelta as TextDelta,
    ThinkingDelta as ThinkingDelta,
    ToolCall as ToolCall,
    ToolCallDelta as ToolCallDelta,
    ToolSpec as ToolSpec,
    Usage as Usage,
)
