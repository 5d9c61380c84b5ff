"""Reports over the stored feedback: counts by sentiment, aspect, channel and period; the theme report."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from bazkhord.model.domain import DomainShift, domain_shift
from bazkhord.model.themes.analysis import ThemeSettings
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.deps import (
    ReportCaller,
    Services,
    ServicesDep,
    check_taxonomy,
    describe,
    report_filters,
    responses,
)
from bazkhord.service.errors import ApiError
from bazkhord.service.schemas import SummaryResponse
from bazkhord.service.store import Filters

router = APIRouter(tags=["reports"])
Period = Literal["day", "week", "month"]
FiltersDep = Annotated[Filters, Depends(report_filters)]


@router.get("/v1/reports/summary", response_model=SummaryResponse, responses=responses(401, 403, 422, 429))
async def summary(caller: ReportCaller, services: ServicesDep, filters: FiltersDep, period: Period = "week"
                  ) -> SummaryResponse:
    """Counts over stored feedback: sentiment, aspects with their polarity, channels, model versions, and a
    series by `period` (of `created_at`, UTC)."""
    result = await run_in_threadpool(services.store.summary, filters, period)
    return SummaryResponse(filters=describe(filters), **result,
                           domain_shift=await run_in_threadpool(summary_shift, services, filters))


def summary_shift(services: Services, filters: Filters) -> DomainShift | None:
    """The out-of-domain check of the active model over the newest stored comments (None without a model, or a
    model folder trained before it kept a domain profile)."""
    try:
        loaded = services.active()
    except ApiError:
        return None
    texts, confidences = services.store.shift_sample(filters)
    return domain_shift(getattr(loaded.tagger, "domain_profile", None), loaded.tagger.normalise(texts), confidences)


@router.get("/v1/reports/themes", response_model=ThemeReport,
            responses={**responses(401, 403, 422, 429, 503), 200: {"content": {"text/html": {}}}})
async def stored_themes(caller: ReportCaller, services: ServicesDep, filters: FiltersDep, period: Period = "week",
                        format: Literal["json", "html"] = "json",
                        seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 13,
                        min_theme_size: Annotated[int, Query(ge=2, le=10_000)] = 8,
                        taxonomy: Annotated[str, Query(pattern=r"^[a-z_]{1,40}$")] = "auto") -> Any:
    """The theme report (see the themes docs) over the newest stored comments that match the filters, at most
    `max_theme_items` of them; `format=html` gives the analysts' RTL page."""
    limit = services.settings.max_theme_items
    records, matched = await run_in_threadpool(services.store.records, filters, limit)
    curator = await run_in_threadpool(services.theme_store.curator)  # the workspace's codebook applies here too
    # So do the causes its analysts accepted, unless the caller names a taxonomy.
    codebook = (await run_in_threadpool(services.theme_store.domain_codebook))[0] if taxonomy == "auto" else None
    report = await services.themes(records, ThemeSettings(period=period, seed=seed, min_theme_size=min_theme_size,
                                                          taxonomy=check_taxonomy(taxonomy, "query"),
                                                          codebook=codebook), curator)
    if matched > len(records):
        report.notes.append(f"{matched} stored comments matched; the newest {len(records)} were analysed "
                            "(BAZKHORD_MAX_THEME_ITEMS)")
    if format == "html":
        from bazkhord.service.theme_report import render_html

        return HTMLResponse(render_html(report))
    return report
