"""Tagging a batch of comments, and the theme report of a batch (neither is stored)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from bazkhord.data.pii import mask_optional, mask_pii
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.base import mask_evidence
from bazkhord.model.themes.analysis import ThemeSettings
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.answers import model_info, to_result
from bazkhord.service.checks import check_created_at, check_limits
from bazkhord.service.deps import TAG_ERRORS, ReportCaller, ServicesDep, TagCaller, check_codebook, check_taxonomy
from bazkhord.service.schemas import TagRequest, TagResponse, ThemeRequest

router = APIRouter()


@router.post("/v1/tag", response_model=TagResponse, tags=["tagging"], responses=TAG_ERRORS)
async def tag(body: TagRequest, caller: TagCaller, services: ServicesDep) -> Response:
    items = body.as_items()
    check_limits([item.text for item in items], body.items is not None, services.settings,
                 normalise=services.normaliser())
    loaded, tags = await services.tag([item.text for item in items], caller)
    answer = TagResponse(
        model=model_info(loaded),
        results=[to_result(item.id, mask_evidence(t, item.text), loaded) for item, t in zip(items, tags, strict=True)],
    )
    # Already a validated TagResponse: serialise it once, rather than have FastAPI validate it again.
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/v1/themes", response_model=ThemeReport, tags=["themes"], responses=TAG_ERRORS)
async def themes(body: ThemeRequest, caller: ReportCaller, services: ServicesDep) -> ThemeReport:
    """Root-cause themes of a batch of comments: the same report as `bazkhord report`'s report.json."""
    settings = services.settings
    check_limits([item.text for item in body.items], True, settings, max_texts=settings.max_theme_items,
                 normalise=services.normaliser())
    times = [check_created_at(i.created_at, ["items", n, "created_at"], settings) for n, i in enumerate(body.items)]
    # The report quotes texts masked; its ids and metadata (which it lists and breaks down by) are masked here.
    records = [FeedbackRecord(text=i.text, id=mask_optional(i.id), channel=mask_optional(i.channel), created_at=t,
                              rating=i.rating, nps=i.nps, product=mask_optional(i.product),
                              segment=mask_optional(i.segment),
                              fields={k: tuple(mask_pii(v) for v in vs) for k, vs in i.field_values().items()})
               for i, t in zip(body.items, times, strict=True)]
    return await services.themes(records, ThemeSettings(period=body.period, seed=body.seed,
                                                        min_theme_size=body.min_theme_size,
                                                        taxonomy=check_taxonomy(body.taxonomy, "body"),
                                                        codebook=check_codebook(body.codebook, "body")))
