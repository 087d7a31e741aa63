"""The public card on the command line: the terms an owner drops, and the dry run's display."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.common import read_file
from sealroom.errors import InvalidInput

if TYPE_CHECKING:
    from sealroom.client.flows import CardPreview

__all__ = ["card_json", "drop_terms", "print_card"]


def drop_terms(terms: Sequence[str], path: Path | None) -> tuple[str, ...]:
    """``--drop-term`` values and the lines of ``--drop-terms FILE`` (blank lines and lines
    starting with ``#`` skipped)."""
    found = [t.strip() for t in terms]
    if path is not None:
        try:
            text = read_file(path, "drop-terms file").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"drop-terms file {path} is not UTF-8 text") from None
        found += [line.strip() for line in text.splitlines()]
    return tuple(t for t in found if t and not t.startswith("#"))


def card_json(preview: CardPreview) -> dict[str, Any]:
    card = preview.card
    return {
        "dry_run": True,
        "signed": False,
        "k": card.k,
        "entity_column": card.entity_column,
        "columns": {
            "text": card.columns.text,
            "time": card.columns.time,
            "project": card.columns.project,
        },
        "dropped": list(card.dropped),
        "row_count": preview.commitment.rows,
        "commitment": preview.commitment.model_dump(mode="json"),
        "card": preview.fields,
    }


def _day(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).date().isoformat()


def print_card(preview: CardPreview) -> None:
    card, fields = preview.card, preview.fields
    unit = f"entities of {card.entity_column!r}" if card.entity_column else "records"
    typer.echo("dry run: nothing was signed or sent. The card `publish` would sign:")
    typer.echo(f"  threshold    a keyword needs k = {card.k} distinct {unit}")
    cols = ", ".join(
        f"{what} {name or '(none)'}"
        for what, name in (
            ("text", card.columns.text),
            ("time", card.columns.time),
            ("project", card.columns.project),
        )
    )
    typer.echo(f"  columns      {cols}")
    if card.dropped:
        typer.echo(f"  dropped      {', '.join(card.dropped)}")
    c = preview.commitment
    typer.echo(f"  commitment   {c.root} ({c.format}, {c.length} bytes)")
    span = fields["time_range"]
    if span is not None:
        typer.echo(f"  time range   {_day(span['start'])} .. {_day(span['end'])} (whole UTC days)")
    profile = fields["profile"]
    volume = [f"{c.rows} records"] + [
        f"{profile[key]} {label}"
        for key, label in (("projects", "projects"), ("active_days", "active days"))
        if profile[key] is not None
    ]
    typer.echo(f"  volume       {', '.join(volume)}")
    typer.echo(f"  topics       {', '.join(fields['topics']) or '(none)'}")
    typer.echo(f"  focus        {profile['primary_focus'] or '(none)'}")
    typer.echo(f"  expertise    {', '.join(profile['expertise']) or '(none)'}")
    typer.echo(f"  keywords     {len(fields['keywords'])} (term: distinct {unit})")
    for kw in fields["keywords"]:
        typer.echo(f"    {kw['term']}: {kw['count']}")
    schema = ", ".join(f"{col['name']} {col['type']}" for col in fields["schema"])
    typer.echo(f"  schema       {schema}")
