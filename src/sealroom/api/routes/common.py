"""What the routers share: bodies documented by their wire model, 201-or-200 answers."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Response

from sealroom.coordinator.state import Stored
from sealroom.wire import MAX_JSON_BODY, WireModel

__all__ = ["BINARY", "answer", "json_body", "raw_body", "stored_responses"]

V = TypeVar("V", bound=WireModel)

BINARY = {"type": "string", "format": "binary"}
COMPONENT = "#/components/schemas/{model}"


def json_body(model: type[WireModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model`` itself, after checking the signature."""
    return {
        "requestBody": {
            "required": True,
            "description": f"JSON object, at most {MAX_JSON_BODY >> 20} MiB. The request "
            "signature covers these exact bytes.",
            "content": {
                "application/json": {"schema": {"$ref": COMPONENT.format(model=model.__name__)}}
            },
        }
    }


def raw_body(description: str) -> dict[str, Any]:
    """``openapi_extra`` for a non-empty ``application/octet-stream`` body."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/octet-stream": {"schema": {**BINARY, "minLength": 1}}},
        }
    }


def stored_responses(model: type[WireModel], what: str) -> dict[int | str, dict[str, Any]]:
    """201 when the call created ``what``; 200 with the stored view when it was already there."""
    return {
        200: {"model": model, "description": f"The {what} was already stored; nothing changed."}
    }


def answer(stored: Stored[V], response: Response) -> V:
    """The view, as 201 when the call created it and 200 when it was already stored."""
    response.status_code = 201 if stored.created else 200
    return stored.view
