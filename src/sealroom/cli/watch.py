"""``sealroom watch``: the owner's daemon (approve by policy, upload, notify a person of the rest)."""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    EXIT_FAILED,
    HomeOpt,
    JsonOpt,
    PccsUrlOpt,
    UrlOpt,
    command,
    read_file,
    warn_simulated,
)

if TYPE_CHECKING:
    from sealroom.client.watch import Notifier, Round

__all__ = ["register"]


def _round_json(r: Round) -> dict[str, Any]:
    return {
        "approved": [{"request": q, "dataset": d} for q, d in r.approved],
        "notified": [{"request": n.request, "dataset": n.dataset} for n in r.notified],
        "failed": [{"request": n.request, "dataset": n.dataset, "why": w} for n, w in r.failed],
        "error": r.error,
        "simulated": r.simulated,
    }


def _print_round(r: Round) -> None:
    for q, d in r.approved:
        typer.echo(f"approved   {q}  input {d}")
    for n in r.notified:
        typer.echo(f"notified   {n.request}  input {n.dataset}: {n.reason}")
    for n, why in r.failed:
        typer.secho(f"not told   {n.request}  input {n.dataset}: {why} (retried)", err=True)
    if r.error:
        typer.secho(f"round failed: {r.error}", fg="red", err=True)
    if r.simulated:
        warn_simulated()


def watch(
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, max=3600.0, help="Seconds between rounds.")
    ] = 10.0,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="POST each item that needs a person here (JSON)."),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--webhook-secret-file",
            help="Sign webhook bodies with HMAC-SHA256 under this file's bytes "
            "(header X-Sealroom-Signature: sha256=<hex>).",
        ),
    ] = None,
    hook: Annotated[
        str | None,
        typer.Option("--hook", help="Run this command (no shell) with each item as JSON on stdin."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One round, then exit (non-zero if it failed).")
    ] = False,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            "--allow-simulated",
            help="Seal approved data to a SIMULATED enclave (no hardware protection).",
        ),
    ] = False,
    pccs_url: PccsUrlOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Approve what your policies approve, upload the data, and notify a person of the rest.

    Runs until stopped (SIGINT/SIGTERM). Each item that needs a person is notified once
    (at least once: a failed notification is retried next round). With --json, one JSON
    object per round on stdout.
    """
    from sealroom.client.watch import CommandNotifier, WebhookNotifier, watch_round
    from sealroom.client.watch import watch as run_watch
    from sealroom.enclave.worker import stop_on_signals

    with command(
        json_output, url=url, home=home, allow_simulated=allow_simulated, pccs_url=pccs_url
    ) as cmd:
        notifiers: list[Notifier] = []
        if webhook is not None:
            secret = (
                read_file(webhook_secret_file, "webhook secret") if webhook_secret_file else None
            )
            notifiers.append(WebhookNotifier(webhook, secret=secret))
        elif webhook_secret_file is not None:
            raise typer.BadParameter("--webhook-secret-file needs --webhook")
        if hook is not None:
            notifiers.append(CommandNotifier(tuple(shlex.split(hook))))
        party = cmd.party()

        def report(r: Round) -> None:
            if json_output:
                typer.echo(json.dumps(_round_json(r), sort_keys=True))
            else:
                _print_round(r)

        if once:
            r = watch_round(party, notifiers=notifiers, allow_simulated=allow_simulated)
            report(r)
            if r.failed:
                raise typer.Exit(EXIT_FAILED)
            return
        if not json_output:
            typer.echo(f"watching the inbox of {party.name} every {interval:g}s (Ctrl-C stops)")
        stop = threading.Event()
        with stop_on_signals(stop):
            run_watch(
                party,
                notifiers=notifiers,
                stop=stop,
                interval=interval,
                allow_simulated=allow_simulated,
                on_round=report,
            )


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
