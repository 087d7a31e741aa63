"""The log operator's side of tlog-witness: submissions, 409 retries, failures, stored notes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from sealroom.api.witness import status_for
from sealroom.coordinator.keys import CoordinatorKeystore
from sealroom.coordinator.witnessing import WitnessEndpoint, Witnessing
from sealroom.errors import InvalidInput, SealroomError
from sealroom.storage.engine import create_engine
from sealroom.storage.migrate import upgrade
from sealroom.transparency.checkpoint import NoteSigner, open_checkpoint
from sealroom.transparency.cosignature import cosignatures
from sealroom.transparency.log import TransparencyLog
from sealroom.transparency.sqlstore import SqlLogStore
from sealroom.transparency.witness import SIZE_CONTENT_TYPE, OldSizeMismatch, Witness, WitnessState
from tests.transparency.witness_helpers import cosigner

ORIGIN = "sealroom.test/log"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def grow(engine: Engine, signer: NoteSigner, n: int) -> None:
    log = TransparencyLog(SqlLogStore(engine))
    log.append_many([b"entry %d" % i for i in range(log.size(), log.size() + n)])
    log.checkpoint(signer)


def transport(witness: Witness, calls: list[bytes]) -> httpx.MockTransport:
    """The witness's add-checkpoint over an in-memory transport (what the HTTP app answers)."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.content)
        try:
            return httpx.Response(200, text=witness.add_checkpoint(request.content))
        except OldSizeMismatch as exc:
            return httpx.Response(
                409, content=f"{exc.size}\n", headers={"content-type": SIZE_CONTENT_TYPE}
            )
        except SealroomError as exc:
            return httpx.Response(status_for(exc), text=str(exc))

    return httpx.MockTransport(handle)


def test_endpoints_parse_as_vkey_at_url() -> None:
    key = cosigner("witness@example.test/w1").key
    parsed = WitnessEndpoint.parse(f"{key.vkey}@https://witness.example/sub/")
    assert parsed == WitnessEndpoint(key, "https://witness.example/sub")
    for bad in (key.vkey, f"{key.vkey}@ftp://x", "name@http://x", f"{key.vkey[:-2]}@http://x"):
        with pytest.raises(InvalidInput):
            WitnessEndpoint.parse(bad)


def test_gathers_stores_and_retries_a_409_after_a_restart(
    engine: Engine, keystore: CoordinatorKeystore, tmp_path: Path
) -> None:
    signer = keystore.log_signer(engine, ORIGIN)
    state = WitnessState(tmp_path / "w")
    witness = Witness(cosigner(), [signer.verifier], state)
    calls: list[bytes] = []
    endpoint = WitnessEndpoint(cosigner().key, "http://witness.test")
    grow(engine, signer, 5)
    first = Witnessing(engine, [endpoint], transport=transport(witness, calls))
    note = first.latest()
    assert note is not None
    assert len(cosignatures(note, [endpoint.key])) == 1
    assert first.latest() == note  # stored: no second submission for the same checkpoint
    assert len(calls) == 1
    grow(engine, signer, 3)
    # a coordinator that restarted does not know the witness's size: 409, then a proof from it
    again = Witnessing(engine, [endpoint], transport=transport(witness, calls))
    cosigned = again.latest()
    assert cosigned is not None
    assert open_checkpoint(cosigned, signer.verifier).size == 8
    assert [c.split(b"\n", 1)[0] for c in calls[1:]] == [b"old 0", b"old 5"]
    state.close()


def test_a_witness_that_refuses_or_fails_is_left_alone_for_a_while(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    signer = keystore.log_signer(engine, ORIGIN)
    grow(engine, signer, 2)
    calls: list[bytes] = []
    now = [100.0]

    def answer(status: int, text: str) -> Callable[[httpx.Request], httpx.Response]:
        def handle(request: httpx.Request) -> httpx.Response:
            calls.append(request.content)
            return httpx.Response(status, text=text)

        return handle

    endpoint = WitnessEndpoint(cosigner().key, "http://witness.test")
    for status, text in ((422, "inconsistent\n"), (200, "\u2014 nonsense\n"), (200, "")):
        calls.clear()
        w = Witnessing(
            engine,
            [endpoint],
            transport=httpx.MockTransport(answer(status, text)),
            retry_after=30,
            monotonic=lambda: now[0],
        )
        note = w.latest()
        assert note is not None
        assert cosignatures(note, [endpoint.key]) == ()
        w.latest()
        assert len(calls) == 1  # resting
        now[0] += 31
        w.latest()
        assert len(calls) == 2


def test_a_cosignature_by_another_key_or_a_bad_one_is_not_kept(
    engine: Engine, keystore: CoordinatorKeystore
) -> None:
    signer = keystore.log_signer(engine, ORIGIN)
    grow(engine, signer, 3)
    impostor = cosigner("witness.test/w1-impostor")
    real = WitnessEndpoint(cosigner().key, "http://witness.test")
    log = TransparencyLog(SqlLogStore(engine))
    body = log.latest_checkpoint()
    assert body is not None
    line = impostor.cosign(body.split("\n\n")[0] + "\n", 1_790_000_000).line()
    w = Witnessing(
        engine, [real], transport=httpx.MockTransport(lambda r: httpx.Response(200, text=line))
    )
    note = w.latest()
    assert note is not None
    assert "impostor" not in note
