"""sealroom for agents: the flows as Model Context Protocol tools (``sealroom mcp``)."""

from __future__ import annotations

from sealroom.mcp.server import AgentLimits, build_server

__all__ = ["AgentLimits", "build_server"]
