"""The analysts' workspace under /app/: server-rendered pages (Jinja2) over the stored themes, in Persian, right to
left, with nothing loaded from another host. Reading needs a key with scope `report`; changing the themes `curate`;
the webhooks `admin`. Pages work without scripts: filters are a GET form (so a view is a link), writes are POST forms
that carry the session's CSRF token and answer 303 back to the page.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import ClientDisconnect

from bazkhord.data.calendar import CALENDARS, format_date, persian_digits
from bazkhord.data.errors import BazkhordError, DataError, InputError
from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.themes.discovery import DISCOVERED
from bazkhord.service.auth import retry_after_header
from bazkhord.service.corrections import Change, CorrectionError
from bazkhord.service.deps import Services, ServicesDep
from bazkhord.service.gate import client_address
from bazkhord.service.retraining import RetrainBusy
from bazkhord.service.sessions import COOKIE, SignedIn
from bazkhord.service.store import Filters
from bazkhord.service.theme_report import looks_like_formula

HERE = Path(__file__).resolve().parent.parent
PERIODS = {"week": "هفته", "month": "ماه", "day": "روز"}
SENTIMENT_FA = {"negative": "منفی", "positive": "مثبت", "neutral": "خنثی", "mixed": "دوگانه"}
DIRECTION_FA = {"rising": "رو به افزایش", "falling": "رو به کاهش", "steady": "پایدار",
                "insufficient history": "داده ناکافی", "too few comments": "نظر کم"}
FIELD_FA = {"channel": "کانال", "product": "محصول", "segment": "بخش مشتری", "model_version": "نسخه مدل"}

router = APIRouter(prefix="/app", include_in_schema=False)
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
templates.filters["fa"] = persian_digits
templates.filters["pct"] = lambda v, d=1: "—" if v is None else persian_digits(f"{100 * v:.{d}f}") + "٪"
templates.globals.update(SENTIMENT_FA=SENTIMENT_FA, DIRECTION_FA=DIRECTION_FA, FIELD_FA=FIELD_FA, PERIODS=PERIODS)


class SignInNeeded(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class Refused(Exception):
    """A page answers with a message and a 4xx status (a missing scope, a bad CSRF token, bad input)."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


def add_workspace(app: FastAPI) -> None:
    app.mount("/app/static", StaticFiles(directory=HERE / "static"), name="app-static")
    app.include_router(router)

    @app.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, error: SignInNeeded) -> Response:
        return RedirectResponse(f"/app/login?{urlencode({'next': error.next_path})}", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        return page(request, "message.html", {"title": "درخواست پذیرفته نشد", "message": error.message},
                    status=error.status)


# -- who is asking -------------------------------------------------------------------------------------------------
async def signed_in(request: Request, services: ServicesDep) -> SignedIn:
    found = await run_in_threadpool(services.sessions.find, request.cookies.get(COOKIE))
    if found is None:
        raise SignInNeeded(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    request.state.signed_in = found
    return found


Reader = Annotated[SignedIn, Depends(signed_in)]


async def form_of(request: Request, user: SignedIn, scope: str, limit: int = 20_000) -> dict[str, str]:
    """A write's form fields (the first `limit` bytes), after its scope and CSRF token are checked."""
    if not user.caller.allows(scope):
        raise Refused(403, f"کلید «{user.caller.name}» اجازه این کار را ندارد (دسترسی {scope} لازم است).")
    try:
        body = (await request.body())[:limit].decode("utf-8", errors="replace")
    except ClientDisconnect:  # the browser went elsewhere mid-form: nothing to change, and nobody to answer
        raise Refused(400, "فرم کامل نرسید.") from None
    fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    if not user.csrf_ok(fields.get("csrf")):
        raise Refused(403, "نشانه CSRF فرم نادرست است یا نیامده است؛ صفحه را دوباره باز کنید.")
    return fields


def number(fields: dict[str, str], name: str) -> int:
    try:
        return int(fields.get(name, ""))
    except ValueError:
        raise Refused(422, f"فیلد {name} باید یک شماره باشد.") from None


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    user: SignedIn | None = getattr(request.state, "signed_in", None)
    view = View.of(request)
    html = templates.get_template(name).render(
        request=request, user=user, view=view, can_curate=user is not None and user.caller.allows("curate"),
        is_admin=user is not None and user.caller.allows("admin"), csrf=user.csrf if user else "",
        day=lambda moment: day_label(moment, view.calendar), **context)
    return HTMLResponse(html, status_code=status)


def day_label(moment: datetime | date | None, calendar: str) -> dict[str, str]:
    if moment is None:
        return {"text": "—", "title": ""}
    return {"text": format_date(moment, calendar), "title": (moment.date() if isinstance(moment, datetime) else moment)
            .isoformat()}


class View:
    """The filters and display choices of a page, read from (and written back into) its URL."""

    FIELDS = ("from", "to", "channel", "product", "segment", "model_version", "period", "calendar")

    def __init__(self, values: dict[str, str]) -> None:
        self.values = {k: v for k, v in values.items() if k in self.FIELDS and v}
        self.period = self.values.get("period", "month") if self.values.get("period") in PERIODS else "month"
        self.calendar = self.values.get("calendar", "jalali") if self.values.get("calendar") in CALENDARS else "jalali"

    @classmethod
    def of(cls, request: Request) -> View:
        return cls({k: v[:200] for k, v in request.query_params.items()})

    def filters(self) -> Filters:
        def day(name: str) -> datetime | None:
            text = self.values.get(name)
            if not text:
                return None
            try:
                return datetime.combine(date.fromisoformat(text), time())  # a day of UTC, as the store keeps times
            except ValueError:
                raise Refused(422, f"تاریخ «{text}» در فیلد {name} خوانا نیست (YYYY-MM-DD).") from None

        start, end = day("from"), day("to")
        return Filters(start=start, end=end + timedelta(days=1) if end else None, channel=self.values.get("channel"),
                       product=self.values.get("product"), segment=self.values.get("segment"),
                       model_version=self.values.get("model_version"))

    def query(self, **changes: Any) -> str:
        values = {**self.values, **{k: str(v) for k, v in changes.items() if v is not None}}
        return urlencode({k: v for k, v in values.items() if v})


# -- sign in -------------------------------------------------------------------------------------------------------
@router.get("/login")
async def login_page(request: Request, next: str = "/app/") -> HTMLResponse:
    return page(request, "login.html", {"next": safe_next(next), "error": None})


def safe_next(target: str) -> str:
    """Only a path of this workspace: never another host (an open redirect)."""
    return target if target.startswith("/app/") and not target.startswith("//") else "/app/"


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    wait = services.guard.acquire(client_address(request.scope))
    if wait > 0:
        response = page(request, "login.html", {"next": "/app/", "error": "تلاش‌های ورود زیاد بود؛ کمی بعد دوباره "
                                                 "امتحان کنید."}, status=429)
        response.headers["Retry-After"] = retry_after_header(wait)
        return response
    body = (await request.body())[:4000].decode("utf-8", errors="replace")
    fields = {k: v[0] for k, v in parse_qs(body).items()}
    made = await run_in_threadpool(services.sessions.sign_in, fields.get("key", ""))
    if made is None:
        return page(request, "login.html", {"next": safe_next(fields.get("next", "/app/")),
                                            "error": "کلید نادرست یا باطل است، یا دسترسی report ندارد."}, status=401)
    token, _ = made
    signed = RedirectResponse(safe_next(fields.get("next", "/app/")), status_code=303)
    signed.set_cookie(COOKIE, token, max_age=services.settings.session_minutes * 60, httponly=True,
                      samesite="strict", secure=request.url.scheme == "https", path="/app")
    return signed


@router.post("/logout")
async def logout(request: Request, services: ServicesDep, user: Reader) -> Response:
    await form_of(request, user, "report")
    await run_in_threadpool(services.sessions.sign_out, user.session_id)
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(COOKIE, path="/app")
    return response


# -- reading -------------------------------------------------------------------------------------------------------
@router.get("/")
async def overview(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    view = View.of(request)
    loaded = services.registry.active
    confusion = loaded.manifest.get("metrics", {}).get("dev_confusion") if loaded is not None else None
    filters = view.filters()
    names, runs, options = await asyncio.gather(run_in_threadpool(services.theme_store.names),
                                                run_in_threadpool(services.theme_store.runs, 1),
                                                run_in_threadpool(services.workspace.options))
    data = await run_in_threadpool(services.workspace.overview, filters, view.period, view.calendar, confusion, names)
    latest = await run_in_threadpool(services.theme_store.latest_run)
    shift, discovered = (await run_in_threadpool(services.theme_store.run_warnings, latest) if latest is not None
                         else (None, False))
    return page(request, "overview.html", {"data": data, "run": runs[0] if runs else None, "options": options,
                                           "title": "نمای کلی", "shift": shift, "discovered": discovered})


@router.get("/themes/{theme_id}")
async def theme_page(request: Request, services: ServicesDep, user: Reader, theme_id: int,
                     q: Annotated[str | None, Query(max_length=200)] = None,
                     page_number: Annotated[int, Query(alias="page", ge=0, le=100_000)] = 0,
                     sub: int | None = None) -> HTMLResponse:
    view = View.of(request)
    filters = view.filters()
    names = await run_in_threadpool(services.theme_store.names)
    name = names.get(theme_id)
    if name is None:
        raise Refused(404, f"موضوعی با شماره {theme_id} نیست.")
    data, (rows, total) = await asyncio.gather(
        run_in_threadpool(services.workspace.theme, theme_id, filters, view.period, view.calendar),
        run_in_threadpool(services.workspace.statements, theme_id, filters, q, page_number, subtheme=sub))
    others = sorted((n for n in names.values() if n.id != theme_id and not n.hidden and n.merged_into is None),
                    key=lambda n: n.label)
    options = await run_in_threadpool(services.workspace.options)
    return page(request, "theme.html", {"options": options,
        "title": name.label, "theme": name, "data": data, "rows": rows, "total": total, "q": q or "",
        "page_number": page_number, "pages": (total + 24) // 25, "sub": sub, "others": others,
        "merged": [n for n in names.values() if n.merged_into == theme_id]})


@router.get("/themes/{theme_id}/statements.csv")
async def export(request: Request, services: ServicesDep, user: Reader, theme_id: int,
                 q: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    view = View.of(request)
    rows = await run_in_threadpool(services.workspace.export, theme_id, view.filters(), q)
    subs = await run_in_threadpool(services.theme_store.sub_names)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["comment_id", "created_at", "created_at_jalali", "channel", "product", "segment", "subtheme",
                     "statement", "sentiment"])
    for row in rows:
        cells = [row["comment_id"], row["created_at"].date().isoformat(), format_date(row["created_at"], "jalali"),
                 row["channel"], row["product"], row["segment"],
                 subs.get(row["subtheme_id"], (0, ""))[1] if row["subtheme_id"] else "", row["statement"],
                 row["sentiment"]]
        writer.writerow(["'" + c if isinstance(c, str) and looks_like_formula(c) else c for c in cells])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="theme-{theme_id}.csv"'})


@router.get("/comments/{client_id}")
async def comment_page(request: Request, services: ServicesDep, user: Reader, client_id: str) -> HTMLResponse:
    if len(client_id) > 200:
        raise Refused(422, "شناسه نظر بیش از ۲۰۰ نویسه است.")
    data = await run_in_threadpool(services.workspace.comment, client_id)
    if data is None:
        raise Refused(404, "نظری با این شناسه در انبار نیست.")
    return page(request, "comment.html", {"title": "نظر", "c": data, "back": f"/app/comments/{quote(client_id)}",
                                          "history": await run_in_threadpool(services.corrections.history, client_id),
                                          **await correcting(services)})


async def correcting(services: Services) -> dict[str, Any]:
    """What the correction form needs: the model's labels, aspect names, the themes a statement may move to."""
    names = await run_in_threadpool(services.theme_store.names)
    taxonomy = services.taxonomy()
    loaded = services.registry.active
    labels = services.labels() if loaded is not None else None
    return {"names": names, "labels": labels, "shortcuts": False,
            "aspect_names": {a.key: a.name_fa for a in taxonomy.aspects} if taxonomy is not None else {},
            "others": sorted((n for n in names.values() if not n.hidden and n.merged_into is None),
                             key=lambda n: n.label)}


@router.get("/review")
async def review_page(request: Request, services: ServicesDep, user: Reader,
                      skip: Annotated[str, Query(max_length=10_000)] = "") -> HTMLResponse:
    if not user.caller.allows("curate"):
        raise Refused(403, f"کلید «{user.caller.name}» اجازه اصلاح ندارد (دسترسی curate لازم است).")
    loaded = services.registry.active
    if loaded is None:
        raise Refused(503, "مدلی بارگذاری نشده است؛ صف بازبینی بدون مدل ساخته نمی‌شود.")
    queue, unanswered = await run_in_threadpool(services.review.waiting, loaded, services.corrections.corrected_among)
    skipped = [s for s in skip.split(",") if s][:200]
    waiting = [(cid, reason) for cid, reason in unanswered if cid not in skipped]
    data, reason = None, None
    for cid, why in waiting[:5]:  # a comment deleted since the queue was built is passed over
        data = await run_in_threadpool(services.workspace.comment, cid)
        if data is not None:
            reason = why
            break
    _, total_corrected = await run_in_threadpool(services.corrections.counts)
    context = await correcting(services)
    context["shortcuts"] = True
    back = "/app/review" + (f"?{urlencode({'skip': ','.join(skipped)})}" if skipped else "")
    next_skip = urlencode({"skip": ",".join([*skipped, data["client_id"]])}) if data else ""
    return page(request, "review.html", {"title": "صف بازبینی", "c": data, "reason": reason, "queued": len(queue.items),
                                         "corrected": len(queue.items) - len(unanswered),
                                         "total_corrected": total_corrected, "back": back,
                                         "skip_query": next_skip, **context})


@router.post("/review/rebuild")
async def rebuild_queue(request: Request, services: ServicesDep, user: Reader) -> Response:
    await form_of(request, user, "curate")
    loaded = services.registry.active
    if loaded is not None:
        await run_in_threadpool(services.review.queue, loaded, services.corrections.corrected_among, True)
    return RedirectResponse("/app/review", status_code=303)


@router.post("/comments/{client_id}/correct")
async def correct_comment(request: Request, services: ServicesDep, user: Reader, client_id: str) -> Response:
    fields = await form_of(request, user, "curate")
    aspects = {name.removeprefix("aspect:"): value for name, value in fields.items()
               if name.startswith("aspect:") and value}
    if fields.get("add_aspect"):
        aspects[fields["add_aspect"]] = fields.get("add_polarity", "")
    moves = [(number({"n": name.removeprefix("move:")}, "n"), number(fields, name)) for name, value in fields.items()
             if name.startswith("move:") and value]
    changes = [Change(client_id, fields.get("sentiment") or None, aspects, moves[0] if moves else None,
                      fields.get("confirm") == "1")]
    changes += [Change(client_id, statement=move) for move in moves[1:]]
    if services.registry.active is None:
        raise Refused(503, "مدلی بارگذاری نشده است؛ برچسب‌های مجاز را نمی‌دانیم.")
    try:  # one comment: a change per statement moved, the labels with the first; all stored or none
        await run_in_threadpool(services.corrections.correct, changes, services.labels(), user.caller.name)
    except CorrectionError as error:
        raise Refused(error.status if error.status < 500 else 422,
                      "اصلاح پذیرفته نشد: " + "؛ ".join(message for _, message in error.problems)) from None
    except InputError as error:
        raise Refused(422, str(error)) from None
    return RedirectResponse(back_to(fields, f"/app/comments/{quote(client_id)}"), status_code=303)


# Why a retraining's new version was activated or kept inactive, for the page (the API's `why` says it in English with
# the figures, which the page shows in its own column).
RETRAIN_REASONS = {
    "no_held_out": "هیچ اصلاح کنارگذاشته‌ای نبود که دو مدل روی آن سنجیده شوند",
    "held_out_not_higher": "نسخه تازه روی اصلاح‌های کنارگذاشته بهتر از مدل فعال نبود",
    "test_lower": "نسخه تازه روی فایل آزمون از مدل فعال پایین‌تر بود",
    "better": "نسخه تازه روی اصلاح‌های کنارگذاشته بهتر از مدل فعال بود",  # the page adds the test file where one was set
}


@router.get("/retraining")
async def retraining_page(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    await run_in_threadpool(services.retraining.settle)
    jobs = await run_in_threadpool(services.retraining.jobs, 20)
    _, corrected = await run_in_threadpool(services.corrections.counts)
    return page(request, "retraining.html", {
        "title": "بازآموزی", "jobs": jobs, "running": any(j.status == "running" for j in jobs), "corrected": corrected,
        "holdout": services.settings.retrain_holdout, "test_file": services.settings.retrain_test_file,
        "reasons": RETRAIN_REASONS})


@router.post("/retraining")
async def start_retraining(request: Request, services: ServicesDep, user: Reader) -> Response:
    await form_of(request, user, "admin")
    loaded = services.registry.active
    if loaded is None:
        raise Refused(503, "مدلی بارگذاری نشده است.")
    try:
        await run_in_threadpool(services.retraining.start, loaded.name, user.caller.name)
    except RetrainBusy:
        raise Refused(409, "یک بازآموزی هم‌اکنون در جریان است؛ پیشرفتش در همین صفحه دیده می‌شود.") from None
    return RedirectResponse("/app/retraining", status_code=303)


@router.get("/runs")
async def runs_page(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    runs = await run_in_threadpool(services.theme_store.runs, 30)
    return page(request, "runs.html", {"title": "اجراهای تحلیل موضوع", "runs": runs,
                                       "running": any(r.status == "running" for r in runs)})


@router.get("/alerts")
async def alerts_page(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    alerts = await run_in_threadpool(services.alerts.alerts)
    names = await run_in_threadpool(services.theme_store.names)
    return page(request, "alerts.html", {"title": "هشدارها", "alerts": alerts, "names": names})


@router.get("/codebook")
async def codebook_page(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    edits = await run_in_threadpool(services.theme_store.history)
    names = await run_in_threadpool(services.theme_store.names)
    subs = await run_in_threadpool(services.theme_store.sub_names)
    return page(request, "codebook.html", {"title": "کدبوک موضوع‌ها", "edits": edits, "names": names, "subs": subs})


@router.get("/causes")
async def causes_page(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    """The causes of a domain without a taxonomy: the newest run's draft codebook (or the one accepted), to edit and
    accept for the reports that follow."""
    accepted, row = await run_in_threadpool(services.theme_store.domain_codebook)
    run_id = await run_in_threadpool(services.theme_store.latest_run)
    report = await run_in_threadpool(services.theme_store.run_report, run_id) if run_id is not None else None
    draft = (report or {}).get("codebook_draft")
    shown = accepted if accepted is not None else (Taxonomy.from_dict(draft, "the draft") if draft else None)
    fit = (report or {}).get("taxonomy_fit") or {}
    return page(request, "causes.html", {"title": "علت‌های کشف‌شده", "codebook": shown, "accepted": row,
                                         "is_accepted": accepted is not None, "run_id": run_id, "fit": fit})


@router.post("/causes")
async def accept_causes(request: Request, services: ServicesDep, user: Reader) -> Response:
    """The edited draft accepted: each kept aspect with its name and seeds (comma separated); the next runs and
    stored reports assign comments to these causes."""
    fields = await form_of(request, user, "curate", limit=200_000)
    aspects = []
    for n in range(min(number(fields, "count"), 200)):
        if fields.get(f"keep_{n}") != "on":
            continue
        name = " ".join(fields.get(f"name_{n}", "").split())
        seeds = [seed.strip() for seed in re.split(r"[,،\n]", fields.get(f"seeds_{n}", "")) if seed.strip()]
        if not name or not seeds:
            raise Refused(422, f"علت شماره {n + 1}: نام و دست‌کم یک عبارت نمونه لازم است.")
        key = fields.get(f"key_{n}", "")[:64] or f"cause_{n + 1:02d}"
        aspects.append({"key": key, "name_fa": name[:100], "name_en": key, "seeds": [seed[:100] for seed in seeds[:50]]})
    if not aspects:
        raise Refused(422, "دست‌کم یک علت را نگه دارید، یا «بازگشت به انتخاب خودکار» را بزنید.")
    try:
        taxonomy = Taxonomy.from_dict({"domain": DISCOVERED, "aspect": aspects}, "the edited codebook")
    except DataError as error:
        raise Refused(422, str(error)) from None
    run_id = int(fields["run"]) if fields.get("run", "").isdigit() else None
    await run_in_threadpool(services.theme_store.accept_codebook, taxonomy, user.caller.name, run_id)
    return RedirectResponse("/app/causes?saved=1", status_code=303)


@router.post("/causes/reset")
async def reset_causes(request: Request, services: ServicesDep, user: Reader) -> Response:
    await form_of(request, user, "curate")
    await run_in_threadpool(services.theme_store.accept_codebook, None, user.caller.name)
    return RedirectResponse("/app/causes", status_code=303)


@router.get("/webhooks")
async def webhooks_page(request: Request, services: ServicesDep, user: Reader) -> HTMLResponse:
    if not user.caller.allows("admin"):
        raise Refused(403, "فهرست وب‌هوک‌ها فقط برای کلید admin است.")
    hooks = await run_in_threadpool(services.alerts.webhooks)
    return page(request, "webhooks.html", {"title": "وب‌هوک‌ها", "hooks": hooks})


# -- writing -------------------------------------------------------------------------------------------------------
async def edit(request: Request, services: Services, user: SignedIn, back: str, **change: Any) -> Response:
    try:
        await run_in_threadpool(lambda: services.theme_store.edit(made_by=user.caller.name, **change))
    except InputError as error:
        raise Refused(422, str(error)) from None
    return RedirectResponse(back, status_code=303)


def back_to(fields: dict[str, str], default: str) -> str:
    return safe_next(fields.get("back", default))


@router.post("/themes/{theme_id}/rename")
async def rename(request: Request, services: ServicesDep, user: Reader, theme_id: int) -> Response:
    fields = await form_of(request, user, "curate")
    return await edit(request, services, user, back_to(fields, f"/app/themes/{theme_id}"), action="rename",
                      theme=theme_id, label=fields.get("label", ""))


@router.post("/themes/{theme_id}/merge")
async def merge(request: Request, services: ServicesDep, user: Reader, theme_id: int) -> Response:
    fields = await form_of(request, user, "curate")
    target = number(fields, "target")
    return await edit(request, services, user, f"/app/themes/{target}", action="merge", theme=theme_id, target=target)


@router.post("/themes/{theme_id}/hide")
async def hide(request: Request, services: ServicesDep, user: Reader, theme_id: int) -> Response:
    fields = await form_of(request, user, "curate")
    return await edit(request, services, user, back_to(fields, "/app/"), action="hide", theme=theme_id)


@router.post("/subthemes/{sub_id}/rename")
async def rename_sub(request: Request, services: ServicesDep, user: Reader, sub_id: int) -> Response:
    fields = await form_of(request, user, "curate")
    return await edit(request, services, user, back_to(fields, "/app/"), action="rename_sub", subtheme=sub_id,
                      label=fields.get("label", ""))


@router.post("/subthemes/{sub_id}/split")
async def split(request: Request, services: ServicesDep, user: Reader, sub_id: int) -> Response:
    fields = await form_of(request, user, "curate")
    return await edit(request, services, user, back_to(fields, "/app/"), action="split", subtheme=sub_id,
                      label=fields.get("label") or None)


@router.post("/statements/{row_id}/move")
async def move(request: Request, services: ServicesDep, user: Reader, row_id: int) -> Response:
    """A statement's theme corrected: recorded as a correction (who, when) and applied as a codebook move."""
    fields = await form_of(request, user, "curate")
    try:
        await run_in_threadpool(services.corrections.move_statement, row_id, number(fields, "target"),
                                user.caller.name)
    except (CorrectionError, InputError) as error:
        raise Refused(422, str(error)) from None
    return RedirectResponse(back_to(fields, "/app/"), status_code=303)


@router.post("/codebook/{edit_id}/undo")
async def undo(request: Request, services: ServicesDep, user: Reader, edit_id: int) -> Response:
    await form_of(request, user, "curate")
    try:
        await run_in_threadpool(services.theme_store.undo, edit_id, user.caller.name)
    except InputError as error:
        raise Refused(422, str(error)) from None
    return RedirectResponse("/app/codebook", status_code=303)


@router.post("/runs")
async def start_run(request: Request, services: ServicesDep, user: Reader) -> Response:
    await form_of(request, user, "curate")
    try:
        started = await run_in_threadpool(services.jobs.request, "demand", user.caller.name)
    except BazkhordError as error:
        raise Refused(503, str(error)) from None
    if started is None:
        raise Refused(409, "یک اجرای تحلیل هم‌اکنون در جریان است؛ پیشرفتش در همین صفحه دیده می‌شود.")
    return RedirectResponse("/app/runs", status_code=303)


@router.post("/webhooks")
async def add_webhook(request: Request, services: ServicesDep, user: Reader) -> Response:
    fields = await form_of(request, user, "admin")
    try:
        await run_in_threadpool(services.alerts.add_webhook, fields.get("name", ""), fields.get("url", ""),
                                user.caller.name)
    except InputError as error:
        raise Refused(422, str(error)) from None
    return RedirectResponse("/app/webhooks", status_code=303)


@router.post("/webhooks/{webhook_id}/delete")
async def delete_webhook(request: Request, services: ServicesDep, user: Reader, webhook_id: int) -> Response:
    await form_of(request, user, "admin")
    await run_in_threadpool(services.alerts.remove_webhook, webhook_id)
    return RedirectResponse("/app/webhooks", status_code=303)

