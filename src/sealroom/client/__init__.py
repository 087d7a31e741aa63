"""The sealroom SDK: act as one party against a coordinator, and check everything it serves.

:class:`Party` is the way in (``Party.open(home=..., url=...)``): publish, search,
request, approve, wait, fetch and verify results, and run protocols directly with
other parties; :class:`AsyncParty` has the same verbs as coroutines. The verbs return the results below and the coordinator's views
(:mod:`sealroom.wire`). :class:`Client` is the HTTP layer underneath, one method
per route. The names in ``__all__`` are the public surface; the modules behind
them (``flows``, ``protocol_runs``, ``relay``, ``trust``, ``local``) stay
importable for what the surface does not cover, without the same promise.
"""

from __future__ import annotations

from sealroom.client.aio import AsyncParty
from sealroom.client.flows import (
    ApprovedInput,
    AutoApproval,
    FetchedResult,
    Published,
    content_root,
    exact_rule,
)
from sealroom.client.http import Client
from sealroom.client.party import Party
from sealroom.client.protocol_runs import ProtocolRun
from sealroom.wire import (
    ComputationInfo,
    DatasetView,
    RequestStatus,
    RequestView,
    SearchHit,
    SearchPage,
)

__all__ = [
    "ApprovedInput",
    "AsyncParty",
    "AutoApproval",
    "Client",
    "ComputationInfo",
    "DatasetView",
    "FetchedResult",
    "Party",
    "ProtocolRun",
    "Published",
    "RequestStatus",
    "RequestView",
    "SearchHit",
    "SearchPage",
    "content_root",
    "exact_rule",
]
