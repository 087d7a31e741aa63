"""Protocol queries: how a request names a protocol's code, who plays which role, and which
parameters a room admits (pure; the end-to-end runs are in tests/rooms)."""

from __future__ import annotations

from typing import Any

import pytest

from sealroom.errors import InvalidInput, PolicyDenied
from sealroom.protocols import fedavg, he, pjc, psi, secagg
from sealroom.protocols.queries import PROTOCOL_QUERIES, protocol_query, protocol_ref
from sealroom.protocols.receipts import code_digest
from sealroom.statements import ComputationRef

PSI = {"mode": "cardinality", "threshold": 10, "max_set_size": 1_000_000}


def test_a_protocol_ref_names_the_wire_version_and_the_code_of_this_release() -> None:
    for module in (psi, pjc, he, secagg):
        ref = protocol_ref(module.PROTOCOL)
        assert ref.id == f"protocol.{module.PROTOCOL}"
        assert ref.version == f"{module.VERSION}.0.0"
        assert ref.code_digest == code_digest(module.PROTOCOL)
        assert protocol_query(ref) is PROTOCOL_QUERIES[ref.id]


def test_other_code_or_another_version_is_not_this_releases_protocol() -> None:
    ref = protocol_ref("psi")
    for other in (
        ref.model_copy(update={"code_digest": "sha256:" + "0" * 64}),
        ref.model_copy(update={"version": "2.0.0"}),
    ):
        with pytest.raises(InvalidInput, match="not the protocol code of this release"):
            protocol_query(other)
    with pytest.raises(InvalidInput, match="no protocol"):
        protocol_query(
            ComputationRef(id="protocol.ot", version="1.0.0", code_digest=ref.code_digest)
        )
    with pytest.raises(InvalidInput, match="no protocol"):
        protocol_ref("ot")
    enclave = ComputationRef(
        id="intersection-overlap", version="1.0.0", code_digest=ref.code_digest
    )
    assert protocol_query(enclave) is None


def test_roles_follow_from_the_requester_and_the_inputs_owners() -> None:
    pair = PROTOCOL_QUERIES["protocol.psi"].roles
    assert pair("h", ["h", "m"]) == (("a", "h"), ("b", "m"))
    assert pair("h", ["m", "h"]) == (("a", "m"), ("b", "h"))
    with pytest.raises(InvalidInput, match="brings one of the two"):
        pair("h", ["m", "n"])
    with pytest.raises(InvalidInput, match="exactly two inputs"):
        pair("h", ["h", "h"])
    hub = PROTOCOL_QUERIES["protocol.secagg"].roles
    assert hub("h", ["m", "n"]) == (("aggregator", "h"), ("o1", "m"), ("o2", "n"))
    with pytest.raises(InvalidInput, match="brings no data"):
        hub("h", ["h", "n"])
    with pytest.raises(InvalidInput, match="at least two"):
        PROTOCOL_QUERIES["protocol.he"].roles("h", ["m"])


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        ({**PSI, "threshold": 9}, PolicyDenied, "below the room's k"),
        ({**PSI, "mode": "intersection"}, PolicyDenied, "identifiers"),
        ({"mode": "cardinality", "threshold": 10}, InvalidInput, "in full"),
        ({**PSI, "unknown": 1}, InvalidInput, "unexpected keyword"),
        ({**PSI, "threshold": "10"}, InvalidInput, "threshold"),
        ([PSI], InvalidInput, "an object"),
    ],
)
def test_psi_parameters_a_room_refuses(raw: Any, error: type[Exception], match: str) -> None:
    query = PROTOCOL_QUERIES["protocol.psi"]
    with pytest.raises(error, match=match):
        query.parameters(raw, k=10, roles=(("a", "h"), ("b", "m")))


def test_canonical_parameters_are_what_the_receipts_record() -> None:
    roles = (("a", "h"), ("b", "m"))
    assert PROTOCOL_QUERIES["protocol.psi"].parameters(PSI, k=10, roles=roles) == PSI
    params = pjc.PjcParams(min_intersection=10, max_value=1000, dp_epsilon="1")
    got = PROTOCOL_QUERIES["protocol.pjc"].parameters(params.as_dict(), k=10, roles=roles)
    assert got == params.as_dict()
    with pytest.raises(PolicyDenied, match="min_intersection 5"):
        PROTOCOL_QUERIES["protocol.pjc"].parameters(
            {**params.as_dict(), "min_intersection": 5}, k=10, roles=roles
        )


def test_training_parameters_name_the_runs_roles() -> None:
    roles = (("aggregator", "h"), ("o1", "m"), ("o2", "n"))
    config = fedavg.FedAvgConfig(aggregator="aggregator", owners=("o1", "o2"), features=2)
    query = PROTOCOL_QUERIES["protocol.secagg"]
    assert query.parameters(config.as_dict(), k=10, roles=roles) == config.as_dict()
    swapped = {**config.as_dict(), "owners": ["o2", "o1"]}
    with pytest.raises(InvalidInput, match="owners' roles"):
        query.parameters(swapped, k=10, roles=roles)
    with pytest.raises(InvalidInput, match="decimal string"):
        query.parameters({**config.as_dict(), "learning_rate": 0.5}, k=10, roles=roles)
    with pytest.raises(InvalidInput, match="'rounds' is missing"):
        query.parameters(
            {k: v for k, v in config.as_dict().items() if k != "rounds"}, k=10, roles=roles
        )
