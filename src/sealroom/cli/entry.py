"""The ``sealroom`` console script: ``probe`` without loading the CLI, everything else with it."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    if sys.argv[1:2] == ["probe"]:
        from sealroom.cli.probe import run

        run(sys.argv[2:])
        return
    from sealroom.cli.main import main as full

    full()
