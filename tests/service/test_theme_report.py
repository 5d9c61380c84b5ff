"""Theme report outputs: JSON against its published schema, CSV tables, the HTML page (rendered in headless
Chromium when it is installed), `bazkhord report` and `POST /v1/themes`."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from bazkhord.cli import main
from bazkhord.data.readers import read_records
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.model.themes.report import ThemeReport
from bazkhord.service.theme_report import CSV_FILES, HTML_FILE, JSON_FILE, json_schema, render_html, write_report
from tests.conftest import SAMPLE
from tests.service.helpers import api

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "docs" / "theme_report.schema.json"


@pytest.fixture(scope="module")
def report(sample_model: LoadedModel) -> ThemeReport:
    return ThemeAnalyzer(sample_model.tagger, ThemeSettings(period="week"), encoder="none").analyse(read_records(SAMPLE).records)


def test_files_are_written_and_json_fits_the_schema(report: ThemeReport, tmp_path: Path) -> None:
    written = write_report(report, tmp_path)
    assert {p.name for p in written} == {JSON_FILE, HTML_FILE, *CSV_FILES}
    data = json.loads((tmp_path / JSON_FILE).read_text(encoding="utf-8"))
    assert TypeAdapter(ThemeReport).validate_python(data) == report
    with (tmp_path / "themes.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [t.id for t in report.themes]
    assert rows[0]["rank"] == "1" and rows[0]["label"] == report.themes[0].label


def _shape(schema: dict[str, object]) -> dict[str, tuple[list[str], list[str]]]:
    """Each definition's fields and required fields: what a consumer relies on (not pydantic's wording)."""
    definitions = dict(schema.get("$defs", {}))  # type: ignore[call-overload]
    definitions["ThemeReport"] = schema
    return {name: (sorted(d.get("properties", {})), sorted(d.get("required", []))) for name, d in definitions.items()}


def test_published_schema_is_current() -> None:
    # docs/theme_report.schema.json is generated: `python -m bazkhord.service.theme_report > docs/theme_report.schema.json`
    assert _shape(json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))) == _shape(json_schema())


def test_html_is_rtl_persian_and_self_contained(report: ThemeReport) -> None:
    page = render_html(report)
    assert '<html lang="fa" dir="rtl">' in page
    assert report.themes[0].label in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no remote font
    assert "<script" not in page


def test_html_renders_in_headless_chromium(report: ThemeReport, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (`make test` installs Debian's package when it can)")
    page = tmp_path / "report.html"
    html = render_html(report)
    page.write_text(html, encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    from PIL import Image

    for width in (1400, 420):  # a desktop and a phone
        shot = tmp_path / f"shot-{width}.png"
        subprocess.run([browser, *flags, f"--window-size={width},1600", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120, check=False)
        image = Image.open(shot).convert("L")
        histogram = image.histogram()
        # Not blank: many grey levels, and a real share of dark (text) pixels.
        assert sum(1 for count in histogram if count) > 50, width
        assert sum(histogram[:100]) > 0.005 * image.width * image.height, width
        # Nothing wider than a phone: a copy of the page laid out 420 px wide (headless Chromium's window is never
        # narrower than 500) counts the elements that stick out of it, by a probe that writes into the DOM.
        probe = tmp_path / f"probe-{width}.html"
        probe.write_text(html.replace("</head>", f"<style>html {{ width: {width}px; }}</style></head>").replace(
            "</body>", "<script>var box = document.documentElement.getBoundingClientRect(), out = 0;"
            "document.querySelectorAll('body *').forEach(function (e) { var r = e.getBoundingClientRect();"
            " if (r.width && (r.left < box.left - 1 || r.right > box.right + 1)) out++; });"
            "document.body.setAttribute('data-outside', out)</script></body>"), encoding="utf-8")
        dom = subprocess.run([browser, *flags, f"--window-size={width},1600", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=120, check=False).stdout
        assert report.themes[0].label in dom and "گزارش ریشه‌یابی" in dom
        assert re.search(r'data-outside="(\d+)"', dom) is not None, width
        assert re.search(r'data-outside="0"', dom) is not None, (width, re.search(r'data-outside="(\d+)"', dom))


def test_report_command(tmp_path: Path, sample_model: LoadedModel, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--input", str(SAMPLE), "--out", str(tmp_path / "out"), "--model",
                 str(sample_model.folder), "--period", "week", "-q"]) == 0
    out = capsys.readouterr().out
    assert "themes" in out and "rising" in out
    assert (tmp_path / "out" / HTML_FILE).exists()
    assert main(["report", "--input", "nothing.jsonl", "--out", str(tmp_path), "--model",
                 str(sample_model.folder)]) == 2


def test_themes_endpoint(sample_model: LoadedModel, report: ThemeReport, tmp_path: Path) -> None:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    items = [{k: r[k] for k in ("id", "text", "created_at", "channel", "rating", "nps", "product", "segment") if k in r}
             for r in rows]
    with api(tmp_path, sample_model, "report", max_theme_items=2000) as client:
        answer = client.post("/v1/themes", json={"items": items, "period": "week"})
        assert answer.status_code == 200, answer.text[:500]
        body = answer.json()
        assert body["schema_version"] == 2
        assert [t["id"] for t in body["themes"]] == [t.id for t in report.themes]
        assert client.post("/v1/themes", json={"items": items[:3], "period": "year"}).status_code == 422
        with_fields = [{**item, "fields": {"basket": ["گوشی", "قاب"] if n % 2 else ["شارژر"], "store": f"S{n % 4}"}}
                       for n, item in enumerate(items)]
        broken = client.post("/v1/themes", json={"items": with_fields, "period": "week"}).json()
        top = broken["themes"][0]["breakdowns"]
        assert {"basket", "store"} <= set(top) and {r["value"] for r in top["basket"]} <= {"گوشی", "قاب", "شارژر"}
        long_list = client.post("/v1/themes", json={"items": [{"text": "بد", "fields": {"basket": ["x"] * 101}}]})
        assert long_list.status_code == 422 and "at most 100" in long_list.text
        unknown = client.post("/v1/themes", json={"items": items[:3], "taxonomy": "restaurants"})
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_taxonomy"
        assert "food_delivery" in unknown.json()["error"]["message"]
        food = client.post("/v1/themes", json={"items": items, "taxonomy": "food_delivery"}).json()
        assert food["settings"]["taxonomy"] == "food_delivery" and food["settings"]["aspects"] == "zero-shot"
    with api(tmp_path / "b", sample_model, "report", max_theme_items=5) as client:
        too_many = client.post("/v1/themes", json={"items": items[:6]})
        assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_texts"


def test_summary_and_theme_report_share_one_negative_share(sample_model: LoadedModel, tmp_path: Path) -> None:
    records = read_records(SAMPLE).records[:60]
    items = [{"client_id": f"s-{i}", "text": r.text} for i, r in enumerate(records)]
    with api(tmp_path, sample_model, "ingest,report") as client:
        assert client.post("/v1/feedback", json={"items": items}).status_code == 200
        summary = client.get("/v1/reports/summary").json()
        totals = client.get("/v1/reports/themes", params={"min_theme_size": 2}).json()["totals"]
    by_label = summary["sentiment"]
    expected = (by_label.get("negative", 0) + by_label.get("mixed", 0)) / summary["comments"]
    assert summary["negative_share"] == pytest.approx(expected)
    assert totals["negative_share"] == pytest.approx(summary["negative_share"], abs=1e-4)
    assert totals["negative_share_definition"] == summary["negative_share_definition"]
    assert 0 < summary["negative_share"] < 1  # a figure that could differ
    assert {"complaint_comments", "complaint_share"} <= set(totals)  # "any complaint" is another figure, named so
