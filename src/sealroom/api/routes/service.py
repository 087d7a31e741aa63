"""The service itself: health and the computation catalogue."""

from __future__ import annotations

from fastapi import APIRouter

from sealroom import __version__
from sealroom.api.auth import ApiDep
from sealroom.wire import ComputationInfo, ComputationList, Health

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/v1/health", response_model=Health)
def health(api: ApiDep) -> Health:
    api.coordinator.state.ping()
    return Health(status="ok", version=__version__)


@router.get("/v1/computations", response_model=ComputationList)
def computations(api: ApiDep) -> ComputationList:
    return ComputationList(
        computations=tuple(
            ComputationInfo(
                id=c.id,
                version=c.version,
                summary=c.summary,
                privacy_class=c.privacy_class,
                release=c.release,
                inputs=tuple(c.input_names),
                variadic=c.variadic,
                code_digest=c.code_digest,
                isolating=c.isolating,
                selectors=c.selectors,
                parameters_schema=c.params.model_json_schema(),
                output_schema=c.output.model_json_schema(),
            )
            for c in api.coordinator.state.registry
        )
    )
