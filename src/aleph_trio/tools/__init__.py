"""The tool framework agents call through (PROTOCOL §7), and the built-in tools."""

from ._builtin import builtin_tools as builtin_tools
from ._tool import (
    AnyTool as AnyTool,
    Tool as Tool,
    ToolBox as ToolBox,
    ToolContext as ToolContext,
    ToolFailed as ToolFailed,
    ToolResult as ToolResult,
    ToolRun as ToolRun,
    parse_arguments as parse_arguments,
)
