"""Party commands: publish and discover datasets, request, approve, follow and fetch results."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sealroom.cli.common import (
    DEFAULT_URL_VALUE,
    HomeOpt,
    JsonOpt,
    PccsUrlOpt,
    UrlOpt,
    command,
    emit,
    progress_bar,
    read_file,
    readable_numbers,
    table,
    warn_simulated,
    who,
)
from sealroom.cli.exits import ExitCode, exit_code_for_status
from sealroom.cli.progress import NoProgressOpt, shows, step
from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.text import printable

if TYPE_CHECKING:
    from sealroom.client import Client
    from sealroom.wire import DatasetView, RequestView

# The SDK, the computation registry and the statement models load inside the commands
# that use them: `sealroom version` and `--help` stay fast (bench/ measures it).

__all__ = ["dataset_app", "register"]

dataset_app = typer.Typer(no_args_is_help=True, help="Publish and look up datasets.")

AllowSimulated = Annotated[
    bool,
    typer.Option(
        "--allow-simulated",
        help="Accept a SIMULATED enclave (software only, protects nothing). Tests only.",
    ),
]

SimulationRootOpt = Annotated[
    str | None,
    typer.Option(
        "--simulation-root",
        envvar="SEALROOM_SIMULATION_ROOT",
        help="Pin the deployment's simulation root (hex): seal only to, and accept results "
        "only from, simulated enclaves under it (default: pinned on first use).",
    ),
]


def _root(value: str | None) -> bytes | None:
    from sealroom.attestation.pins import parse_simulation_root

    return None if value is None else parse_simulation_root(value)


def _short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _dataset_json(view: DatasetView) -> dict[str, Any]:
    data = view.to_json_dict()
    data.pop("envelope", None)
    return data


def _print_dataset(view: DatasetView) -> None:
    typer.echo(f"dataset      {view.dataset}")
    typer.echo(f"title        {printable(view.title)}")
    typer.echo(f"owner        {who(view.owner, view.owner_name)}  {view.owner}")
    typer.echo(f"status       {view.status}")
    typer.echo(f"rows         {view.row_count}")
    if view.time_range is not None:
        typer.echo(f"time range   {view.time_range.start} .. {view.time_range.end}")
    if view.topics:
        typer.echo(f"topics       {', '.join(view.topics)}")
    if view.keywords:
        kws = ", ".join(
            k.term + (f" ({k.count})" if k.count is not None else "") for k in view.keywords[:15]
        )
        typer.echo(f"keywords     {kws}")
    typer.echo(f"policy       {view.policy or '(none: the owner decides by hand)'}")
    typer.echo(f"log index    {view.log_index}")
    if view.description:
        typer.echo(f"\n{view.description}")


def _room_of(view: RequestView) -> str | None:
    from sealroom.statements import ComputationRequest

    return ComputationRequest.parse_payload(view.envelope.payload).room_policy


def _request_json(view: RequestView) -> dict[str, Any]:
    data = view.to_json_dict()
    data.pop("envelope", None)
    data["room_policy"] = _room_of(view)
    return data


def _print_params(params: dict[str, Any]) -> None:
    """Every parameter in full (an owner must see the SQL it approves): a multi-line string
    as indented lines, anything else as JSON; characters that could rewrite the screen are
    shown escaped."""
    if not params:
        typer.echo("parameters   (none)")
        return
    typer.echo("parameters")
    for key in sorted(params):
        value = params[key]
        if isinstance(value, str) and "\n" in value:
            typer.echo(f"  {printable(key)}:")
            for line in value.splitlines():
                typer.echo(f"    {printable(line)}")
        else:
            typer.echo(f"  {printable(key)}: {printable(json.dumps(value, ensure_ascii=False))}")


def _print_request(view: RequestView, names: Client | None = None) -> None:
    c = view.computation
    typer.echo(f"request      {view.request}")
    typer.echo(f"computation  {c.id} {c.version} ({c.code_digest})")
    typer.echo(f"requester    {who(view.requester, names)}  {view.requester}")
    typer.echo(f"created      {_when(view.created_at)}, expires {_when(view.expires_at)}")
    typer.echo(
        f"status       {view.status}"
        + (f": {printable(view.status_reason)}" if view.status_reason else "")
    )
    _print_params(view.parameters)
    room = _room_of(view)
    if room is not None:
        typer.echo(f"room policy  {room}")
    rows = [
        [
            i.dataset,
            who(i.owner, names),
            i.decision + (f" ({i.mode})" if i.mode else ""),
            "yes" if i.sealed else "no",
        ]
        for i in view.inputs
    ]
    table(rows, ["dataset", "owner", "decision", "sealed"])
    for p in view.precheck:
        how = "automatic" if p.automatic else ("allowed" if p.allowed else "DENIED")
        typer.echo(f"  policy pre-check {_short(p.dataset, 24)}: {how}: {'; '.join(p.reasons)}")


# --- datasets --------------------------------------------------------------------------------


def _policy_rules(path: Path) -> dict[str, Any]:
    """The rules object in ``path``, checked before anything is read, signed or sent."""
    from sealroom.policy import PolicyRules
    from sealroom.statements import parse_json_strict

    value = parse_json_strict(
        read_file(path, "policy file"), max_size=1 << 20, what=f"policy file {path}"
    )
    if not isinstance(value, dict):
        raise InvalidInput(f"policy file {path} must hold a JSON object of rules")
    try:
        PolicyRules.parse(value)
    except InvalidInput as exc:
        raise InvalidInput(f"policy file {path}: {exc.detail}") from None
    return value


def _delimiter(text: str | None) -> str | None:
    """``\\t`` and ``tab`` are a tab (a shell passes them as typed)."""
    return "\t" if text in ("\\t", "tab") else text


def _default_title(source: Any) -> str | None:
    """A title that discloses nothing the owner did not name: a file's or object's name, a
    table's name; a query or stdin needs --title."""
    from sealroom.connectors.postgres import PostgresSource
    from sealroom.connectors.s3 import S3Source
    from sealroom.connectors.sources import FileSource

    if isinstance(source, FileSource):
        return Path(source.path).name
    if isinstance(source, S3Source):
        return source.key.rsplit("/", 1)[-1]
    if isinstance(source, PostgresSource) and source.table is not None:
        return source.table
    return None


@dataset_app.command("publish")
def dataset_publish(
    source: Annotated[
        str,
        typer.Argument(
            help="The data: a file (.csv, .tsv, .jsonl, .ndjson or .parquet, each optionally "
            ".gz), - for stdin (with --format), postgresql://USER@HOST/DB (with --table or "
            "--query; the password from PGPASSWORD or ~/.pgpass) or s3://BUCKET/KEY (with the "
            "s3 extra installed).",
            metavar="SOURCE",
        ),
    ],
    title: Annotated[
        str | None,
        typer.Option("--title", help="Default: the file, object or table name."),
    ] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    policy: Annotated[
        Path | None, typer.Option("--policy", help="JSON file with the dataset's policy rules.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show the exact card that would be signed; sign and send nothing."
        ),
    ] = False,
    drop_term: Annotated[
        list[str] | None,
        typer.Option(
            "--drop-term",
            help="Leave TERM, and every term containing it, out of the card. Repeatable.",
        ),
    ] = None,
    drop_terms: Annotated[
        Path | None,
        typer.Option("--drop-terms", help="A file of terms to leave out, one per line."),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option("--text-column", help="Keywords come from this column (default: text)."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="Time range from this column (default: ts)."),
    ] = None,
    project_column: Annotated[
        str | None,
        typer.Option(
            "--project-column",
            help="Projects from this column (default: project). '' leaves any column out.",
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", help="csv, jsonl or parquet (default: from the name)."),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option("--delimiter", help="The CSV delimiter (default ','; '\\t' or tab: a tab)."),
    ] = None,
    pg_table: Annotated[
        str | None, typer.Option("--table", help="The PostgreSQL table (or schema.table).")
    ] = None,
    pg_query: Annotated[
        str | None,
        typer.Option("--query", help="A PostgreSQL SELECT, run in a READ ONLY transaction."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="The S3-compatible endpoint URL (default: AWS, or AWS_ENDPOINT_URL_S3).",
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Profile and commit your data, sign its attestation and publish it. The data stays here.

    The card (keywords used by at least the policy's k distinct entities) is public for
    good: look at it first with --dry-run."""
    from sealroom.cli import card as cli_card
    from sealroom.client import flows

    with command(json_output, url=url, home=home) as cmd:
        from sealroom.connectors.sources import open_source

        rules: dict[str, Any] | None = None
        if policy is not None:
            rules = _policy_rules(policy)
        data = open_source(
            source,
            format=format,
            delimiter=_delimiter(delimiter),
            table=pg_table,
            query=pg_query,
            endpoint=endpoint,
        )
        title = title or _default_title(data)
        if title is None and not dry_run:
            raise InvalidInput(f"name the dataset: --title (reading {data.name})")
        card = flows.CardOptions(
            text_column=text_column,
            time_column=time_column,
            project_column=project_column,
            drop_terms=cli_card.drop_terms(drop_term or (), drop_terms),
        )
        if dry_run:
            preview = flows.preview_card(data, policy_rules=rules, card=card)
            emit(json_output, cli_card.card_json(preview), lambda: cli_card.print_card(preview))
            return
        assert title is not None
        result = cmd.party().publish(
            data, title=title, description=description, policy=rules, card=card
        )
        out = {
            "dataset": result.dataset,
            "policy": result.policy,
            "rows": result.rows,
            "log_index": result.log_index,
            "checkpoint_size": result.checkpoint_size,
            "path": None if result.path is None else str(result.path),
            "source": result.source,
        }

        def human() -> None:
            typer.echo(f"published {result.dataset}")
            typer.echo(f"  {result.rows} rows from {result.source} (the data stays with you)")
            if data.locator() is None:
                typer.echo("  read from stdin: approving a request needs the data again (--data)")
            if result.policy:
                typer.echo(f"  policy {result.policy}")
            typer.echo(
                f"  in the transparency log at index {result.log_index} "
                f"(inclusion verified against a checkpoint of size {result.checkpoint_size})"
            )

        emit(json_output, out, human)


@dataset_app.command("list")
def dataset_list(
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only this party's datasets.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """List published datasets."""
    with command(json_output, url=url) as cmd:
        page = cmd.public().list_datasets(owner=owner, limit=limit, cursor=cursor)
        data = {"items": [_dataset_json(d) for d in page.items], "next_cursor": page.next_cursor}

        def human() -> None:
            table(
                [[d.dataset, _short(d.title, 40), str(d.row_count), d.status] for d in page.items],
                ["dataset", "title", "rows", "status"],
            )
            if page.next_cursor:
                typer.echo(f"more: --cursor {page.next_cursor}")

        emit(json_output, data, human)


@dataset_app.command("show")
def dataset_show(
    dataset: Annotated[str, typer.Argument(help="Dataset id (sha256:...).")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """Show one dataset's public card, after checking the owner's signature on it."""
    from sealroom.client import flows

    with command(json_output, url=url) as cmd:
        view = flows.show(cmd.public(), dataset)
        emit(json_output, _dataset_json(view), lambda: _print_dataset(view))


@dataset_app.command("withdraw")
def dataset_withdraw(
    dataset: Annotated[str, typer.Argument(help="Your dataset's id (sha256:...).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded and shown).")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Withdraw your dataset: new requests on it are refused, pending ones are rejected."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().withdraw_dataset(dataset, reason=reason)
        emit(json_output, _dataset_json(view), lambda: _print_dataset(view))


def budget(
    dataset: Annotated[str, typer.Argument(help="Your dataset's id (sha256:...).")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Your dataset's DP budget: spent and remaining epsilon and delta per requester and in total.

    Summed from the enclave-signed receipts the coordinator holds; the enclave's ledger is
    the source of truth (spent is a lower bound, remaining an upper bound). Bits are charged
    in the ledger only: their budget is shown, their use is not."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().budget(dataset)

        def human() -> None:
            typer.echo(f"dataset      {view.dataset}")
            typer.echo(f"policy       {view.policy or '(none)'}")
            if view.epsilon_total is None:
                typer.echo("DP budget    none: the policy allows no DP computation")
            else:
                typer.echo(
                    f"epsilon      spent {view.epsilon_spent} of {view.epsilon_total}, "
                    f"remaining {view.epsilon_remaining} "
                    f"(per requester {view.epsilon_per_requester})"
                )
                typer.echo(
                    f"delta        spent {view.delta_spent} of {view.delta_total}, "
                    f"remaining {view.delta_remaining} (per requester {view.delta_per_requester})"
                )
            if view.bits_total is not None:
                typer.echo(
                    f"bits         budget {view.bits_total} (per requester "
                    f"{view.bits_per_requester}); use is in the enclave's ledger only"
                )
            typer.echo(f"receipts     {view.receipts} ({view.simulated_receipts} SIMULATED)")
            table(
                [
                    [
                        who(r.requester, r.requester_name),
                        str(r.runs),
                        r.epsilon_spent,
                        r.epsilon_remaining or "-",
                        r.delta_spent,
                        r.delta_remaining or "-",
                    ]
                    for r in view.requesters
                ],
                ["requester", "runs", "eps spent", "eps left", "delta spent", "delta left"],
            )
            typer.echo(f"source: {view.source}")

        emit(json_output, view.to_json_dict(), human)


def search(
    query: Annotated[str | None, typer.Argument(help="Full-text query.")] = None,
    keyword: Annotated[
        list[str] | None, typer.Option("--keyword", help="Required keyword (repeatable).")
    ] = None,
    similar_to: Annotated[
        str | None, typer.Option("--similar-to", help="Rank by keyword overlap with this dataset.")
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    min_rows: Annotated[int | None, typer.Option("--min-rows")] = None,
    max_rows: Annotated[int | None, typer.Option("--max-rows")] = None,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """Search published datasets."""
    with command(json_output, url=url) as cmd:
        page = cmd.public().search(
            query,
            keywords=keyword or (),
            owner=owner,
            min_rows=min_rows,
            max_rows=max_rows,
            similar_to=similar_to,
            limit=limit,
            cursor=cursor,
        )
        data = {
            "items": [
                {"dataset": _dataset_json(h.dataset), "score": h.score, "jaccard": h.jaccard}
                for h in page.items
            ],
            "next_cursor": page.next_cursor,
            "total": page.total,
        }

        def human() -> None:
            table(
                [
                    [
                        h.dataset.dataset,
                        _short(printable(h.dataset.title), 40),
                        who(h.dataset.owner, h.dataset.owner_name),
                        str(h.dataset.row_count),
                        "" if h.jaccard is None else f"{h.jaccard:.3f}",
                    ]
                    for h in page.items
                ],
                ["dataset", "title", "owner", "rows", "jaccard"],
            )
            typer.echo(f"{page.total} match(es)")

        emit(json_output, data, human)


def _when(at: int) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --- requests --------------------------------------------------------------------------------

_PARAMS_LIMIT = 1 << 20


def _json_decimal(text: str) -> str:
    """A JSON number with a fraction or exponent, as the canonical decimal string it denotes.

    Statements carry no floats (their canonical JSON would be ambiguous), so the CLI
    turns ``0.95`` into ``"0.95"``, the form every decimal parameter takes.
    """
    from sealroom.statements.fields import canonical_decimal

    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - json only hands over valid numbers
        raise ValueError(f"bad number {text}") from None
    if not value.is_finite() or abs(value.adjusted()) > 30:
        raise ValueError(f"number {text} is out of range for a decimal parameter")
    return canonical_decimal(value)


def _json_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number")


def _loads(text: str) -> Any:
    """JSON as the CLI reads parameters: no duplicate keys, decimals become decimal strings."""
    from sealroom.statements.canonical import dict_without_duplicates, safe_int

    return json.loads(
        text,
        parse_float=_json_decimal,
        parse_int=safe_int,
        parse_constant=_json_constant,
        object_pairs_hook=dict_without_duplicates,
    )


def _param(text: str) -> tuple[str, Any]:
    """``key=value``: the value is JSON when it parses as JSON, else the text as a string.

    A value that starts like a JSON array or object (``[``, ``{``) must be valid JSON:
    silently passing ``[a,b]`` on as a string would only fail later and less clearly.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidInput(f"--param must be key=value, got {text!r}")
    try:
        return key, _loads(raw)
    except InvalidInput as exc:
        raise InvalidInput(f"--param {key}: {exc.detail}") from None
    except (ValueError, RecursionError) as exc:
        if raw.lstrip().startswith(("[", "{")):
            raise InvalidInput(f"--param {key}: not valid JSON ({_reason(exc)})") from None
        return key, raw


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _params_object(source: str) -> dict[str, Any]:
    """The JSON object given to ``--params``: inline JSON, or ``@path`` to read it from a file."""
    if source.startswith("@"):
        path = Path(source[1:])
        data = read_file(path, "--params file")
        if len(data) > _PARAMS_LIMIT:
            raise InvalidInput(f"--params file {path} is larger than {_PARAMS_LIMIT} bytes")
        what = f"--params file {path}"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what}: not UTF-8 text") from None
    else:
        what, text = "--params", source
    try:
        value = _loads(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.detail}") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what}: not valid JSON ({_reason(exc)})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object of parameters")
    return value


def request_params(params: str | None, param: Sequence[str]) -> dict[str, Any]:
    """The request's parameters: ``--params`` first, then each ``--param`` sets one key over it.

    The same key twice in ``--param`` is refused rather than silently keeping one.
    """
    out = _params_object(params) if params is not None else {}
    seen: set[str] = set()
    for item in param:
        key, value = _param(item)
        if key in seen:
            raise InvalidInput(f"--param {key} is given more than once")
        seen.add(key)
        out[key] = value
    return out


def request(
    computation: Annotated[
        str, typer.Argument(help="Computation id (see `sealroom computations`).")
    ],
    dataset: Annotated[list[str], typer.Option("--dataset", help="Input dataset id (repeatable).")],
    params: Annotated[
        str | None,
        typer.Option(
            "--params",
            help="All parameters as one JSON object, inline or @FILE. --param keys override it.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help=(
                "One parameter key=value (repeatable; overrides --params). The value is JSON "
                'when it parses (10, true, ["a","b"], {"x":1}), else a string; quote to force '
                "a string ('key=\"17\"'). Decimals such as 0.95 become decimal strings."
            ),
        ),
    ] = None,
    ttl: Annotated[int, typer.Option("--ttl", help="Seconds until the request expires.")] = 7
    * 86_400,
    room_policy: Annotated[
        Path | None,
        typer.Option(
            "--room-policy",
            help=(
                "JSON file of policy rules for the room: signed by you, published, and composed "
                "with every input's policy (strictest wins)."
            ),
        ),
    ] = None,
    terms: Annotated[
        list[str] | None,
        typer.Option(
            "--terms",
            help="Your acceptance of an owner's offer (`sealroom offer accept`; repeatable): "
            "that input is priced as agreed.",
        ),
    ] = None,
    max_price: Annotated[
        int | None,
        typer.Option(
            "--max-price",
            min=0,
            help="The most you agree to pay (minor units): quoted first (nothing is signed if "
            "the price is above it) and signed into the request, so it is never escrowed higher.",
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Request a computation on datasets; their owners approve (by hand or by policy).

    The parameters (and the room policy's rules) are checked here, before
    anything is signed or sent; with --max-price, so is the price (`sealroom quote`).
    """
    from sealroom.computations import default_registry

    with command(json_output, url=url, home=home) as cmd:
        values = request_params(params, param or [])
        room_rules = _policy_rules(room_policy) if room_policy is not None else None
        chosen = default_registry().get(computation)
        chosen.check_inputs(len(dataset))
        chosen.parse_params(values)
        if max_price is not None:
            me = cmd.party()
            price = me.client.quote(computation, values, dataset, [me.party_id], terms or []).price
            if price > max_price:
                raise PolicyDenied(
                    f"the price is {price}, above --max-price {max_price}; nothing was signed"
                )
        view = cmd.party().request(
            computation,
            dataset,
            values,
            ttl=ttl,
            room_policy=room_rules,
            room_policy_name=f"room policy ({room_policy.name})" if room_policy else "room policy",
            terms=terms or [],
            max_price=max_price,
        )
        emit(json_output, _request_json(view), lambda: _print_request(view))


def inbox(
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve", help="Approve the items your policies approve automatically."
        ),
    ] = False,
    allow_simulated: AllowSimulated = False,
    simulation_root: SimulationRootOpt = None,
    pccs_url: PccsUrlOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Requests waiting for your decision."""
    with command(
        json_output, url=url, home=home, allow_simulated=allow_simulated, pccs_url=pccs_url
    ) as cmd:
        party = cmd.party()
        if auto_approve:
            done = party.auto_approve(
                allow_simulated=allow_simulated,
                simulation_root=_root(simulation_root),
                progress=None if json_output else progress_bar("  sealed upload"),
            )
            data: dict[str, Any] = {
                "actions": [
                    {
                        "request": a.request,
                        "dataset": a.dataset,
                        "action": a.action,
                        "reason": a.reason,
                        "simulated": a.result.simulated if a.result else None,
                    }
                    for a in done
                ]
            }

            def human_auto() -> None:
                table(
                    [[a.request, _short(a.dataset, 24), a.action, a.reason] for a in done],
                    ["request", "dataset", "action", "reason"],
                )
                if any(a.result is not None and a.result.simulated for a in done):
                    warn_simulated()

            emit(json_output, data, human_auto)
            return
        items = party.inbox()
        data = {"items": [_request_json(v) for v in items]}

        def human() -> None:
            if not items:
                typer.echo("(no requests wait for you)")
            for n, v in enumerate(items):
                if n:
                    typer.echo("")
                _print_request(v, party.client)

        emit(json_output, data, human)


def requests(
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="Only requests in this status (pending, completed, ...)."),
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Your own requests: state, inputs, created."""
    with command(json_output, url=url, home=home) as cmd:
        items = cmd.party().requests(status=status_filter)
        data = {"items": [_request_json(v) for v in items]}

        def human() -> None:
            table(
                [
                    [
                        v.request,
                        f"{v.computation.id} {v.computation.version}",
                        v.status,
                        ", ".join(f"{_short(i.dataset, 20)} ({i.decision})" for i in v.inputs),
                        _when(v.created_at),
                    ]
                    for v in items
                ],
                ["request", "computation", "status", "inputs", "created"],
            )

        emit(json_output, data, human)


def approve(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST", help="Request id.")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="The data file, or - for stdin (default: where it was published from, as "
            "the local dataset index recorded it).",
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option("--format", help="With --data: csv, jsonl or parquet (default: by name)."),
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="With --data: the CSV delimiter.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason")] = "approved by the owner",
    allow_simulated: AllowSimulated = False,
    simulation_root: SimulationRootOpt = None,
    pccs_url: PccsUrlOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Approve a request: choose an admitted enclave your pins accept, verify its evidence
    now, re-check your data, sign, seal and upload it."""
    with command(
        json_output, url=url, home=home, allow_simulated=allow_simulated, pccs_url=pccs_url
    ) as cmd:
        from sealroom.connectors.sources import open_source

        if data is None and (format is not None or delimiter is not None):
            raise InvalidInput("--format and --delimiter apply with --data only")
        source = (
            None
            if data is None
            else open_source(data, format=format, delimiter=_delimiter(delimiter))
        )
        done = cmd.party().approve(
            request_id,
            data=source,
            reason=reason,
            allow_simulated=allow_simulated,
            simulation_root=_root(simulation_root),
            progress=None if json_output else progress_bar("  sealed upload"),
        )
        out = {
            "approved": [
                {
                    "request": a.request,
                    "dataset": a.dataset,
                    "mode": a.mode,
                    "reason": a.reason,
                    "approval": a.approval,
                    "sealed_bytes": a.sealed_bytes,
                    "enclave": a.enclave,
                    "simulated": a.simulated,
                    "warnings": list(a.warnings),
                    "status": a.status,
                }
                for a in done
            ]
        }

        def human() -> None:
            for a in done:
                typer.echo(f"approved {a.dataset} ({a.mode}: {a.reason})")
                typer.echo(f"  sealed {a.sealed_bytes} bytes to enclave {a.enclave}")
                typer.echo(f"  request is now {a.status}")
                if a.simulated:
                    warn_simulated(err=False)

        emit(json_output, out, human)


def reject(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded and shown).")],
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Reject a request that uses your data."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().reject(request_id, reason=reason)
        emit(json_output, _request_json(view), lambda: _print_request(view))


def withdraw(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    reason: Annotated[str, typer.Option("--reason")] = "withdrawn by the requester",
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Withdraw your own request (while pending or approved)."""
    with command(json_output, url=url, home=home) as cmd:
        view = cmd.party().withdraw(request_id, reason=reason)
        emit(json_output, _request_json(view), lambda: _print_request(view))


def status(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the request finishes.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait at most.")] = 600,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Show a request's status (and history); --wait follows it to the end.

    With --wait the exit code is the outcome: 0 completed, 3 failed, 4 rejected,
    5 withdrawn or expired, 6 still running at --timeout (see `sealroom --help`).
    At a terminal --wait shows the status live on stderr; otherwise (or with --json) it
    writes a line there per change; --no-progress turns both off."""
    with command(json_output, url=url, home=home) as cmd:
        party = cmd.party()
        if wait:
            live = shows(json_output, no_progress)
            with step(f"request {request_id}", show=live) as shown:

                def changed(v: RequestView) -> None:
                    if live:
                        shown.detail(v.status)
                    elif not no_progress:
                        typer.echo(f"  ... {v.status}", err=True)

                view = party.wait(request_id, timeout=timeout, progress=changed)
        else:
            view = party.status(request_id)

        def human() -> None:
            _print_request(view)
            for h in view.history:
                typer.echo(f"  {_when(h.at)}  {h.status}" + (f": {h.reason}" if h.reason else ""))

        emit(json_output, _request_json(view), human)
    if wait:
        code = exit_code_for_status(view.status)
        if code != ExitCode.OK:
            raise typer.Exit(code)


def result(
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for result.json and bundle.json.")
    ] = Path("."),
    allow_simulated: AllowSimulated = False,
    simulation_root: SimulationRootOpt = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    home: HomeOpt = None,
    json_output: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Download, open and verify your result; write result.json and bundle.json.

    At a terminal each step (download, open, verify, write) is shown live on stderr."""
    with command(json_output, url=url, home=home, allow_simulated=allow_simulated) as cmd:
        party = cmd.party()
        with step(f"result of {request_id}", show=shows(json_output, no_progress)) as shown:
            fetched = party.result(
                request_id,
                out,
                allow_simulated=allow_simulated,
                simulation_root=_root(simulation_root),
                on_step=shown.detail,
            )
            shown.detail(f"verified: {len(fetched.report.checks)} checks passed")
        data = {
            "request": fetched.request,
            "result": fetched.body,
            "verified": True,
            "simulated": fetched.simulated,
            "warnings": list(fetched.report.warnings),
            "result_path": str(fetched.result_path),
            "bundle_path": str(fetched.bundle_path),
        }

        def human() -> None:
            if fetched.simulated:
                warn_simulated(err=False)
            typer.echo(json.dumps(readable_numbers(fetched.body), indent=2, sort_keys=True))
            label = " (SIMULATED TEE)" if fetched.simulated else ""
            typer.secho(
                f"VERIFIED{label}: all {len(fetched.report.checks)} checks passed",
                fg="green",
                bold=True,
            )
            for w in fetched.report.warnings:
                typer.secho(f"  warning: {w}", fg="yellow", err=True)
            typer.echo(f"wrote {fetched.result_path} and {fetched.bundle_path}")

        emit(json_output, data, human)


def computations(
    computation: Annotated[
        str | None, typer.Argument(help="Show this computation's parameters, described.")
    ] = None,
    url: UrlOpt = DEFAULT_URL_VALUE,
    json_output: JsonOpt = False,
) -> None:
    """The computation library the coordinator offers (with an id: its parameters)."""
    with command(json_output, url=url) as cmd:
        items = cmd.public().computations()
        if computation is not None:
            items = tuple(c for c in items if c.id == computation)
            if not items:
                raise InvalidInput(f"the coordinator offers no computation {computation!r}")
        data = {"computations": [c.to_json_dict() for c in items]}

        def human() -> None:
            if computation is None:
                table(
                    [[c.id, c.version, c.privacy_class, c.release, c.summary] for c in items],
                    ["id", "version", "class", "release", "summary"],
                )
                return
            for c in items:
                typer.echo(f"{c.id} {c.version} ({c.privacy_class}, to {c.release}): {c.summary}")
                schema = c.parameters_schema
                required = set(schema.get("required", ()))
                for name, prop in schema.get("properties", {}).items():
                    default = "required" if name in required else f"default {prop.get('default')!r}"
                    typer.echo(f"  {name} ({default})")
                    text = " ".join(str(prop.get("description", "")).split())
                    if text:
                        typer.echo(f"      {text}")

        emit(json_output, data, human)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
    app.command("search")(search)
    app.command("budget")(budget)
    app.command("computations")(computations)
    app.command("request")(request)
    app.command("inbox")(inbox)
    app.command("requests")(requests)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("withdraw")(withdraw)
    app.command("status")(status)
    app.command("result")(result)
