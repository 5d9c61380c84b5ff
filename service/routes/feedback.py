"""The feedback store: comments stored with their tags (idempotent on client_id), and read back one by one."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from bazkhord.data.pii import find_pii, mask_optional, mask_pii
from bazkhord.service.answers import to_stored
from bazkhord.service.checks import check_created_at, check_limits, check_no_nul
from bazkhord.service.deps import IngestCaller, ReportCaller, ServicesDep, responses
from bazkhord.service.errors import ApiError
from bazkhord.service.schemas import ErrorDetail, FeedbackRequest, FeedbackResponse, StoredFeedback
from bazkhord.service.store import ConflictError, NewFeedback, Stored, sha256_text

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", response_model=FeedbackResponse, responses=responses(401, 403, 409, 413, 422, 429, 503))
async def ingest(body: FeedbackRequest, caller: IngestCaller, services: ServicesDep) -> FeedbackResponse:
    """Store comments with their tags. Idempotent on `client_id`: sending a comment again (a retry) stores
    nothing new and answers `duplicate` with what was stored; the same `client_id` with another text is 409."""
    settings = services.settings
    check_limits([item.text for item in body.items], True, settings, normalise=services.normaliser())
    times = [check_created_at(i.created_at, ["items", n, "created_at"], settings) for n, i in enumerate(body.items)]
    seen: dict[str, int] = {}
    for index, item in enumerate(body.items):
        if item.client_id in seen:
            raise ApiError(422, "repeated_client_id", f"client_id {item.client_id!r} occurs twice in one request",
                           [ErrorDetail(location=["items", index, "client_id"],
                                        message=f"already used by items[{seen[item.client_id]}]")])
        seen[item.client_id] = index
    # An id must stay what the caller sent (it is how a retry is recognised), so one that holds personal data is
    # refused rather than masked.
    for index, item in enumerate(body.items):
        if (found := find_pii(item.client_id)):
            raise ApiError(422, "personal_data_in_id", f"client_id holds personal data ({found[0].placeholder})",
                           [ErrorDetail(location=["items", index, "client_id"],
                                        message="use an opaque id (an order or ticket number), not a phone number")])
    # Personal data is masked before the comment is tagged and stored (unless the deployment keeps raw text), so
    # the stored text, its evidence offsets and every report built from the store hold placeholders only; the
    # metadata too (a phone number typed as a channel or a product).
    keep = (lambda text: text) if settings.store_raw_text else mask_pii
    new = [NewFeedback(client_id=i.client_id, text=keep(i.text), channel=mask_optional(i.channel, keep),
                       product=mask_optional(i.product, keep), segment=mask_optional(i.segment, keep), rating=i.rating,
                       nps=i.nps, created_at=t)
           for i, t in zip(body.items, times, strict=True)]
    stored = await run_in_threadpool(services.store.find, [n.client_id for n in new])
    # A retry matches what was stored, masked or (stored before masking, or by a raw-text deployment) as sent.
    conflicts = [i for i, (n, item) in enumerate(zip(new, body.items, strict=True)) if n.client_id in stored
                 and stored[n.client_id].text_sha256 not in (n.text_sha256, sha256_text(item.text))]
    if conflicts:
        raise ApiError(409, "client_id_conflict", "client ids already stored with a different text; nothing was "
                       "stored", [ErrorDetail(location=["items", i, "client_id"], message="stored with another text")
                                  for i in conflicts])
    todo = [n for n in new if n.client_id not in stored]
    created: dict[str, Stored] = {}
    if todo:
        loaded, tags = await services.tag([n.text for n in todo], caller)
        try:
            added = await run_in_threadpool(services.store.add, todo, tags, loaded.name, loaded.version, caller.id)
        except ConflictError as error:
            raise ApiError(409, "client_id_conflict", str(error)) from None
        for row, was_new in added:
            (created if was_new else stored)[row.client_id] = row
        services.metrics.feedback.inc(sum(1 for _, was_new in added if was_new))
    taxonomy = services.taxonomy()
    return FeedbackResponse(results=[
        to_stored(created[n.client_id], "created", taxonomy) if n.client_id in created
        else to_stored(stored[n.client_id], "duplicate", taxonomy, reader=caller.id) for n in new])


# `:path`: a client_id may hold "/" (it is stored as sent), so the rest of the path is the id.
@router.get("/v1/feedback/{client_id:path}", response_model=StoredFeedback, responses=responses(401, 403, 404, 422, 429))
async def get_feedback(client_id: str, caller: ReportCaller, services: ServicesDep) -> StoredFeedback:
    check_no_nul([(["path", "client_id"], client_id)])
    found = await run_in_threadpool(services.store.find, [client_id])
    if client_id not in found:
        raise ApiError(404, "not_found", f"no stored comment has client_id {client_id!r}")
    return to_stored(found[client_id], "stored", services.taxonomy())
