"""``/openapi.json``: FastAPI's schema plus the request bodies the routes read themselves.

Responses are documented by the routes' response models (errors by the app's
4XX response, always JSON). Request bodies are
read raw (the signature covers their bytes) and parsed by their wire model
afterwards, so each route names its body model in ``openapi_extra``
(:func:`~sealroom.api.routes.common.json_body`) and this module adds those
models' schemas to the components.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from sealroom import wire
from sealroom.api.routes.common import COMPONENT
from sealroom.computations.registry import Registry
from sealroom.wire import ErrorBody, WireModel

__all__ = ["BODY_MODELS", "install_openapi"]

BODY_MODELS: tuple[type[WireModel], ...] = tuple(
    getattr(wire, name) for name in wire.__all__ if name.endswith("Body") and name != "ErrorBody"
)
"""Every JSON request body (each route names its own in ``openapi_extra``)."""


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item.removeprefix(COMPONENT.format(model=""))
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _reachable(roots: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas ``roots`` refer to, directly or not (pydantic also emits some nothing uses)."""
    live: dict[str, Any] = {}
    todo = list(_refs(roots))
    while todo:
        name = todo.pop()
        if name not in live and name in schemas:
            live[name] = schemas[name]
            todo.extend(_refs(schemas[name]))
    return live


def _generate(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    responses = components.get("schemas", {})
    _, defs = models_json_schema([(m, "validation") for m in BODY_MODELS], ref_template=COMPONENT)
    named = {m.__name__: defs["$defs"][m.__name__] for m in BODY_MODELS}
    bodies = named | _reachable(list(named.values()), defs["$defs"])
    for name, definition in bodies.items():
        if responses.get(name, definition) != definition:
            raise RuntimeError(f"two different schemas are named {name}")
        responses[name] = definition
    # Errors are JSON whatever a route answers on success (FastAPI gives them its media type).
    error = {"application/json": {"schema": {"$ref": COMPONENT.format(model=ErrorBody.__name__)}}}
    for item in schema["paths"].values():
        for op in item.values():
            op["responses"]["4XX"]["content"] = error
    components["schemas"] = _reachable(schema["paths"], responses)
    registry = app.state.api.coordinator.state.registry
    for name, definition in _parameter_schemas(registry).items():
        if components["schemas"].get(name, definition) != definition:
            raise RuntimeError(f"two different schemas are named {name}")
        components["schemas"][name] = definition
    return schema


def _parameter_schemas(registry: Registry) -> dict[str, Any]:
    """Each computation's parameter model (with every parameter's description), so the
    document shows what a ComputationRequest's ``parameters`` may hold; the routes carry
    them inside signed envelopes and so cannot reference them."""
    computations = list(registry)
    keys, defs = models_json_schema(
        [(c.params, "validation") for c in computations], ref_template=COMPONENT
    )
    out: dict[str, Any] = dict(defs.get("$defs", {}))
    for c in computations:
        name = keys[(c.params, "validation")]["$ref"].removeprefix(COMPONENT.format(model=""))
        out[name] = {
            **out[name],
            "description": f"Parameters of the computation {c.id} {c.version}: {c.summary}",
        }
    return out


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed schema (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _generate(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
