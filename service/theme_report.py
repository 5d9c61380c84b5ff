"""Write a theme report as JSON, CSV tables and one self-contained HTML page for analysts.

The page needs no network (no CDN, no web fonts, no scripts): right-to-left Persian, CSS bar charts and
inline SVG trend lines. All Persian text is HTML text, never drawn into an image, so the browser shapes it
and orders it correctly.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bazkhord.data.calendar import gregorian_label, period_label, persian_digits
from bazkhord.data.taxonomy import Taxonomy, taxonomy_toml
from bazkhord.model.themes.analysis import Membership
from bazkhord.model.themes.report import Theme, ThemeReport, Trend

JSON_FILE = "report.json"
HTML_FILE = "report.html"
CSV_FILES = ("themes.csv", "subthemes.csv", "trends.csv", "breakdowns.csv", "quotes.csv")
MEMBERSHIP_FILE = "membership.csv"
MEMBERSHIP_PARQUET = "membership.parquet"
DRAFT_FILE = "codebook_draft.toml"
DRAFT_HEADER = """The causes this report discovered, as a taxonomy: a draft codebook. Rename the aspects (name_fa), delete
those that name no cause, merge two by moving one's seeds into the other, add the words your customers use
for a cause to its seeds, then run the report again with `--taxonomy codebook_draft.toml` (API: send the table
as `codebook`): comments are then assigned to these causes in every run (docs/THEMES.md)."""
MEMBERSHIP_COLUMNS = ["comment_id", "comment_index", "start", "end", "statement", "sentiment", "theme_id", "subtheme"]
SPARK_PERIODS = 26  # the sparkline shows the newest half year of weeks; the CSV has every period
MAX_LISTED = 300  # statements listed under a theme in the page (membership.csv has all)

DIRECTION_FA = {"rising": ("رو به افزایش", "up"), "falling": ("رو به کاهش", "down"), "steady": ("پایدار", "flat"),
                "insufficient history": ("داده ناکافی برای روند", "none"),
                "too few comments": ("نظر کم برای سنجش روند", "none")}
# "emerging" means outside the taxonomy, not new: a theme that really appears late is marked «تازه» as well.
KIND_FA = {"aspect": "جنبه", "emerging": "خارج از فهرست جنبه‌ها"}
# Persian for the report's own words; the data's field names (channel, product, segment) are shown as the data
# calls them, since a "segment" may hold anything from customer tiers to restaurant codes.
TREND_TEST_FA = ("آزمون دقیق فیشر: سهم موضوع در آخرین دوره کامل در برابر شش دوره پیش از آن، با کنترل نرخ کشف "
                 "نادرست (بنیامینی-هوخبرگ) میان موضوع‌ها؛ دوره ناتمام آخر نشان داده می‌شود ولی آزموده نمی‌شود")
IMPACT_METHOD_FA = ("نظری منفی است که دست‌کم یک جمله شکایت داشته باشد؛ برای هر موضوع، نظرهایی که همه شکایت‌هایشان از "
                    "همین موضوع است منفی شمرده نمی‌شوند و امتیاز و NPS آنها با میانگین و میانه نظرهای بی‌شکایت "
                    "جایگزین می‌شود")
PERIOD_FA = {"day": "روز", "week": "هفته", "month": "ماه"}


def report_dict(report: ThemeReport) -> dict[str, Any]:
    return dataclasses.asdict(report)


def json_schema() -> dict[str, Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(ThemeReport).json_schema()


def write_report(report: ThemeReport, out: Path, membership: Sequence[Membership] = ()) -> list[Path]:
    """report.json, the CSV tables, report.html; with the analyser's `membership_`, also membership.csv (every
    complaint statement and its theme) and the full list of statements under each theme in the page."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / JSON_FILE]
    (out / JSON_FILE).write_text(json.dumps(report_dict(report), ensure_ascii=False, indent=2), encoding="utf-8")
    written += write_csv(report, out)
    if membership:
        written += write_membership(membership, out)
    if report.codebook_draft is not None:
        draft = Taxonomy.from_dict(report.codebook_draft, "the report's draft codebook")
        (out / DRAFT_FILE).write_text(taxonomy_toml(draft, DRAFT_HEADER), encoding="utf-8")
        written.append(out / DRAFT_FILE)
    (out / HTML_FILE).write_text(render_html(report, membership), encoding="utf-8")
    written.append(out / HTML_FILE)
    return written


def write_membership(membership: Sequence[Membership], out: Path) -> list[Path]:
    """Every complaint statement with its theme: membership.csv for spreadsheets (cells that look like formulas
    neutralised) and membership.parquet for code (values as they are)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(m.comment_id, m.comment, m.start, m.end, m.text, m.sentiment, m.theme_id, m.subtheme) for m in membership]
    path = out / MEMBERSHIP_FILE
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MEMBERSHIP_COLUMNS)
        writer.writerows([spreadsheet_safe(v) for v in row] for row in rows)
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(MEMBERSHIP_COLUMNS)})
    pq.write_table(table, out / MEMBERSHIP_PARQUET)
    return [path, out / MEMBERSHIP_PARQUET]


def write_csv(report: ThemeReport, out: Path) -> list[Path]:
    calendar = str(report.settings.get("calendar", "gregorian"))
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
        "themes.csv": (["rank", "id", "kind", "aspect", "label", "keyphrases", "statements", "comments",
                        "negative_comment_share", "negative_share_change_pts", "rating_change", "nps_change",
                        "trend", "trend_p_value"], []),
        "subthemes.csv": (["theme_id", "label", "keyphrases", "statements", "comments"], []),
        "trends.csv": (["theme_id", "period", "period_label", "period_start_gregorian", "comments_with_theme",
                        "comments", "share"], []),
        "breakdowns.csv": (["theme_id", "field", "value", "comments_with_theme", "rate"], []),
        "quotes.csv": (["theme_id", "subtheme", "comment_id", "text"], []),
    }
    for rank, theme in enumerate(report.themes, start=1):
        i = theme.impact
        trend = theme.trend
        tables["themes.csv"][1].append([rank, theme.id, theme.kind, theme.aspect or "", theme.label,
                                        " | ".join(theme.keyphrases), theme.statements, theme.comments,
                                        i.negative_comment_share, i.negative_share_change_pts, i.rating_change,
                                        i.nps_change, trend.direction if trend else "", trend.p_value if trend else ""])
        for sub in theme.subthemes:
            tables["subthemes.csv"][1].append([theme.id, sub.label, " | ".join(sub.keyphrases), sub.statements,
                                               sub.comments])
            tables["quotes.csv"][1].extend([theme.id, sub.label, q.comment_id or "", q.text] for q in sub.quotes)
        tables["quotes.csv"][1].extend([theme.id, "", q.comment_id or "", q.text] for q in theme.quotes)
        if trend:
            for period, count, total in zip(trend.periods, trend.counts, trend.totals, strict=True):
                tables["trends.csv"][1].append([theme.id, period, period_label(period, trend.period, calendar),
                                                gregorian_label(period, trend.period, calendar), count, total,
                                                round(count / total, 4) if total else ""])
        for field_name, breakdown in theme.breakdowns.items():
            tables["breakdowns.csv"][1].extend([theme.id, field_name, r.value, r.comments, r.rate] for r in breakdown)
    paths = []
    for name, (header, rows) in tables.items():
        path = out / name
        with path.open("w", encoding="utf-8-sig", newline="") as handle:  # BOM: Excel then reads Persian right
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows([spreadsheet_safe(v) for v in row] for row in rows)
        paths.append(path)
    return paths


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): = + - @, and tab or carriage return; also
# behind white space or invisible marks (ZWNJ, RLO, BOM), which spreadsheets skip, and in their full-width or small
# forms («＝», «﹢»), which some read as the ASCII sign.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(text: str) -> bool:
    if text.startswith(FORMULA_START):
        return True
    first = next((c for c in text if not c.isspace() and unicodedata.category(c) != "Cf"), "")
    return bool(first) and unicodedata.normalize("NFKC", first)[:1] in "=+-@"


def spreadsheet_safe(value: object) -> object:
    """Text cells that start like a formula get a leading apostrophe, which spreadsheets show as text; numbers,
    negative ones too, stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and looks_like_formula(value):
        return "'" + value
    return value


# -- HTML -----------------------------------------------------------------------------------------------
# Bidirectional controls that reorder what follows them (U+202A-U+202E embeddings and overrides, U+2066-U+2069
# isolates): text from a comment must not reverse the report around it («‮» would flip a label and its figures).
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def _e(value: object) -> str:
    return html.escape(str(value).translate(BIDI_CONTROLS), quote=True)


def _fa_number(value: float | int | None, digits: int = 1, sign: bool = False) -> str:
    if value is None:
        return "—"
    text = f"{value:+.{digits}f}" if sign else (f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}")
    text = text.translate(str.maketrans("0123456789.,-+", "۰۱۲۳۴۵۶۷۸۹٫٬−+"))
    # A signed number is isolated left-to-right, so its sign stays in front of it inside Persian text.
    return f'<bdi dir="ltr">{text}</bdi>' if text[0] in "−+" else text


def _ltr(value: object) -> str:
    """Dates, period keys and codes inside right-to-left text: isolated, so 2016-04-26 does not read 26-04-2016."""
    return f'<bdi dir="ltr">{_e(value)}</bdi>'


def _sparkline(trend: Trend, width: int = 260, height: int = 56) -> str:
    shares = [c / t if t else 0.0 for c, t in zip(trend.counts, trend.totals, strict=True)][-SPARK_PERIODS:]
    if len(shares) < 2:
        return ""
    top = max(shares) or 1.0
    step = width / (len(shares) - 1)
    # x runs right-to-left, like the page: the first period at the right end, the latest at the left (the axis
    # labels below are in an RTL flex row, so its first label sits at the right too).
    points = " ".join(f"{width - i * step:.1f},{height - 4 - (s / top) * (height - 8):.1f}" for i, s in enumerate(shares))
    last_x, last_y = points.split(" ")[-1].split(",")
    # A last period that is not over is drawn hollow: its share is read, not compared.
    fill = 'fill="#fff" stroke="currentColor" stroke-width="1.5"' if trend.partial_last else 'fill="currentColor"'
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="trend"><polyline points="{points}" fill="none" stroke="currentColor" stroke-width="2"/>'
            f'<circle cx="{last_x}" cy="{last_y}" r="3.5" {fill}/></svg>')


def _period(key: str, period: str, calendar: str) -> str:
    """A period as the analysts read it (Jalali or Gregorian, Persian digits), its Gregorian first day on hover."""
    return (f"<span title='{html.escape(gregorian_label(key, period, calendar))}'>"
            f"{html.escape(period_label(key, period, calendar))}</span>")


def _theme_card(rank: int, theme: Theme, period: str, members: Sequence[Membership] = (), calendar: str = "gregorian"
                ) -> str:
    i = theme.impact
    trend_html = ""
    if theme.trend is not None:
        words, css = DIRECTION_FA[theme.trend.direction]
        detail = ""
        if theme.trend.p_value is not None:
            latest = _fa_number(100 * (theme.trend.latest_share or 0))
            baseline = _fa_number(100 * (theme.trend.baseline_share or 0))
            q = theme.trend.q_value if theme.trend.q_value is not None else theme.trend.p_value
            detail = (f" <span class='muted'>(سهم آخرین {PERIOD_FA[period]} کامل {latest}٪ در برابر {baseline}٪ در شش"
                      f" {PERIOD_FA[period]} پیش از آن، q={_fa_number(q, 3)})</span>")
        if theme.trend.partial_last:
            detail += f" <span class='muted'>({PERIOD_FA[period]} آخر هنوز تمام نشده و آزموده نشد)</span>"
        shown = theme.trend.periods[-SPARK_PERIODS:]
        trend_html = (f"<div class='trend {css}'><span class='badge {css}'>{words}</span>{detail}"
                      f"{_sparkline(theme.trend)}<div class='axis'>{_period(shown[0], theme.trend.period, calendar)}"
                      f"{_period(shown[-1], theme.trend.period, calendar)}</div></div>")
    subs = "".join(
        f"<li><b>{_e(s.label)}</b> <span class='muted'>({_fa_number(s.statements)} جمله)</span>"
        f"<div class='keys'>{' · '.join(_e(k) for k in s.keyphrases[1:4])}</div>"
        f"{''.join(f'<blockquote>{_e(q.text)}</blockquote>' for q in s.quotes[:1])}</li>"
        for s in theme.subthemes)
    quotes = "" if theme.subthemes else "".join(f"<blockquote>{_e(q.text)}</blockquote>" for q in theme.quotes)
    listed = "".join(f"<li>{_e(m.text)}{' <span class=muted>(' + _e(m.subtheme) + ')</span>' if m.subtheme else ''}</li>"
                     for m in members[:MAX_LISTED])
    more = f"<p class='muted'>و {_fa_number(len(members) - MAX_LISTED)} جمله دیگر در membership.csv</p>" \
        if len(members) > MAX_LISTED else ""
    all_statements = (f"<details><summary>همه جمله‌های این موضوع ({_fa_number(len(members))})</summary>"
                      f"<ul class='all'>{listed}</ul>{more}</details>") if members else ""
    breakdowns = "".join(
        f"<div class='bd'><h4>{_ltr(name)}</h4><table>"
        + "".join(f"<tr><td><bdi>{_e(r.value)}</bdi></td><td>{_fa_number(r.comments)}</td>"
                  f"<td>{_fa_number(100 * r.rate)}٪</td></tr>" for r in rows[:4])
        + "</table></div>"
        for name, rows in theme.breakdowns.items())
    return f"""
<article class="card" id="{_e(theme.id)}">
  <header><span class="rank">{_fa_number(rank)}</span><h3>{_e(theme.label)}</h3>
    <span class="kind {theme.kind}">{KIND_FA.get(theme.kind, theme.kind)}</span>
    {'<span class="kind new">تازه</span>' if theme.new else ''}</header>
  <div class="facts">
    <div><b>{_fa_number(theme.comments)}</b><span>نظر</span></div>
    <div><b>{_fa_number(100 * i.negative_comment_share)}٪</b><span>از نظرهای منفی</span></div>
    <div><b>{_fa_number(i.negative_share_change_pts, 2)}</b><span>واحد کاهش سهم منفی اگر رفع شود</span></div>
    <div><b>{_fa_number(i.rating_change, 2, sign=True)}</b><span>تغییر میانگین امتیاز</span></div>
    <div><b>{_fa_number(i.nps_change, 1, sign=True)}</b><span>تغییر NPS</span></div>
  </div>
  <div class="keys">{' · '.join(_e(k) for k in theme.keyphrases[:5])}</div>
  {trend_html}
  {f'<ul class="subs">{subs}</ul>' if subs else ''}
  {quotes}
  {all_statements}
  <div class="breakdowns">{breakdowns}</div>
</article>"""


def render_html(report: ThemeReport, membership: Sequence[Membership] = ()) -> str:
    t = report.totals
    by_theme: dict[str, list[Membership]] = {}
    for row in membership:
        by_theme.setdefault(row.theme_id, []).append(row)
    share = t.negative_share_adjusted if t.negative_share_adjusted is not None else t.negative_share
    share_note = "برآورد اصلاح‌شده برای توزیع داده" if t.negative_share_adjusted is not None else "شمارش مدل"
    aspects_fa = ("بی‌آموزش، از روی عبارت‌های نمونه هر جنبه" if report.settings.get("aspects") == "zero-shot"
                  else "از سر جنبه‌های مدل")
    period = str(report.settings.get("period", "week"))
    top = max((th.impact.negative_share_change_pts for th in report.themes), default=0) or 1
    bars = "".join(
        f"<div class='bar-row'><a href='#{_e(th.id)}' class='bar-label'>{_e(th.label)}"
        f"{' <small>(تازه)</small>' if th.new else ''}</a>"
        f"<div class='bar-track'><div class='bar {th.kind}' style='width:{100 * th.impact.negative_share_change_pts / top:.1f}%'>"
        f"</div></div><span class='bar-value'>{_fa_number(th.impact.negative_share_change_pts, 2)}</span></div>"
        for th in report.themes)
    rising = [th for th in report.themes if th.trend and th.trend.direction == "rising"]
    rising_html = "".join(f"<li><a href='#{_e(th.id)}'>{_e(th.label)}</a></li>" for th in rising) or "<li>موردی نیست</li>"
    calendar = str(report.settings.get("calendar", "gregorian"))
    cards = "".join(_theme_card(rank, th, period, by_theme.get(th.id, []), calendar)
                    for rank, th in enumerate(report.themes, start=1))
    notes = "".join(f"<li>{_e(n)}</li>" for n in report.notes)
    warnings = ""
    shift = report.domain_shift
    if shift is not None and shift.out_of_domain:
        warnings += (f"<p class='warn' role='alert'><b>هشدار: بیرون از دامنه مدل.</b> "
                     f"{_e(persian_digits(shift.message_fa))}</p>")
    if report.codebook_draft is not None:
        fit = report.taxonomy_fit
        closest = max(fit.fits.items(), key=lambda kv: kv[1]) if fit is not None and fit.fits else None
        why = (f"هیچ فهرست جنبه‌ای با این شکایت‌ها جور نبود (نزدیک‌ترین، {_ltr(closest[0])}، "
               f"{_fa_number(100 * closest[1])}٪ آنچه را شکایت‌ها مقصر می‌دانند نام می‌برد)؛ " if closest else "")
        warnings += (f"<p class='info'>{why}علت‌ها از خود شکایت‌ها پیدا شدند. پیش‌نویس کدبوک "
                     f"(<a href='{DRAFT_FILE}'>{DRAFT_FILE}</a>) را ویرایش کنید و برای اجرای بعد بدهید.</p>")
    return f"""<!doctype html>
<html lang="fa" dir="rtl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>گزارش ریشه‌یابی نارضایتی مشتریان</title>
<style>
  :root {{ --neg: #c0392b; --new: #8e44ad; --ink: #1f2933; --muted: #6b7785; --line: #e3e7ec; }}
  body {{ font-family: Vazirmatn, "Noto Sans Arabic", "Noto Naskh Arabic", Tahoma, "DejaVu Sans", sans-serif;
         color: var(--ink); margin: 0; background: #f6f7f9; line-height: 1.7; }}
  main {{ max-width: 1100px; margin: 0 auto; padding: 24px; }}
  h1 {{ margin: 0 0 4px; font-size: 26px; }} h2 {{ margin-top: 32px; }} h3 {{ margin: 0; font-size: 19px; }}
  .muted {{ color: var(--muted); font-size: 13px; }}
  .totals {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 18px 0; }}
  .totals div, .card {{ background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px; }}
  .totals b {{ display: block; font-size: 24px; }}
  .bar-row {{ display: grid; grid-template-columns: minmax(90px, 220px) minmax(40px, 1fr) 56px; align-items: center;
             gap: 10px; margin: 6px 0; }}
  .bar-label {{ color: var(--ink); text-decoration: none; }}
  .bar-track {{ background: var(--line); border-radius: 4px; height: 18px; }}
  .bar {{ height: 18px; border-radius: 4px; background: var(--neg); }} .bar.emerging {{ background: var(--new); }}
  .card {{ margin: 16px 0; }}
  .card header {{ display: flex; align-items: center; gap: 10px; }}
  .rank {{ background: var(--ink); color: #fff; border-radius: 50%; width: 28px; height: 28px; display: grid;
          place-items: center; font-size: 14px; }}
  .kind {{ font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #fde8e6; color: var(--neg); }}
  .kind.emerging {{ background: #f3e8fa; color: var(--new); }} .kind.new {{ background: #e8f4fd; color: #1f618d; }}
  .facts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(100px, 1fr)); gap: 8px; margin: 12px 0; }}
  .facts b {{ display: block; font-size: 18px; }} .facts span {{ color: var(--muted); font-size: 12px; }}
  .keys {{ color: var(--muted); font-size: 13px; }}
  .trend {{ margin: 10px 0; }} .trend.up {{ color: var(--neg); }} .trend.down {{ color: #1e8449; }}
  .trend.flat, .trend.none {{ color: var(--muted); }}
  .badge {{ font-weight: bold; }} .spark {{ display: block; margin-top: 6px; }}
  .axis {{ display: flex; justify-content: space-between; width: 260px; font-size: 11px; color: var(--muted); }}
  blockquote {{ margin: 6px 0; padding: 6px 12px; border-right: 3px solid var(--line); background: #fafbfc; }}
  .subs li {{ margin-bottom: 8px; }} details {{ margin: 8px 0; }} ul.all {{ font-size: 13px; max-height: 320px; overflow: auto; }}
  .breakdowns {{ display: flex; gap: 18px; flex-wrap: wrap; }} .bd h4 {{ margin: 6px 0; font-size: 13px; }}
  .bd table {{ border-collapse: collapse; font-size: 13px; }} .bd td {{ padding: 2px 8px; border-bottom: 1px solid var(--line); }}
  footer {{ color: var(--muted); font-size: 12px; margin-top: 32px; }}
  .warn {{ background: #fdf2e9; border: 1px solid #e59866; border-radius: 10px; padding: 10px 14px; }}
  .info {{ background: #eaf2f8; border: 1px solid #a9cce3; border-radius: 10px; padding: 10px 14px; }}
  .spark {{ max-width: 100%; height: auto; }} .axis {{ max-width: 100%; }} blockquote, li {{ overflow-wrap: anywhere; }}
  @media (max-width: 600px) {{ main {{ padding: 10px; }} .totals {{ grid-template-columns: repeat(2, 1fr); }}
    .card {{ padding: 10px; }} h1 {{ font-size: 21px; }} }}
</style>
</head>
<body><main>
<h1>گزارش ریشه‌یابی نارضایتی مشتریان</h1>
<div class="muted">از {_ltr(t.first_date or "—")} تا {_ltr(t.last_date or "—")} · مدل {_ltr(report.model.get("name", ""))}
 {_ltr(report.model.get("version", ""))} · دوره روند: {PERIOD_FA.get(period, period)}</div>
{warnings}
<section class="totals">
  <div><b>{_fa_number(t.comments)}</b>نظر</div>
  <div><b>{_fa_number(100 * share)}٪</b>نظرهای منفی یا دوگانه
    <span class="muted">({share_note})</span></div>
  <div><b>{_fa_number(100 * t.complaint_share)}٪</b>نظرهای دارای دست‌کم یک شکایت</div>
  <div><b>{_fa_number(t.statements)}</b>جمله</div>
  <div><b>{_fa_number(t.mean_rating, 2)}</b>میانگین امتیاز</div>
  <div><b>{_fa_number(t.nps)}</b>NPS</div>
</section>
<h2>محرک‌های نارضایتی</h2>
<p class="muted">هر نوار: چند واحد درصد از سهم نظرهای منفی کم می‌شد اگر شکایت‌های این موضوع نبود.</p>
<section class="drivers">{bars or "<p>موضوعی پیدا نشد.</p>"}</section>
<h2>موضوع‌های رو به افزایش</h2>
<ul>{rising_html}</ul>
<h2>موضوع‌ها</h2>
{cards}
<footer>
  <p>آزمون روند: {TREND_TEST_FA}</p>
  <p>روش اثر: {IMPACT_METHOD_FA}</p>
  <p>جنبه‌ها: {_ltr(report.settings.get("taxonomy") or "—")} ({aspects_fa})</p>
  {f"<ul>{notes}</ul>" if notes else ""}
  <p>bazkhord · نسخه طرح {_fa_number(report.schema_version)}</p>
</footer>
</main></body>
</html>
"""


if __name__ == "__main__":  # python -m bazkhord.service.theme_report > docs/theme_report.schema.json
    print(json.dumps(json_schema(), ensure_ascii=False, indent=2))
