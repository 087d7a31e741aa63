"""``sealroom credits`` and ``sealroom quote``: balances, payments, prices, and the operator's
grants and audit.

A party's commands go through the API with its keystore. ``grant`` and ``audit`` are the
operator's: they open the coordinator's database and keys directly (like ``serve
--prepare``), because issuing credits is the deployment's act, not a party's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    command,
    emit,
    handle_errors,
    report,
    table,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sealroom.coordinator.credits import Credits
    from sealroom.wire import Quote

__all__ = ["register"]

credits_app = typer.Typer(
    no_args_is_help=True,
    help="Credits: your balance and transfers, direct payments, the ledger; operator grants "
    "and audits.",
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar=["SEALROOM_DB", "SEALROOM_DATABASE_URL"],
        help="The coordinator's database URL (operator commands).",
    ),
]
KeysOpt = Annotated[
    Path | None,
    typer.Option(
        "--keys",
        envvar="SEALROOM_COORDINATOR_KEYS",
        file_okay=False,
        help="The coordinator's keys directory (default for SQLite: <db file>.keys/).",
    ),
]
OriginOpt = Annotated[
    str,
    typer.Option("--log-origin", envvar="SEALROOM_LOG_ORIGIN", help="The log's origin."),
]


@credits_app.command("balance")
def balance(
    url: UrlOpt = DEFAULT_URL_VALUE, home: HomeOpt = None, json_output: JsonOpt = False
) -> None:
    """Your balance and every transfer that touched your account, verified: each is signed by
    the ledger key and in the log you trust, they sum to the balance, and no escrow exceeds the
    max_price you signed."""
    from sealroom.client import flows
    from sealroom.statements import Transfer

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = flows.verified_credits(me.client, me.identity, home=me.home)

        def human() -> None:
            typer.echo(f"account   {view.account}")
            typer.echo(f"balance   {view.balance}")
            rows = []
            for t in view.transfers:
                s = t.envelope.open(Transfer).statement
                mine = next(p.amount for p in s.postings if p.account == view.account)
                rows.append([str(s.seq), s.kind, f"{mine:+d}", s.memo or "-", str(t.log_index)])
            table(rows, ["seq", "kind", "amount", "memo", "log index"])

        emit(json_output, view.to_json_dict(), human)


@credits_app.command("pay")
def pay(
    to: Annotated[str, typer.Argument(help="The payee's party id.")],
    amount: Annotated[int, typer.Argument(min=1, help="Minor units.")],
    key: Annotated[
        str,
        typer.Option("--key", help="Idempotency key: the same key again pays nothing twice."),
    ],
    memo: Annotated[str, typer.Option("--memo", help="Shown to both parties.")] = "",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Pay another party directly (a logged, signed transfer)."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().client.pay(to, amount, key=key, memo=memo)
        report(
            json_output,
            view.to_json_dict(),
            f"paid {amount} to {to} (transfer {view.envelope.digest})",
        )


@credits_app.command("ledger")
def ledger(url: UrlOpt = DEFAULT_URL_VALUE, json_output: JsonOpt = False) -> None:
    """The ledger's public key and the price schedule in force."""
    with command(json_output, url=url) as cmd:
        view = cmd.public().credits_ledger()

        def human() -> None:
            typer.echo(f"ledger key  {view.ledger}")
            p = view.pricing
            if not p.enabled:
                typer.echo("pricing     off: computations are free")
                return
            typer.echo(
                f"pricing     base {p.base_per_input}/input, {p.per_1k_rows}/1000 rows, "
                f"{p.per_mib}/MiB; class {p.class_bps} bps; exact {p.exact_bps} bps, "
                f"dp {p.dp_bps} bps; fee {p.fee_bps} bps; free tier {p.free_tier}"
            )

        emit(json_output, view.to_json_dict(), human)


def _operator_credits(db: str, keys: Path | None, log_origin: str) -> tuple[Credits, Engine]:
    from sealroom.coordinator.credits import operator_credits
    from sealroom.coordinator.keys import CoordinatorKeystore
    from sealroom.storage.engine import create_engine
    from sealroom.storage.migrate import upgrade

    keystore = CoordinatorKeystore(directory=keys) if keys else CoordinatorKeystore.beside(db)
    engine = create_engine(db)
    try:
        upgrade(engine)
        return operator_credits(engine, keystore, log_origin), engine
    except BaseException:
        engine.dispose()
        raise


@credits_app.command("grant")
def grant(
    party: Annotated[
        str, typer.Argument(help="The registered party to credit, or `rewards` (the pool).")
    ],
    amount: Annotated[int, typer.Argument(min=1, help="Minor units.")],
    key: Annotated[str, typer.Option("--key", help="Idempotency key for this grant.")],
    db: DbOpt,
    memo: Annotated[str, typer.Option("--memo")] = "",
    keys: KeysOpt = None,
    log_origin: OriginOpt = "sealroom.local/log",
    json_output: JsonOpt = False,
) -> None:
    """Operator: issue new credits to a party (a logged grant out of issuance)."""
    import time

    from sealroom.crypto.keys import PartyId
    from sealroom.wire.credits import account_of

    with handle_errors(json_output):
        service, engine = _operator_credits(db, keys, log_origin)
        try:
            if party == "rewards":
                posted = service.fund_rewards(
                    amount, key=f"grant:{key}", memo=memo, now=int(time.time())
                )
                after = service.balance("rewards")
            else:
                posted = service.grant(
                    PartyId(party), amount, key=f"grant:{key}", memo=memo, now=int(time.time())
                )
                after = service.balance(account_of(party))
        finally:
            engine.dispose()
        data = {
            "transfer": posted.transfer.digest,
            "created": posted.created,
            "party": party,
            "balance": after,
        }
        word = "granted" if posted.created else "already granted (same key)"
        report(json_output, data, f"{word} {amount} to {party}: balance {after}")


@credits_app.command("audit")
def audit(
    db: DbOpt,
    keys: KeysOpt = None,
    log_origin: OriginOpt = "sealroom.local/log",
    json_output: JsonOpt = False,
) -> None:
    """Operator: recompute every balance from the log's entries and compare with the database."""
    from sealroom.coordinator.credits import audit as run_audit
    from sealroom.errors import VerificationFailed

    with handle_errors(json_output):
        service, engine = _operator_credits(db, keys, log_origin)
        try:
            recomputed, stored = run_audit(engine, service.ledger.identity.public)
        finally:
            engine.dispose()
        if dict(recomputed.accounts) != stored:
            differ = sorted(set(recomputed.accounts.items()) ^ set(stored.items()))
            raise VerificationFailed(f"the database's balances differ from the log: {differ[:5]}")
        data = {
            "transfers": recomputed.transfers,
            "head": recomputed.head,
            "accounts": len(stored),
            "issued": -stored.get("issuance", 0),
        }
        report(
            json_output,
            data,
            f"OK: {recomputed.transfers} transfers recomputed from the log equal the "
            f"database's {len(stored)} balances ({data['issued']} issued)",
        )


def quote(
    computation: Annotated[str, typer.Argument(help="Computation id.")],
    dataset: Annotated[list[str], typer.Option("--dataset", help="Input dataset id (repeatable).")],
    params: Annotated[
        str | None, typer.Option("--params", help="Parameters as one JSON object, or @FILE.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="One parameter key=value (repeatable).")
    ] = None,
    recipient: Annotated[
        list[str] | None,
        typer.Option("--recipient", help="A recipient party id (repeatable; default: you)."),
    ] = None,
    terms: Annotated[
        list[str] | None,
        typer.Option("--terms", help="Your acceptance of an offer (repeatable)."),
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """The price a request would be escrowed at when approved, before anything is signed."""
    from sealroom.cli.party import request_params

    with command(json_output, url=url, home=home) as cmd:
        party = cmd.party()
        values = request_params(params, param or [])
        view = party.client.quote(
            computation, values, dataset, recipient or [party.party_id], terms or []
        )
        emit(json_output, view.to_json_dict(), lambda: print_quote(view))


def print_quote(view: Quote) -> None:
    typer.echo(f"computation  {view.computation} ({view.privacy_class}, {view.mode})")
    if view.free:
        typer.echo(f"price        0 ({view.why_free})")
        return
    table(
        [[i.dataset, i.owner, str(i.rows), str(i.bytes), str(i.amount)] for i in view.inputs],
        ["dataset", "owner", "rows", "bytes", "price"],
    )
    typer.echo(f"price        {view.price} (platform fee {view.fee}, {view.fee_bps} bps)")


offer_app = typer.Typer(
    no_args_is_help=True,
    help="Negotiated terms: owners offer a price and usage bonus, requesters accept.",
)


@offer_app.command("make")
def offer_make(
    dataset: Annotated[str, typer.Argument(help="Your dataset's id.")],
    computation: Annotated[str, typer.Argument(help="The computation the terms are for.")],
    price: Annotated[int, typer.Option("--price", min=0, help="Replaces the schedule's price.")],
    bonus: Annotated[
        int, typer.Option("--bonus", min=0, help="Usage bonus paid on top per receipt.")
    ] = 0,
    to: Annotated[
        str | None, typer.Option("--to", help="The requester it is for (default: anyone).")
    ] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=60, help="Seconds until it expires.")] = 7
    * 86_400,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Offer terms for one of your datasets (a signed, logged Offer)."""
    from sealroom.client import flows

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = flows.offer(
            me.client,
            me.identity,
            dataset,
            computation,
            price=price,
            usage_bonus=bonus,
            requester=to,
            now=me.now(),
            ttl=ttl,
        )
        report(json_output, view.to_json_dict(), f"offer {view.envelope.digest}")


@offer_app.command("list")
def offer_list(
    url: UrlOpt = DEFAULT_URL_VALUE, home: HomeOpt = None, json_output: JsonOpt = False
) -> None:
    """Unexpired offers you made or may accept."""
    from sealroom.statements import Offer

    with command(json_output, url=url, home=home) as cmd:
        items = cmd.party().client.offers()

        def human() -> None:
            rows = []
            for v in items:
                o = v.envelope.open(Offer).statement
                rows.append(
                    [
                        v.envelope.digest,
                        o.dataset,
                        o.computation,
                        str(o.price),
                        str(o.usage_bonus),
                        o.requester or "anyone",
                    ]
                )
            table(rows, ["offer", "dataset", "computation", "price", "bonus", "for"])

        emit(json_output, {"items": [v.to_json_dict() for v in items]}, human)


@offer_app.command("accept")
def offer_accept(
    offer: Annotated[str, typer.Argument(help="The offer's digest.")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Accept an offer; name the printed digest in `sealroom request --terms`."""
    from sealroom.client import flows

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        digest = flows.accept(me.client, me.identity, offer, now=me.now())
        report(json_output, {"accept": digest}, f"accept {digest}")


@credits_app.command("live")
def live(
    dataset: Annotated[
        list[str], typer.Option("--dataset", help="Your listed dataset (repeatable).")
    ],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer this period's liveness challenge: base rewards for your available datasets."""
    from sealroom.client import flows

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = flows.answer_liveness(me.client, me.identity, dataset, now=me.now())
        report(
            json_output,
            view.to_json_dict(),
            f"period {view.period}",
            rows=[[i.dataset, str(i.amount), i.reason] for i in view.items],
            header=["dataset", "reward", "result"],
        )


def register(app: typer.Typer) -> None:
    app.add_typer(credits_app, name="credits")
    app.add_typer(offer_app, name="offer")
    app.command("quote")(quote)
