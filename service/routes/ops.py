"""Open routes for operators: liveness, readiness (with the model served) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bazkhord.service.answers import model_info
from bazkhord.service.deps import ServicesDep
from bazkhord.service.schemas import Health, Ready

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(services: ServicesDep) -> Any:
    loaded = services.registry.active
    if loaded is None:
        return JSONResponse(status_code=503, content=Ready(status="not ready", reason=services.load_error).model_dump())
    return Ready(status="ready", model=model_info(loaded))


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(services: ServicesDep) -> Response:
    return Response(with_label(generate_latest(services.metrics.registry), "process", services.process),
                    media_type=CONTENT_TYPE_LATEST)


def with_label(exposition: bytes, name: str, value: str) -> bytes:
    """Prometheus text with `name="value"` added to every sample (prometheus_client has no constant labels)."""
    label = f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
    lines = []
    for line in exposition.decode("utf-8").splitlines():
        if line and not line.startswith("#"):
            head, _, rest = line.partition(" ")
            if "{" in head:
                metric, _, labels = line.partition("{")
                line = f"{metric}{{{label},{labels}"
            else:
                line = f"{head}{{{label}}} {rest}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode("utf-8")
