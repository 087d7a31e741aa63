"""The party console (``sealroom ui``): this party's keys and SDK behind a loopback web page."""

from __future__ import annotations

from sealroom.web.console.app import ConsoleOptions, create_console_app
from sealroom.web.console.security import Sessions

__all__ = ["ConsoleOptions", "Sessions", "create_console_app"]
