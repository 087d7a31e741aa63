"""A file of clinic notes where a few records name a patient: the card's attack data."""

from __future__ import annotations

import json
from pathlib import Path

PATIENT_NOTE = "Saw patient Zebulon Quixote, diagnosis lymphoblastic leukaemia."


def write_clinic_notes(path: Path) -> Path:
    """200 notes (column ``note``) by 70 clinicians (``who``) on 4 wards (``ward``) over two
    days (``when``, ISO times); 6 of them name a patient and a diagnosis."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(200):
            if i % 33 == 0 and i < 198:
                text = PATIENT_NOTE
            else:
                text = f"Ward round {i % 7}: routine checks, medication review, discharge planning."
            when = f"2023-11-{14 + i // 100}T{i % 24:02d}:00:00Z"
            row = {"when": when, "ward": f"w{i % 4}", "note": text, "who": f"c{i % 70}"}
            fh.write(json.dumps(row) + "\n")
    return path
