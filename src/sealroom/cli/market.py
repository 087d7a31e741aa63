"""Marketplace commands: models for paid use, evaluations and reviews, portfolios, disputes,
reputation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    UrlOpt,
    command,
    emit,
    report,
)

# The SDK and the statement models load inside the commands (fast --help).

__all__ = ["register"]

model_app = typer.Typer(no_args_is_help=True, help="Publish, list and show models for paid use.")
evaluate_app = typer.Typer(
    no_args_is_help=True, help="Evaluate models you paid to use; review evaluations."
)
portfolio_app = typer.Typer(no_args_is_help=True, help="Curate portfolios of datasets.")
dispute_app = typer.Typer(no_args_is_help=True, help="File and resolve disputes.")

Digest = Annotated[str, typer.Argument(help="An id (sha256:...).")]


def _bare(view: Any, *also: str) -> dict[str, Any]:
    """A view's JSON without its signed envelope (checked, and long) nor the ``also`` keys."""
    data: dict[str, Any] = view.to_json_dict()
    for key in ("envelope", *also):
        data.pop(key, None)
    return data


def _print_model(view: Any) -> None:
    typer.echo(f"model      {view.model}")
    typer.echo(f"name       {view.name}")
    typer.echo(f"trainer    {view.trainer}")
    typer.echo(f"family     {view.family} of {view.target} on {', '.join(view.features)}")
    typer.echo(f"price      {view.price} per use")
    typer.echo(
        f"paid uses  {view.paid_uses}   evaluations {view.evaluations}   rating {view.rating}"
    )
    for name, value in sorted(view.metrics.items()):
        typer.echo(f"metric     {name} = {value}")
    p = view.provenance
    typer.echo(f"trained by {p['computation']['id']} {p['computation']['version']} ({p['kind']})")
    typer.echo(f"  request  {p.get('request') or p.get('trained_model')}")
    for r in p["receipts"]:
        typer.echo(f"  receipt  {r}")
    for i in p["inputs"]:
        typer.echo(f"  input    {i['dataset']} (root {i['commitment_root']})")
    typer.echo(f"artifact   {view.artifact}")


@model_app.command("publish")
def model_publish(
    result_dir: Annotated[
        Path,
        typer.Argument(help="Directory of a verified train-model result (`sealroom result`)."),
    ],
    name: Annotated[str, typer.Option("--name", help="The model's name on its card.")],
    price: Annotated[int, typer.Option("--price", min=0, help="Credits (minor units) per use.")],
    description: Annotated[str, typer.Option("--description")] = "",
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Most predictions one paid run returns.")
    ] = 10_000,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Publish your train-model result as a model for paid use: its weights as a sealed
    artifact dataset (predict only) and a signed Model with the training receipt."""
    from sealroom.client import market

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        done = market.publish_model(
            me.client,
            me.identity,
            result_dir,
            name=name,
            description=description,
            price=price,
            home=me.home,
            now=me.now(),
            max_rows=max_rows,
        )
        data = {**_bare(done.model), "artifact_path": str(done.artifact_path)}
        emit(json_output, data, lambda: _print_model(done.model))


@model_app.command("list")
def model_list(
    trainer: Annotated[str | None, typer.Option("--trainer")] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """List published models."""
    with command(json_output, url=url) as cmd:
        page = cmd.public().models(trainer=trainer)
        report(
            json_output,
            {"items": [_bare(m) for m in page.items]},
            rows=[[m.model, m.name, str(m.price), str(m.paid_uses), m.rating] for m in page.items],
            header=["model", "name", "price", "paid uses", "rating"],
        )


@model_app.command("show")
def model_show(
    model: Digest, url: UrlOpt = DEFAULT_URL_VALUE, json_output: JsonOpt = False
) -> None:
    """Show a model's card, after checking the trainer's signature on it."""
    from sealroom.statements.market_models import Model

    with command(json_output, url=url) as cmd:
        view = cmd.public().model(model)
        signed = view.envelope.open(Model)
        if signed.digest != view.model:
            from sealroom.errors import ProtocolError

            raise ProtocolError("the coordinator served another model than the one asked")
        emit(json_output, _bare(view), lambda: _print_model(view))


@evaluate_app.command("submit")
def evaluate_submit(
    model: Digest,
    use: Annotated[str, typer.Option("--use", help="Your completed, paid predict request.")],
    score: Annotated[str, typer.Option("--score", help="A decimal in [0, 1].")],
    summary: Annotated[str, typer.Option("--summary")] = "",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Evaluate a model you paid to use (one evaluation per paid use)."""
    from sealroom.client import market

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = market.evaluate(
            me.client, me.identity, model, use, score=score, summary=summary, now=me.now()
        )
        report(json_output, _bare(view), f"evaluation {view.evaluation}")


@evaluate_app.command("review")
def evaluate_review(
    evaluation: Digest,
    use: Annotated[str, typer.Option("--use", help="Your paid predict request of that model.")],
    rating: Annotated[int, typer.Option("--rating", min=1, max=5)],
    comment: Annotated[str, typer.Option("--comment")] = "",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Rate another party's evaluation of a model you also paid to use."""
    from sealroom.client import market

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = market.review(
            me.client, me.identity, evaluation, use, rating=rating, comment=comment, now=me.now()
        )
        report(json_output, _bare(view), f"review {view.review}")


@evaluate_app.command("list")
def evaluate_list(
    model: Digest, url: UrlOpt = DEFAULT_URL_VALUE, json_output: JsonOpt = False
) -> None:
    """A model's evaluations, each with its review rating."""
    with command(json_output, url=url) as cmd:
        page = cmd.public().model_evaluations(model)
        report(
            json_output,
            {"items": [_bare(e) for e in page.items]},
            rows=[
                [e.evaluation, e.evaluator, e.score, str(e.reviews), e.rating] for e in page.items
            ],
            header=["evaluation", "evaluator", "score", "reviews", "rating"],
        )


def _item(text: str) -> tuple[str, int]:
    dataset, sep, weight = text.rpartition("=")
    if not sep or not weight.isdigit():
        raise typer.BadParameter(f"{text!r}: expected DATASET=WEIGHT (basis points)")
    return dataset, int(weight)


@portfolio_app.command("create")
def portfolio_create(
    name: Annotated[str, typer.Option("--name")],
    item: Annotated[
        list[str], typer.Option("--item", help="DATASET=WEIGHT in basis points (sum 10000).")
    ],
    fee: Annotated[int, typer.Option("--fee", min=0, max=10_000, help="Basis points.")] = 0,
    description: Annotated[str, typer.Option("--description")] = "",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Sign and publish a portfolio of datasets with weights and your fee."""
    from sealroom.client import market

    items = [_item(i) for i in item]
    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = market.publish_portfolio(
            me.client,
            me.identity,
            name=name,
            description=description,
            items=items,
            fee=fee,
            now=me.now(),
        )
        report(json_output, _bare(view), f"portfolio {view.portfolio}")


@portfolio_app.command("show")
def portfolio_show(
    portfolio: Digest, url: UrlOpt = DEFAULT_URL_VALUE, json_output: JsonOpt = False
) -> None:
    """Show a portfolio: its datasets, owners, weights and the curator's fee."""
    with command(json_output, url=url) as cmd:
        view = cmd.public().portfolio(portfolio)
        report(
            json_output,
            _bare(view),
            f"portfolio {view.portfolio}: {view.name} (fee {view.fee} bp)",
            rows=[[i.dataset, i.owner, str(i.weight)] for i in view.items],
            header=["dataset", "owner", "weight (bp)"],
        )


@portfolio_app.command("pledge")
def portfolio_pledge(
    portfolio: Digest,
    request: Annotated[str, typer.Option("--request", help="Your request over its datasets.")],
    amount: Annotated[int, typer.Option("--amount", min=0)],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Attach a reward to your request over a portfolio; it is split when the request completes."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().client.pledge(portfolio, request, amount)
        report(
            json_output,
            view.to_json_dict(),
            f"pledge on {view.request}: {view.amount} ({view.status})",
            rows=[[s.payee, s.dataset or "(curator fee)", str(s.amount)] for s in view.shares],
            header=["payee", "dataset", "amount"],
        )


@dispute_app.command("file")
def dispute_file(
    request: Annotated[str, typer.Argument(help="The completed request you paid for.")],
    respondent: Annotated[str, typer.Option("--against", help="The party you paid.")],
    amount: Annotated[int, typer.Option("--amount", min=0)],
    reason: Annotated[str, typer.Option("--reason")],
    subject: Annotated[str, typer.Option("--subject", help="charge or result")] = "result",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """File a signed dispute over what you paid for a request (its receipt is the evidence)."""
    from sealroom.client import market

    with command(json_output, url=url, home=home) as cmd:
        me = cmd.party()
        view = market.file_dispute(
            me.client,
            me.identity,
            request,
            respondent=respondent,
            subject=subject,
            amount=amount,
            reason=reason,
            now=me.now(),
        )
        report(json_output, _bare(view, "resolution"), f"dispute {view.dispute} open")


@dispute_app.command("list")
def dispute_list(
    url: UrlOpt = DEFAULT_URL_VALUE, home: HomeOpt = None, json_output: JsonOpt = False
) -> None:
    """Disputes you filed or answer."""
    with command(json_output, url=url, home=home) as cmd:
        page = cmd.party().client.disputes()
        report(
            json_output,
            {"items": [_bare(d, "resolution") for d in page.items]},
            rows=[
                [d.dispute, d.claimant, d.respondent, str(d.amount), d.status] for d in page.items
            ],
            header=["dispute", "claimant", "respondent", "amount", "status"],
        )


@dispute_app.command("resolve")
def dispute_resolve(
    dispute: Digest,
    outcome: Annotated[str, typer.Option("--outcome", help="upheld or dismissed")],
    keys: Annotated[
        Path,
        typer.Option(
            "--keys", envvar="SEALROOM_COORDINATOR_KEYS", help="The coordinator's keys directory."
        ),
    ],
    refund: Annotated[int, typer.Option("--refund", min=0)] = 0,
    reason: Annotated[str, typer.Option("--reason")] = "",
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """(Operator) Sign a resolution with the coordinator's arbiter key; an upheld dispute
    refunds through the credits ledger."""
    import time

    from sealroom.client import Client, market
    from sealroom.coordinator.keys import CoordinatorKeystore

    with command(json_output, url=url):
        arbiter = CoordinatorKeystore(directory=keys).arbiter(create=False)
        with Client(base_url=url, identity=arbiter) as client:
            view = market.resolve_dispute(
                client,
                arbiter,
                dispute,
                outcome=outcome,
                refund=refund,
                reason=reason,
                now=int(time.time()),
            )
        report(json_output, _bare(view, "resolution"), f"dispute {view.status}")


def reputation(
    party: Annotated[str, typer.Argument(help="A party id.")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """A party's reputation as trainer, evaluator, owner and curator (weighted by paid use)."""
    with command(json_output, url=url) as cmd:
        view = cmd.public().reputation(party)
        report(
            json_output,
            view.to_json_dict(),
            rows=[
                [r.role, r.score, str(r.weight), str(r.raters), str(r.upheld_against)]
                for r in view.roles
            ],
            header=["role", "score", "paid weight", "raters", "upheld disputes"],
        )


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.add_typer(evaluate_app, name="evaluate")
    app.add_typer(portfolio_app, name="portfolio")
    app.add_typer(dispute_app, name="dispute")
    app.command("reputation")(reputation)
