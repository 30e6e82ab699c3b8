"""Workspaces (PROTOCOL §17): a directory and the overrides (agent, model, tools) that runs
started in it use."""

from ._service import (
    WorkspaceConfig as WorkspaceConfig,
    WorkspaceService as WorkspaceService,
)
