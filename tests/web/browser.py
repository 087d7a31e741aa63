"""Helpers for the browser tests: where Chromium is, screenshots, and page checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def output_dir(name: str) -> Path:
    """``$SEALROOM_TEST_OUTPUT/<name>`` (default ``test-output/<name>``), created."""
    out = Path(os.environ.get("SEALROOM_TEST_OUTPUT", "test-output")) / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def labelled(page: Any) -> None:
    """Every visible form control has a label (what a screen reader announces)."""
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && e.labels.length === 0)
            .map(e => e.name || e.id)"""
    )
    assert unlabelled == [], unlabelled


def fits(page: Any) -> None:
    """Nothing sticks out sideways (the page works at this width)."""
    wide = page.evaluate("document.documentElement.scrollWidth") - page.viewport_size["width"]
    assert wide <= 1, f"the page is {wide}px wider than the viewport"
