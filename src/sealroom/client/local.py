"""What a party's client remembers next to its keystore.

``<home>/datasets.json`` maps each dataset the party published to where its data
is: the absolute path of its file, or the locator of another source (a
PostgreSQL table or query, an S3 object; never a password or key), so ``approve``
can read (and re-check) the data later. Data read from stdin has neither: its
owner names the data again on approval.
``<home>/coordinators.json`` pins each coordinator's transparency-log key on
first use: the coordinator is untrusted, so a log key that changes later is
refused rather than silently followed.

``<home>/rooms.json`` records this party's own consent decisions per room (by the room's
policy digest), so its client refuses to approve or seal data for a room it withdrew
from whatever the coordinator says; and the protocol runs it approved and took part in,
so it takes part only in a run it approved itself, and only once.

All are small JSON documents written atomically (temp file + rename,
mode 0600), so a crash never leaves half a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sealroom.crypto.files import write_private
from sealroom.errors import InvalidInput, ProofInvalid

__all__ = [
    "COORDINATORS_FILE",
    "DATASETS_FILE",
    "ROOMS_FILE",
    "DatasetIndex",
    "LocalDataset",
    "pin_log_key",
    "pin_simulation_root",
    "pinned_log_key",
    "pinned_simulation_root",
    "record_consent",
    "record_protocol_run",
    "recorded_consent",
    "recorded_protocol_run",
]

DATASETS_FILE = "datasets.json"
COORDINATORS_FILE = "coordinators.json"
ROOMS_FILE = "rooms.json"
_MAX_FILE = 16 << 20
ProtocolStep = Literal["approved", "ran"]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > _MAX_FILE:
        raise InvalidInput(f"{what} {path} is too large")
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidInput(f"{what} {path} is not valid JSON; fix or remove it") from None
    if not isinstance(value, dict) or value.get("version") != 1:
        raise InvalidInput(f"{what} {path} is not a version 1 sealroom file")
    return value


def _write_json(path: Path, value: dict[str, Any]) -> None:
    write_private(path, json.dumps(value, indent=2, sort_keys=True).encode("utf-8") + b"\n")


@dataclass(frozen=True, slots=True)
class LocalDataset:
    dataset: str
    path: Path | None
    title: str
    published_at: int
    # How to read it again (sealroom.connectors.sources); None with ``path`` None: stdin.
    locator: dict[str, str] | None = None


class DatasetIndex:
    """dataset digest -> local file, for the datasets this party published."""

    __slots__ = ("_path",)

    def __init__(self, home: Path) -> None:
        self._path = Path(home) / DATASETS_FILE

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> dict[str, Any]:
        doc = _read_json(self._path, "dataset index")
        datasets = doc.get("datasets", {})
        if not isinstance(datasets, dict):
            raise InvalidInput(f"dataset index {self._path}: 'datasets' must be an object")
        return datasets

    def record(self, entry: LocalDataset) -> None:
        datasets = self._load()
        item: dict[str, Any] = {"title": entry.title, "published_at": entry.published_at}
        if entry.path is not None:
            item["path"] = str(entry.path.resolve())
        if entry.locator is not None:
            item["source"] = dict(entry.locator)
        datasets[entry.dataset] = item
        _write_json(self._path, {"version": 1, "datasets": datasets})

    def get(self, dataset: str) -> LocalDataset | None:
        item = self._load().get(dataset)
        if item is None:
            return None
        try:
            source = item.get("source")
            if source is not None and not (
                isinstance(source, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in source.items())
            ):
                raise TypeError("source")
            return LocalDataset(
                dataset=dataset,
                path=Path(item["path"]) if item.get("path") is not None else None,
                title=str(item["title"]),
                published_at=int(item["published_at"]),
                locator=source,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidInput(
                f"dataset index {self._path}: entry {dataset} is malformed"
            ) from None

    def all(self) -> list[LocalDataset]:
        return [e for d in sorted(self._load()) if (e := self.get(d)) is not None]


def pinned_log_key(home: Path, base_url: str) -> str | None:
    doc = _read_json(Path(home) / COORDINATORS_FILE, "coordinator pins")
    entry = doc.get("coordinators", {}).get(base_url)
    return entry.get("log_key") if isinstance(entry, dict) else None


def pin_log_key(home: Path, base_url: str, log_key: str) -> bool:
    """Pin ``log_key`` for ``base_url``; True if newly pinned. A different pinned key fails."""
    return _pin(home, base_url, "log_key", log_key, "transparency-log key")


def pinned_simulation_root(home: Path, base_url: str) -> str | None:
    """The simulation root (hex) pinned on first use for ``base_url``, if any."""
    doc = _read_json(Path(home) / COORDINATORS_FILE, "coordinator pins")
    entry = doc.get("coordinators", {}).get(base_url)
    return entry.get("simulation_root") if isinstance(entry, dict) else None


def pin_simulation_root(home: Path, base_url: str, root: str) -> bool:
    """Pin the deployment's simulation root (hex) for ``base_url`` on first use."""
    return _pin(home, base_url, "simulation_root", root, "simulation root")


def _pin(home: Path, base_url: str, name: str, value: str, what: str) -> bool:
    path = Path(home) / COORDINATORS_FILE
    doc = _read_json(path, "coordinator pins")
    coordinators = doc.get("coordinators", {})
    if not isinstance(coordinators, dict):
        raise InvalidInput(f"coordinator pins {path}: 'coordinators' must be an object")
    current = coordinators.get(base_url)
    entry = dict(current) if isinstance(current, dict) else {}
    if entry.get(name) is not None:
        if entry[name] != value:
            raise ProofInvalid(
                f"the coordinator at {base_url} now presents a different {what} "
                f"than the one pinned in {path}; refusing (if it really moved, remove "
                "the pin by hand)"
            )
        return False
    entry[name] = value
    coordinators[base_url] = entry
    _write_json(path, {"version": 1, "coordinators": coordinators})
    return True


def record_consent(
    home: Path, *, room: str, policy: str, snapshot: str, decision: str, at: int
) -> None:
    """Remember this party's newest consent decision on ``room`` (keyed by its policy)."""
    path = home / ROOMS_FILE
    data = _read_json(path, "room consents file") or {"version": 1, "rooms": {}}
    rooms = data.setdefault("rooms", {})
    if not isinstance(rooms, dict):
        raise InvalidInput(f"room consents file {path}: 'rooms' must be an object")
    rooms[policy] = {"room": room, "snapshot": snapshot, "decision": decision, "at": at}
    _write_json(path, data)


def recorded_consent(home: Path, policy: str) -> str | None:
    """This party's newest recorded decision ("consent" or "withdraw") on the room whose
    policy is ``policy``; None if it never decided."""
    rooms = _read_json(home / ROOMS_FILE, "room consents file").get("rooms", {})
    entry = rooms.get(policy) if isinstance(rooms, dict) else None
    decision = entry.get("decision") if isinstance(entry, dict) else None
    return decision if isinstance(decision, str) else None


def record_protocol_run(home: Path, request: str, step: ProtocolStep, *, at: int) -> None:
    """Remember that this party approved (``approved``) or took part in (``ran``) the
    protocol run ``request``."""
    path = home / ROOMS_FILE
    data = _read_json(path, "room consents file") or {"version": 1, "rooms": {}}
    runs = data.setdefault(f"{step}_runs", {})
    if not isinstance(runs, dict):
        raise InvalidInput(f"room consents file {path}: '{step}_runs' must be an object")
    runs[request] = at
    _write_json(path, data)


def recorded_protocol_run(home: Path, request: str, step: ProtocolStep) -> bool:
    """Whether this party recorded ``step`` for the protocol run ``request``."""
    runs = _read_json(home / ROOMS_FILE, "room consents file").get(f"{step}_runs", {})
    return isinstance(runs, dict) and request in runs
