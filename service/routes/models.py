"""The model registry (scope admin): the versions of the served model, activation and rollback."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from bazkhord.data.errors import ModelFolderError
from bazkhord.model.folder import LoadedModel
from bazkhord.service.answers import model_info
from bazkhord.service.deps import AdminCaller, Services, ServicesDep, responses
from bazkhord.service.errors import ApiError
from bazkhord.service.schemas import ActivateRequest, ModelInfo, ModelsResponse, ModelVersion

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelsResponse, responses=responses(401, 403, 429, 503))
async def models(caller: AdminCaller, services: ServicesDep) -> ModelsResponse:
    loaded = services.active()
    rows = await run_in_threadpool(services.registry.versions)
    return ModelsResponse(name=loaded.name, active=loaded.version, versions=[ModelVersion(**r) for r in rows])


@router.post("/v1/models/activate", response_model=ModelInfo, responses=responses(401, 403, 409, 422, 429, 503))
async def activate(body: ActivateRequest, caller: AdminCaller, services: ServicesDep) -> ModelInfo:
    """Serve another version of the model. It is loaded, checked and warmed up first; requests in flight
    finish on the old one. A folder that does not load is refused (409) and the active model keeps serving."""
    return await swap(services, lambda: services.registry.activate(body.version, caller.name))


@router.post("/v1/models/rollback", response_model=ModelInfo, responses=responses(401, 403, 409, 429, 503))
async def rollback(caller: AdminCaller, services: ServicesDep) -> ModelInfo:
    """Serve again the version that was active before the current one."""
    return await swap(services, lambda: services.registry.rollback(caller.name))


async def swap(services: Services, change: Callable[[], LoadedModel]) -> ModelInfo:
    services.active()
    try:
        loaded = await run_in_threadpool(change)
    except ModelFolderError as error:
        raise ApiError(409, "model_refused", f"{error}; the active model keeps serving") from None
    services.metrics.set_model(loaded.name, loaded.version, str(loaded.manifest["kind"]))
    return model_info(loaded)
