"""``sealroom psi | pjc | train``: protocols run directly between parties, no enclave trusted.

One party starts a run naming its peer(s) (``--with PARTY``); the others join
(``--join``, optionally ``--session ID``). Messages go through the
coordinator's relay sealed and signed; at the end each party holds what the
protocol gave it and every participant's signed receipt (``--out FILE``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, cast

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    command,
    emit,
    who,
)
from sealroom.cli.progress import NoProgressOpt, Step, shows, step
from sealroom.errors import InvalidInput, PolicyDenied

if TYPE_CHECKING:
    import pyarrow as pa

    from sealroom.client import Party, ProtocolRun
    from sealroom.client.relay import Session

DEFAULT_TIMEOUT = 120.0
"""``sealroom.protocols.channel.DEFAULT_TIMEOUT`` (a test keeps them equal), repeated here so
start-up need not import the protocols."""

__all__ = ["register"]

WithOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--with",
        help="Start a run with this party (party id; repeatable for training); with --join: "
        "join only a run that includes this party.",
    ),
]
JoinOpt = Annotated[
    bool, typer.Option("--join", help="Join a run another party started (waits for it).")
]
SessionOpt = Annotated[
    str | None, typer.Option("--session", help="With --join: the session id to join.")
]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Local data file (JSONL or CSV).")]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="Your published dataset id: its file (from --data or your dataset index) is "
        "checked against its signed commitment and named in the receipts.",
    ),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Write the run record (all signed receipts) here.")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for a peer at any step.")
]


def _table(party: Party, *, data: Path | None, dataset: str | None) -> tuple[pa.Table, list[str]]:
    """The rows this party brings, and the attested datasets its receipt will name."""
    if dataset is not None:
        att, table = party.load_dataset(dataset, data=data)
        return table, [att.digest]
    if data is None:
        raise InvalidInput("give the data: --data FILE and/or --dataset ID")
    from sealroom.connectors.files import read_table

    return read_table(data), []


PeerFingerprintOpt = Annotated[
    str | None,
    typer.Option(
        "--peer-fingerprint",
        help="With --join: the inviter's fingerprint (its `sealroom whoami` shows it); a run "
        "started by anyone else is refused before any data is used.",
    ),
]


def _others(session: Session) -> list[str]:
    return [session.parties[r].party_id for r in session.roles if r != session.me]


def _waiting(session: Session) -> None:
    others = ", ".join(who(p) for p in _others(session))
    typer.echo(f"session {session.id}: waiting for {others}", err=True)


def _exchanged(shown: Step) -> Callable[[int, int], None]:
    """The run's traffic as the live detail: messages and bytes, sent and received."""

    def report(messages: int, size: int) -> None:
        shown.detail(f"{messages} messages, {size / 2**20:.2f} MiB exchanged")

    return report


def _join_checks(
    party: Party,
    *,
    join: bool,
    with_party: list[str] | None,
    peer_fingerprint: str | None,
    json_output: bool,
) -> tuple[list[str], Callable[[Session], None] | None]:
    """Who a joiner accepts as its peer: named by id (``--with``), by fingerprint, or, on a
    terminal, confirmed by a person who sees the inviter's name and fingerprint. A run
    started by an unsolicited party never gets the joiner's data."""
    if not join:
        if peer_fingerprint is not None:
            raise InvalidInput("--peer-fingerprint is for --join: it names the inviter")
        return [], None
    if with_party and peer_fingerprint is not None:
        raise InvalidInput("--join takes --with PARTY or --peer-fingerprint FP, not both")
    if with_party:
        return list(with_party), None
    if peer_fingerprint is not None:
        from sealroom.crypto.keys import matches_fingerprint

        wanted = peer_fingerprint

        def check(session: Session) -> None:
            for other in _others(session):
                if not matches_fingerprint(other, wanted):
                    raise PolicyDenied(
                        f"session {session.id} was started by {who(other, party.client)}, "
                        f"whose fingerprint is not {wanted}; not joining"
                    )

        return [], check
    if json_output or not sys.stdin.isatty():
        raise InvalidInput(
            "--join needs to know the peer: --with PARTY_ID, or --peer-fingerprint FP "
            "(the inviter's `sealroom whoami` shows both)"
        )

    def confirm(session: Session) -> None:
        others = ", ".join(who(p, party.client) for p in _others(session))
        typer.echo(f"session {session.id} ({session.protocol}) was started by {others}", err=True)
        if not typer.confirm("Is this the party you expect? Join and use your data", err=True):
            raise PolicyDenied(f"not joining session {session.id}: not confirmed")

    return [], confirm


def _finish(
    run: ProtocolRun, out: Path | None, json_output: bool, human: Callable[[], None]
) -> None:
    from sealroom.crypto.files import write_private

    doc = run.to_dict()
    if out is not None:
        # The holder's own outputs in full (an intersection too): private to it, so 0600.
        write_private(out, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    emit(json_output, doc, human)
    if not json_output:
        signed = len(run.record.receipts)
        typer.echo(f"receipts: {signed} of {len(run.session.roles)} participants signed")
        if out is not None:
            typer.echo(f"run record written to {out}")


def psi(
    with_party: WithOpt = None,
    join: JoinOpt = False,
    session: SessionOpt = None,
    peer_fingerprint: PeerFingerprintOpt = None,
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    column: Annotated[
        str | None, typer.Option("--column", help="Column whose values form your set.")
    ] = None,
    keywords: Annotated[
        bool,
        typer.Option(
            "--keywords",
            help="Private discovery: use your data's full keyword set (text column), not a column.",
        ),
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="cardinality (both learn the size) | intersection (the starter learns it).",
        ),
    ] = "cardinality",
    threshold: Annotated[
        int, typer.Option("--threshold", help="Abort without any size below this many.")
    ] = 0,
    workers: Annotated[int, typer.Option("--workers", help="Processes for the group work.")] = 1,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    out: OutOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Private set intersection with another party (ECDH-PSI over Curve25519).

    Both parties must give the same --mode and --threshold. In cardinality mode both
    learn |A ∩ B| and the Jaccard index; in intersection mode the starter learns the
    common values and the joiner learns only the starter's set size.
    """
    with command(json_output, url=url, home=home) as cmd:
        if keywords == (column is not None):
            raise InvalidInput("choose the set: --column NAME or --keywords")
        party = cmd.party()
        expect, on_join = _join_checks(
            party,
            join=join,
            with_party=with_party,
            peer_fingerprint=peer_fingerprint,
            json_output=json_output,
        )
        table, inputs = _table(party, data=data, dataset=dataset)
        from sealroom.client.columns import column as read_column

        terms: list[str] | None = None
        elements: list[bytes] = []
        if keywords:
            from sealroom.connectors.profile import profile_table
            from sealroom.protocols.psi import KEYWORD_MAX

            terms = [t for t, _ in profile_table(table, k=1, max_keywords=KEYWORD_MAX).keywords]
        else:
            assert column is not None
            elements = [str(v).encode() for v in read_column(table, column) if v is not None]
        with step("private set intersection", show=shows(json_output, no_progress)) as shown:
            outcome = party.psi(
                elements,
                keywords=terms,
                start_with=() if join else with_party or (),
                join=join,
                expect=expect,
                on_join=on_join,
                session=session,
                mode=cast(Literal["cardinality", "intersection"], mode),
                threshold=threshold,
                workers=workers,
                inputs=inputs,
                timeout=timeout,
                on_start=_waiting,
                on_exchange=_exchanged(shown),
            )
        common = outcome.intersection
        values = sorted(v.decode("utf-8", "replace") for v in common) if common else None

        def human() -> None:
            typer.echo(
                f"private set intersection ({mode}) as {outcome.session.me} "
                f"in session {outcome.session.id}"
            )
            for key, value in sorted(outcome.learned.items()):
                typer.echo(f"  {key}: {value}")
            if values is not None:
                shown = ", ".join(values[:50])
                more = (
                    f" ... and {len(values) - 50} more (all in --out or --json)"
                    if len(values) > 50
                    else ""
                )
                typer.echo(f"  intersection ({len(values)}): {shown}{more}")

        _finish(outcome, out, json_output, human)


def pjc(
    with_party: WithOpt = None,
    join: JoinOpt = False,
    session: SessionOpt = None,
    peer_fingerprint: PeerFingerprintOpt = None,
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    id_column: Annotated[str, typer.Option("--id-column", help="Column of identifiers.")] = "id",
    value_column: Annotated[
        str | None,
        typer.Option(
            "--value-column",
            help="Column of non-negative integers: makes you the party whose values are summed.",
        ),
    ] = None,
    min_intersection: Annotated[
        int, typer.Option("--min-intersection", help="No sum below this many common ids.")
    ] = 10,
    max_value: Annotated[
        int, typer.Option("--max-value", help="Largest allowed value (bounds the sum).")
    ] = 1_000_000,
    dp_epsilon: Annotated[
        str | None,
        typer.Option("--dp-epsilon", help="Add DP noise to the sum (values' owner adds it)."),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Processes for the group work.")] = 1,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    out: OutOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Private intersection-sum (Private Join and Compute): the ids-only party learns the
    number of common ids and the sum of the other party's values over them, nothing else.

    Both parties must give the same --min-intersection, --max-value and --dp-epsilon.
    """
    with command(json_output, url=url, home=home) as cmd:
        party = cmd.party()
        expect, on_join = _join_checks(
            party,
            join=join,
            with_party=with_party,
            peer_fingerprint=peer_fingerprint,
            json_output=json_output,
        )
        table, inputs = _table(party, data=data, dataset=dataset)
        from sealroom.client.columns import column as read_column

        ids_raw = read_column(table, id_column)
        if any(v is None for v in ids_raw):
            raise InvalidInput(f"column {id_column!r} has empty identifiers")
        ids = [str(v).encode() for v in ids_raw]
        values: list[int] | None = None
        if value_column is not None:
            raw = read_column(table, value_column)
            if not all(type(v) is int for v in raw):
                raise InvalidInput(f"column {value_column!r} must hold integers only")
            values = raw
        with step("private intersection-sum", show=shows(json_output, no_progress)) as shown:
            outcome = party.pjc(
                ids,
                values,
                start_with=() if join else with_party or (),
                join=join,
                expect=expect,
                on_join=on_join,
                session=session,
                min_intersection=min_intersection,
                max_value=max_value,
                dp_epsilon=dp_epsilon,
                workers=workers,
                inputs=inputs,
                timeout=timeout,
                on_start=_waiting,
                on_exchange=_exchanged(shown),
            )

        def human() -> None:
            s = outcome.session
            typer.echo(f"private intersection-sum as {s.me} in session {s.id}")
            for key, value in sorted(outcome.learned.items()):
                typer.echo(f"  {key}: {value}")

        _finish(outcome, out, json_output, human)


def train(
    federated: Annotated[
        bool, typer.Option("--federated", help="Federated averaging over secure aggregation.")
    ] = False,
    he: Annotated[
        bool, typer.Option("--he", help="Gradient descent on CKKS-encrypted parameters.")
    ] = False,
    with_party: WithOpt = None,
    join: JoinOpt = False,
    session: SessionOpt = None,
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    features: Annotated[
        str, typer.Option("--features", help="Comma-separated numeric feature columns.")
    ] = "",
    label: Annotated[str, typer.Option("--label", help="The 0/1 label column.")] = "label",
    model: Annotated[
        str, typer.Option("--model", help="logistic | linear (--he only; federated is logistic).")
    ] = "logistic",
    rounds: Annotated[int, typer.Option("--rounds", help="Training rounds.")] = 20,
    learning_rate: Annotated[
        str, typer.Option("--learning-rate", help="Step size (decimal).")
    ] = "0.5",
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    out: OutOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Train a model on several owners' data that never leaves them.

    The starter (--with OWNER, repeated) is the aggregator (--federated) or the trainer
    (--he) and brings no data; each owner joins with --data/--dataset. Everyone must
    give the same --features (names and order), --rounds and --learning-rate. At the end
    the trainer signs a model statement with its provenance, which every owner checks
    and commits to in its receipt.
    """
    with command(json_output, url=url, home=home) as cmd:
        if federated == he:
            raise InvalidInput("choose one: --federated or --he")
        names = [f.strip() for f in features.split(",") if f.strip()]
        starting = bool(with_party)
        if starting and (data is not None or dataset is not None):
            raise InvalidInput("the starter aggregates or trains and brings no data here")
        party = cmd.party()
        rows = None
        inputs: list[str] = []
        if not starting:
            table, inputs = _table(party, data=data, dataset=dataset)
            from sealroom.client.columns import training_arrays

            rows = training_arrays(table, features=names, label=label)
        with step("training", show=shows(json_output, no_progress)) as shown:
            outcome = party.train(
                "federated" if federated else "he",
                features=names,
                data=rows,
                start_with=with_party or (),
                join=join,
                session=session,
                model=cast(Literal["logistic", "linear"], model),
                rounds=rounds,
                learning_rate=learning_rate,
                inputs=inputs,
                timeout=timeout,
                on_start=_waiting,
                on_exchange=_exchanged(shown),
            )

        def human() -> None:
            s = outcome.session
            typer.echo(f"{'federated' if federated else 'HE'} training as {s.me} in session {s.id}")
            learned = outcome.learned
            typer.echo(f"  model statement: {learned['model']}")
            for name, w in zip(names, learned["weights"], strict=True):
                typer.echo(f"  {name:>20}  {w}")
            typer.echo(f"  {'intercept':>20}  {learned['intercept']}")

        _finish(outcome, out, json_output, human)


def register(app: typer.Typer) -> None:
    app.command("psi")(psi)
    app.command("pjc")(pjc)
    app.command("train")(train)
