"""Corrections (scope curate), the review queue (curate) and the retraining on corrections (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from bazkhord.data.errors import BazkhordError
from bazkhord.service.answers import to_stored
from bazkhord.service.corrections import Change, CorrectionError
from bazkhord.service.deps import AdminCaller, CurateCaller, ReportCaller, Services, ServicesDep, responses
from bazkhord.service.errors import ApiError
from bazkhord.service.retraining import RetrainBusy
from bazkhord.service.schemas import (
    CorrectionList,
    CorrectionOut,
    CorrectionRequest,
    CorrectionResponse,
    ErrorDetail,
    RetrainJobOut,
    ReviewItem,
    ReviewQueue,
    ReviewReason,
)
from bazkhord.service.store import Stored

router = APIRouter(tags=["corrections"])


def changes_of(body: CorrectionRequest) -> list[Change]:
    seen: dict[str, int] = {}
    for n, item in enumerate(body.items):
        if item.client_id in seen:
            raise ApiError(422, "repeated_client_id", f"client_id {item.client_id!r} occurs twice in one request",
                           [ErrorDetail(location=["items", n, "client_id"], message=f"already in items[{seen[item.client_id]}]")])
        seen[item.client_id] = n
    return [Change(i.client_id, i.sentiment, dict(i.aspects),
                   (i.statement.start, i.statement.theme_id) if i.statement else None, i.confirm) for i in body.items]


async def record(services: Services, changes: list[Change], made_by: str) -> list[Stored]:
    labels = services.labels()
    try:
        return await run_in_threadpool(services.corrections.correct, changes, labels, made_by)
    except CorrectionError as error:
        raise ApiError(error.status, error.code, str(error),
                       [ErrorDetail(location=location, message=message) for location, message in error.problems]
                       ) from None
    except BazkhordError as error:  # the codebook refused a move
        raise ApiError(422, "invalid_correction", str(error)) from None


@router.post("/v1/corrections", response_model=CorrectionResponse,
             responses=responses(401, 403, 404, 413, 422, 429, 503))
async def correct(body: CorrectionRequest, caller: CurateCaller, services: ServicesDep) -> CorrectionResponse:
    """Correct stored comments: the sentiment, an aspect (a polarity, or `absent`), a complaint statement's theme,
    or `confirm` the model's reading as right. The model's own tags are kept beside; answers and reports show the
    human label, marked `sentiment_source: human` / `source: human`. All or nothing: one bad item stores none."""
    stored = await record(services, changes_of(body), caller.name)
    taxonomy = services.taxonomy()
    return CorrectionResponse(results=[to_stored(s, "stored", taxonomy) for s in stored])


@router.get("/v1/corrections", response_model=CorrectionList, responses=responses(401, 403, 422, 429))
async def corrections(caller: ReportCaller, services: ServicesDep,
                      client_id: Annotated[str | None, Query(max_length=200)] = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> CorrectionList:
    """The newest corrections (of one comment with `client_id`), with who made them and when."""
    rows = await run_in_threadpool(services.corrections.history, client_id, limit)
    total, comments = await run_in_threadpool(services.corrections.counts)
    return CorrectionList(total=total, corrected_comments=comments, corrections=[
        CorrectionOut(id=c.id, client_id=cid, field=c.field, aspect=c.aspect, value=c.value,  # type: ignore[arg-type]
                      model_value=c.model_value, start=c.start, made_by=c.made_by, made_at=c.made_at)
        for c, cid in rows])


@router.get("/v1/review", response_model=ReviewQueue, responses=responses(401, 403, 422, 429, 503))
async def review(caller: CurateCaller, services: ServicesDep,
                 limit: Annotated[int, Query(ge=1, le=100)] = 10, rebuild: bool = False) -> ReviewQueue:
    """The next comments worth correcting, best first, each with why (the model unsure, the TF-IDF baseline
    reading it otherwise, its theme in doubt); answered ones leave the queue."""
    loaded = services.active()
    queue, unanswered = await run_in_threadpool(services.review.waiting, loaded, services.corrections.corrected_among,
                                                rebuild)
    waiting = unanswered[:limit]
    found = await run_in_threadpool(services.store.find, [c for c, _ in waiting])
    taxonomy = services.taxonomy()
    items = []
    for client_id, reason in waiting:
        row = found.get(client_id)
        if row is None:
            continue
        answer = to_stored(row, "stored", taxonomy)
        items.append(ReviewItem(client_id=client_id, text=row.text, sentiment=row.sentiment,
                                probabilities=row.probabilities, aspects=answer.aspects,
                                reason=ReviewReason(uncertainty=reason.uncertainty, disagreement=reason.disagreement,
                                                    theme_doubt=reason.theme_doubt, worth=reason.worth)))
    return ReviewQueue(items=items, queued=len(queue.items), corrected=len(queue.items) - len(unanswered),
                       built_at=queue.built_at)


def job_out(job: object) -> RetrainJobOut:
    return RetrainJobOut.model_validate(job, from_attributes=True)


@router.post("/v1/retraining", response_model=RetrainJobOut, status_code=202,
             responses=responses(401, 403, 409, 429, 503))
async def start_retraining(caller: AdminCaller, services: ServicesDep) -> RetrainJobOut:
    """Retrain the active model with the store's corrections in a background process. The new version is activated
    only if it beats the active one on held-out corrections (and is not worse on RETRAIN_TEST_FILE); poll
    `GET /v1/retraining/{id}` for progress and the verdict."""
    loaded = services.active()
    try:
        job_id = await run_in_threadpool(services.retraining.start, loaded.name, caller.name)
    except RetrainBusy as error:
        raise ApiError(409, "retraining_running", str(error)) from None
    return job_out(await run_in_threadpool(services.retraining.job, job_id))


@router.get("/v1/retraining", response_model=list[RetrainJobOut], responses=responses(401, 403, 429))
async def retraining_jobs(caller: AdminCaller, services: ServicesDep) -> list[RetrainJobOut]:
    await run_in_threadpool(services.retraining.settle)
    return [job_out(j) for j in await run_in_threadpool(services.retraining.jobs, 20)]


@router.get("/v1/retraining/{job_id}", response_model=RetrainJobOut, responses=responses(401, 403, 404, 429))
async def retraining_job(job_id: int, caller: AdminCaller, services: ServicesDep) -> RetrainJobOut:
    await run_in_threadpool(services.retraining.settle)
    job = await run_in_threadpool(services.retraining.job, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no retraining job {job_id}")
    return job_out(job)
