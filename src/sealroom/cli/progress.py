"""Live progress of a long CLI step on stderr (rich), for a person at a terminal only.

A step shows a spinner, what it is doing, a detail line (messages exchanged, the request's
status, the verification step) and the time elapsed. It is drawn only when stderr is a
terminal and the command was not given ``--json`` or ``--no-progress``: stdout is never
touched, so output piped to a program or an agent is the same with or without it. rich is
imported only when a bar is drawn (tests/cli/test_cli_startup.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Protocol

import typer

__all__ = ["NoProgressOpt", "Step", "shows", "step"]

NoProgressOpt = Annotated[
    bool,
    typer.Option(
        "--no-progress",
        help="No progress display on stderr (also off with --json or when stderr is not a "
        "terminal).",
    ),
]


class Step(Protocol):
    """What a long step reports as it goes."""

    def detail(self, text: str) -> None:
        """Replace the detail shown next to the step's label."""

    def label(self, text: str) -> None:
        """Replace the step's label (a new phase of the same step)."""


class _Quiet:
    def detail(self, text: str) -> None:
        pass

    def label(self, text: str) -> None:
        pass


class _Live:
    """Draws from the first report on, so prompts and messages printed before the step
    really starts (a peer's fingerprint to confirm, "waiting for ...") are not overdrawn."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._bar: Any = None
        self._task: Any = None

    def _started(self) -> Any:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            columns = (
                SpinnerColumn(finished_text="[green]done[/green]"),
                TextColumn("{task.description}"),
                TextColumn("[dim]{task.fields[detail]}[/dim]"),
                TimeElapsedColumn(),
            )
            self._bar = Progress(*columns, console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self._label, total=None, detail="")
        return self._bar

    def detail(self, text: str) -> None:
        self._started().update(self._task, detail=text)

    def label(self, text: str) -> None:
        self._started().update(self._task, description=text)

    def stop(self, finished: bool) -> None:
        if self._bar is not None:
            if finished:
                self._bar.update(self._task, total=1, completed=1)
            self._bar.stop()


def shows(json_output: bool, no_progress: bool) -> bool:
    """Whether to draw progress: a person at a terminal, not a program reading JSON."""
    return not json_output and not no_progress and sys.stderr.isatty()


@contextmanager
def step(label: str, *, show: bool) -> Iterator[Step]:
    """A live spinner line on stderr for the block, from its first report (nothing when not
    ``show``). The line stays when the block ends, with its last detail and elapsed time,
    so a person scrolling back sees how long each step took."""
    if not show:
        yield _Quiet()
        return
    live = _Live(label)
    finished = False
    try:
        yield live
        finished = True
    finally:
        live.stop(finished)
