"""What the console's pages show, computed in Python so it is tested without a browser.

Request forms come from a computation's parameter schema (its field descriptions
are the help text); results become plain tables (always, so nothing depends on a
script or a canvas) and chart specifications the page's script draws with Chart.js.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sealroom.errors import InvalidInput

__all__ = [
    "ChartSpec",
    "FieldSpec",
    "Table",
    "chart_specs",
    "form_fields",
    "params_from_form",
    "result_tables",
]

FieldKind = Literal["text", "integer", "number", "boolean", "choice", "json"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One parameter's form control: name, kind, help, default and whether it is required."""

    name: str
    kind: FieldKind
    title: str
    help: str
    required: bool
    default: str
    choices: tuple[str, ...] = ()


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(found, Mapping):
            return found
    return node


def _kind(schema: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[FieldKind, tuple[str, ...]]:
    options = [o for o in node.get("anyOf", ()) if o.get("type") != "null"]
    if len(options) == 1:
        node = options[0]
    elif options:
        return "json", ()
    node = _resolve(schema, node)
    if "enum" in node and all(isinstance(v, str) for v in node["enum"]):
        return "choice", tuple(node["enum"])
    if "const" in node and isinstance(node["const"], str):
        return "choice", (node["const"],)
    kind = node.get("type")
    if kind == "integer":
        return "integer", ()
    if kind == "number":
        return "number", ()
    if kind == "boolean":
        return "boolean", ()
    if kind == "string":
        return "text", ()
    return "json", ()


def _default_text(value: object, kind: FieldKind) -> str:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_fields(schema: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
    """The form of a parameter model's JSON schema (``model_json_schema()``), in its order."""
    required = set(schema.get("required", ()))
    out = []
    for name, raw in schema.get("properties", {}).items():
        node = raw if isinstance(raw, Mapping) else {}
        kind, choices = _kind(schema, node)
        resolved = _resolve(schema, node)
        description = node.get("description") or resolved.get("description") or ""
        out.append(
            FieldSpec(
                name=name,
                kind=kind,
                title=str(node.get("title") or name.replace("_", " ")),
                help=str(description),
                required=name in required,
                default=_default_text(node.get("default"), kind),
                choices=choices,
            )
        )
    return tuple(out)


def params_from_form(fields: Sequence[FieldSpec], form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters a filled-in form means: empty optional fields are left to their defaults.

    Raises :class:`InvalidInput` naming the field whose text is not of its kind; the
    computation's own parser (the SDK's early check) judges the values after this.
    """
    params: dict[str, Any] = {}
    for f in fields:
        text = form.get(f"param.{f.name}", "").strip()
        if not text:
            if f.required:
                raise InvalidInput(f"parameter {f.name!r} is required")
            continue
        if f.kind == "integer":
            try:
                params[f.name] = int(text)
            except ValueError:
                raise InvalidInput(f"parameter {f.name!r} must be a whole number") from None
        elif f.kind == "number":
            try:
                number = float(text)
            except ValueError:
                raise InvalidInput(f"parameter {f.name!r} must be a number") from None
            if not math.isfinite(number):
                raise InvalidInput(f"parameter {f.name!r} must be a finite number")
            params[f.name] = number
        elif f.kind == "boolean":
            if text not in ("true", "false"):
                raise InvalidInput(f"parameter {f.name!r} must be true or false")
            params[f.name] = text == "true"
        elif f.kind == "json":
            try:
                params[f.name] = json.loads(text)
            except ValueError as exc:
                raise InvalidInput(f"parameter {f.name!r} is not valid JSON ({exc})") from None
        else:
            params[f.name] = text
    return params


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table of text cells (``facts`` tables have two columns: name, value)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list | tuple) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(_cell(v) for v in value) or "—"
    return json.dumps(value, sort_keys=True)


def _flat(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def result_tables(body: object, title: str = "result") -> tuple[Table, ...]:
    """Every value of a result as tables: lists of records as tables, the rest as facts."""
    if not isinstance(body, Mapping):
        return (Table(title, ("value",), ((_cell(body),),)),)
    facts: list[tuple[str, str]] = []
    tables: list[Table] = []
    for key, value in body.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            flat = [_flat(v) for v in value]
            header: list[str] = []
            for row in flat:
                header += [k for k in row if k not in header]
            rows = tuple(tuple(_cell(row.get(h)) for h in header) for row in flat)
            tables.append(Table(key.replace("_", " "), tuple(header), rows))
        elif isinstance(value, Mapping) and value:
            tables.extend(result_tables(value, f"{title} · {key}" if title != "result" else key))
        else:
            facts.append((key.replace("_", " "), _cell(value)))
    head = [Table(title, ("name", "value"), tuple(facts))] if facts else []
    return (*head, *tables)


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """What the page's script draws: bars (floating bars when a value is a [low, high] pair)."""

    id: str
    title: str
    labels: tuple[str, ...]
    datasets: tuple[dict[str, Any], ...]
    horizontal: bool = False
    value_title: str = ""
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "labels": list(self.labels),
            "datasets": list(self.datasets),
            "horizontal": self.horizontal,
            "valueTitle": self.value_title,
        }


def _num(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _records(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = body.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _interval(low: object, high: object) -> list[float] | None:
    lo, hi = _num(low), _num(high)
    return None if lo is None or hi is None else [lo, hi]


def _topic_overlap(body: Mapping[str, Any], inputs: Sequence[str]) -> Iterable[ChartSpec]:
    first, second = (*inputs, "first dataset", "second dataset")[:2]
    shared = _records(body, "shared")
    if shared:
        yield ChartSpec(
            "shared-topics",
            f"Shared topics (Jaccard {body.get('jaccard', '—')})",
            tuple(str(s.get("term")) for s in shared),
            (
                {"label": first, "data": [_num(s.get("count_a")) for s in shared]},
                {"label": second, "data": [_num(s.get("count_b")) for s in shared]},
            ),
            horizontal=True,
            value_title="mentions",
        )
    for key, label in (("unique_to_a", first), ("unique_to_b", second)):
        side = _records(body, key)
        if side:
            yield ChartSpec(
                key.replace("_", "-"),
                f"Topics only in {label}",
                tuple(str(s.get("term")) for s in side),
                ({"label": "mentions", "data": [_num(s.get("count")) for s in side]},),
                horizontal=True,
                value_title="mentions",
            )


def _gap_analysis(body: Mapping[str, Any], inputs: Sequence[str]) -> Iterable[ChartSpec]:
    gaps = _records(body, "gaps")
    if gaps:
        levels = sorted({str(g.get("level")) for g in gaps})
        yield ChartSpec(
            "gaps",
            "Gaps: topics the expert covers and the learner does not",
            tuple(str(g.get("term")) for g in gaps),
            tuple(
                {
                    "label": level,
                    "data": [
                        _num(g.get("mentions")) if str(g.get("level")) == level else None
                        for g in gaps
                    ],
                    "stack": "gaps",
                }
                for level in levels
            ),
            horizontal=True,
            value_title="mentions",
        )


def _group_label(group: Mapping[str, Any]) -> str:
    key = group.get("key")
    parts = [str(k) for k in key] if isinstance(key, list) else []
    if group.get("period"):
        parts.append(str(group["period"]))
    return " / ".join(parts) or "all"


def _aggregate_stats(body: Mapping[str, Any], inputs: Sequence[str]) -> Iterable[ChartSpec]:
    groups = _records(body, "groups")
    overall = body.get("overall")
    if not groups and isinstance(overall, Mapping):
        groups = [{"key": ["overall"], "stats": overall}]
    labels, means, intervals = [], [], []
    for g in groups:
        stats = g.get("stats")
        if not isinstance(stats, Mapping):
            continue
        labels.append(_group_label(g))
        means.append(_num(stats.get("mean")))
        intervals.append(_interval(stats.get("ci_low"), stats.get("ci_high")))
    if labels:
        confidence = body.get("confidence")
        yield ChartSpec(
            "means",
            f"Mean per group with its {confidence or ''} confidence interval".replace("  ", " "),
            tuple(labels),
            (
                {"label": "confidence interval", "data": intervals},
                {"label": "mean", "data": means, "type": "line", "showLine": False},
            ),
            value_title="mean",
        )


def _lift(body: Mapping[str, Any], inputs: Sequence[str]) -> Iterable[ChartSpec]:
    arms = [(name, body.get(name)) for name in ("test", "control")]
    rates = [_num(a.get("rate")) if isinstance(a, Mapping) else None for _, a in arms]
    if any(r is not None for r in rates):
        yield ChartSpec(
            "rates",
            "Conversion rate per arm",
            tuple(n for n, _ in arms),
            ({"label": "conversion rate", "data": rates},),
            value_title="rate",
        )
    ci = _interval(body.get("absolute_ci_low"), body.get("absolute_ci_high"))
    if ci is not None:
        yield ChartSpec(
            "lift",
            f"Absolute lift and its {body.get('confidence', '')} confidence interval",
            ("absolute lift",),
            (
                {"label": "confidence interval", "data": [ci]},
                {
                    "label": "estimate",
                    "data": [_num(body.get("absolute_lift"))],
                    "type": "line",
                    "showLine": False,
                },
            ),
            horizontal=False,
            value_title="test rate - control rate",
        )


def _train_model(body: Mapping[str, Any], inputs: Sequence[str]) -> Iterable[ChartSpec]:
    coefficients = _records(body, "coefficients")
    if coefficients:
        estimates = [_num(c.get("estimate")) for c in coefficients]
        intervals: list[list[float] | None] = []
        for c, est in zip(coefficients, estimates, strict=True):
            se = _num(c.get("std_error"))
            intervals.append(
                None if est is None or se is None else [est - 1.96 * se, est + 1.96 * se]
            )
        datasets: list[dict[str, Any]] = [{"label": "estimate", "data": estimates}]
        if any(i is not None for i in intervals):
            datasets.append({"label": "±1.96 standard errors", "data": intervals})
        yield ChartSpec(
            "coefficients",
            f"Model coefficients ({body.get('family', '')}, target {body.get('target', '')})",
            tuple(str(c.get("name")) for c in coefficients),
            tuple(datasets),
            horizontal=True,
            value_title="coefficient",
        )


_CHARTS: dict[str, Callable[[Mapping[str, Any], Sequence[str]], Iterable[ChartSpec]]] = {
    "topic-overlap": _topic_overlap,
    "gap-analysis": _gap_analysis,
    "aggregate-stats": _aggregate_stats,
    "lift": _lift,
    "train-model": _train_model,
}


def chart_specs(
    computation: str, body: object, inputs: Sequence[str] = ()
) -> tuple[ChartSpec, ...]:
    """The charts of one computation's result (none for a computation without a chart);
    ``inputs``: the input datasets' titles, in the request's order, to name the series."""
    make = _CHARTS.get(computation)
    if make is None or not isinstance(body, Mapping):
        return ()
    return tuple(make(body, inputs))
