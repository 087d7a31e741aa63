"""Parameter coercion without pydantic for the plain kinds (str, bool, Path, numbers, list[str]).

Typer (0.29+) coerces every parameter of the invoked command through a pydantic
``TypeAdapter``, built when the command runs even for a flag left at its default;
importing pydantic for that is most of a simple command's start-up (``sealroom version``
spent ~0.4 s of ~1.4 s in it on a loaded machine). For a value that already has the
annotated type (a flag's bool, an option's str, a default), the adapter returns it
unchanged; a Path goes through typer's own ``coerce_cli_path`` (what its path adapter
calls). Those cases are answered here; everything else (an int typed on the command line,
an enum, a custom type) takes typer's own adapter, built on first use, so its checks and
messages are unchanged.

This wraps a private typer function. :func:`install` checks the names it relies on and
does nothing if they are missing (the CLI is then slower, never different);
tests/cli/test_cli_startup.py fails if pydantic is loaded again by a simple command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

__all__ = ["install"]

_installed = False


def install() -> bool:
    """Route typer's runtime coercion through :func:`_runtime_param` (idempotent); False
    when this typer lacks the private names relied on."""
    global _installed
    if _installed:
        return True
    try:
        from typer import _coercion, core
        from typer._param_types import coerce_cli_path, routes_to_path
    except ImportError:  # pragma: no cover - another typer
        return False
    found = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if not callable(found) or not isinstance(base, type):  # pragma: no cover
        return False
    original: Callable[[Any], Any] = found

    @dataclass(frozen=True)
    class PlainRuntimeParam(base):  # type: ignore[misc,valid-type]
        """Identity for values of the annotated type, typer's path coercion for paths,
        typer's own adapter (built once, on first need) for anything else."""

        descriptor: Any = None
        _fallback: list[Any] = field(default_factory=list)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            done = _plain(self.annotation, self.parameter_info, value, param, ctx)
            if done is not _NOT_PLAIN:
                return done
            if not self._fallback:
                self._fallback.append(original(self.descriptor))
            return self._fallback[0]._coerce_value(value, param=param, ctx=ctx)

    def _plain(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
        if annotation is bool:
            return value if type(value) is bool else _NOT_PLAIN
        if annotation is str:
            return value if type(value) is str else _NOT_PLAIN
        if annotation is int:
            return value if type(value) is int else _NOT_PLAIN
        if annotation is float:
            return float(value) if type(value) in (int, float) else _NOT_PLAIN
        if get_origin(annotation) is list and get_args(annotation) == (str,):
            ok = isinstance(value, list | tuple) and all(type(v) is str for v in value)
            return list(value) if ok else _NOT_PLAIN
        if routes_to_path(annotation, info) and isinstance(value, str | os.PathLike):
            path_type = info.path_type
            if path_type is None and isinstance(annotation, type) and issubclass(annotation, Path):
                path_type = annotation
            return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)
        return _NOT_PLAIN

    def runtime_param(descriptor: Any) -> Any:
        plain = (
            descriptor.file_annotation is None
            and descriptor.parameter_info.parser is None
            and _is_plain(descriptor.annotation, descriptor.parameter_info, routes_to_path)
        )
        if not plain:
            return original(descriptor)
        return PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
        )

    setattr(core, "build_runtime_param", runtime_param)  # noqa: B010 (a private name)
    _installed = True
    return True


_NOT_PLAIN = object()
"""Marks a value the plain route does not answer."""


def _is_plain(annotation: Any, info: Any, routes_to_path: Callable[[Any, Any], bool]) -> bool:
    """Kinds whose coercion :func:`install` answers: no bounds, choices or custom types."""
    if annotation in (int, float):
        return info.min is None and info.max is None and not info.clamp
    if annotation in (bool, str):
        return True
    if get_origin(annotation) is list:
        return get_args(annotation) == (str,)
    return bool(routes_to_path(annotation, info))
