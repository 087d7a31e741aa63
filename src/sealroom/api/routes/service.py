"""The service itself: liveness, readiness, health and the computation catalogue.

``/healthz`` and ``/readyz`` are the probes an orchestrator polls (Docker healthchecks,
Kubernetes): outside ``/v1`` because they are about this process, not the protocol.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sealroom import __version__
from sealroom.api.auth import ApiDep
from sealroom.coordinator.readiness import Readiness as ReadinessChecks
from sealroom.wire import ComputationInfo, ComputationList, Health, Readiness, ReadinessCheck

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers (touches nothing else, so a slow database never gets a
    live process restarted)."""
    return Health(status="ok", version=__version__)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: the failing checks say why"}},
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers, its schema is at this release's head, and the loaded
    log key signs the log's newest checkpoint. 503 (with every check) otherwise."""
    probes: ReadinessChecks = request.app.state.readiness
    checks = tuple(ReadinessCheck(name=p.name, ok=p.ok, detail=p.detail) for p in probes.check())
    ready = all(c.ok for c in checks)
    body = Readiness(status="ready" if ready else "not-ready", version=__version__, checks=checks)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


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
