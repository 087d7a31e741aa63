"""Shared loaders for the computation tests."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pyarrow as pa

DATA = Path(__file__).resolve().parents[2] / "src" / "sealroom" / "data"


@cache
def shipped(name: str) -> pa.Table:
    with (DATA / f"{name}.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return pa.table({"text": [r["text"] for r in rows], "project": [r["project"] for r in rows]})


def texts(*records: str) -> pa.Table:
    return pa.table({"text": list(records)})
