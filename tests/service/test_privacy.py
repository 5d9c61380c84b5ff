"""Personal data never leaves the service unmasked: every kind goes through tag, ingest, read-back, the stored and
the posted theme reports, and the report's CSV files; `store_raw_text` keeps it in the store for deployments that
must, and only there."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bazkhord.data.pii import find_pii, mask_pii, mask_span
from bazkhord.data.record import FeedbackRecord
from bazkhord.model.folder import LoadedModel
from bazkhord.model.themes.analysis import ThemeAnalyzer, ThemeSettings
from bazkhord.service.theme_report import write_report
from tests.service.helpers import api

# One of each kind, Persian and Latin digits, inside complaints that name an aspect (so evidence quotes them).
PII = {
    "[PHONE]": "۰۹۱۲۳۴۵۶۷۸۹",
    "[CARD]": "6037-9975-1234-5678",
    "[IBAN]": "IR120570028780010612345678",
    "[EMAIL]": "ali.rezaei@gmail.com",
    "[URL]": "https://shop.ir/order/123",
    "[NATIONAL_ID]": "۰۰۱۲۳۴۵۶۷۹",  # a valid check digit
}
RAW = [f"ارسال خیلی دیر انجام شد و پیک جواب نداد، شماره من {value} هست" for value in PII.values()] + [
    f"پشتیبانی جواب نداد و پول رو برنگردوندن، کارت {PII['[CARD]']} و ایمیل {PII['[EMAIL]']}",
    f"کیفیت غذا افتضاح بود و سرد رسید، شماره {PII['[PHONE]']}",
]
DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")


def leaks(text: str) -> list[str]:
    """The raw values (in either digit form) that `text` still holds."""
    latin = text.translate(DIGITS)
    return [value for value in PII.values() if value.translate(DIGITS) in latin or value in text]


def all_strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in all_strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in all_strings(v)]
    return []


@pytest.mark.parametrize(("placeholder", "value"), PII.items())
def test_each_kind_is_found_with_offsets_into_the_raw_text(placeholder: str, value: str) -> None:
    raw = f"سلام {value} ممنون"
    (span,) = find_pii(raw)
    assert (raw[span.start:span.end], span.placeholder) == (value, placeholder)
    assert mask_pii(raw) == f"سلام {placeholder} ممنون"
    # A slice that cuts a number in two still shows only the placeholder.
    assert mask_span(raw, 0, span.start + 3) == f"سلام {placeholder}"


def test_masking_by_spans_agrees_with_the_normaliser() -> None:
    from bazkhord.data.normalise import normalise

    for raw in RAW:
        assert normalise(mask_pii(raw)) == normalise(raw)


def test_tag_quotes_evidence_masked_with_offsets_into_the_text_as_sent(sample_model: LoadedModel,
                                                                       tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "tag") as client:
        results = client.post("/v1/tag", json={"items": [{"text": t} for t in RAW]}).json()["results"]
    quoted = 0
    for raw, result in zip(RAW, results, strict=True):
        for aspect in result["aspects"]:
            for span in aspect["evidence"]:
                assert not leaks(span["text"]), span
                assert span["text"] == mask_span(raw, span["start"], span["end"])
                quoted += span["text"] != raw[span["start"]:span["end"]]
    assert quoted, "no evidence span held personal data: the test proves nothing"


def test_store_and_reports_hold_placeholders_only(sample_model: LoadedModel, tmp_path: Path) -> None:
    items = [{"client_id": f"p-{i}", "text": t, "channel": "app"} for i, t in enumerate(RAW)]
    with api(tmp_path, sample_model, "ingest,report") as client:
        ingested = client.post("/v1/feedback", json={"items": items})
        assert ingested.status_code == 200, ingested.text
        # A retry of the same raw text is a duplicate, not a conflict, though the store holds the masked text.
        again = client.post("/v1/feedback", json={"items": items[:1]}).json()["results"][0]
        assert again["status"] == "duplicate"
        read = [client.get(f"/v1/feedback/p-{i}").json() for i in range(len(RAW))]
        stored_report = client.get("/v1/reports/themes", params={"min_theme_size": 2}).json()
        posted_report = client.post("/v1/themes", json={"items": [{"id": f"q-{i}", "text": t}
                                                                   for i, t in enumerate(RAW * 2)],
                                                         "min_theme_size": 2}).json()
    for body in [*ingested.json()["results"], *read]:
        assert not leaks(json.dumps(body, ensure_ascii=False)), body
        assert any(p in body["text"] for p in PII)
        for aspect in body["aspects"]:  # stored evidence points into the stored (masked) text
            for span in aspect["evidence"]:
                assert body["text"][span["start"]:span["end"]] == span["text"]
    for report in (stored_report, posted_report):
        assert "themes" in report, report
        assert not [s for s in all_strings(report) if leaks(s)]
    assert any(p in s for s in all_strings(posted_report) for p in PII), "no quote held personal data"


def test_raw_text_is_kept_only_when_the_deployment_asks(sample_model: LoadedModel, tmp_path: Path) -> None:
    with api(tmp_path, sample_model, "ingest,report", store_raw_text=True) as client:
        client.post("/v1/feedback", json={"items": [{"client_id": "r-1", "text": RAW[1]}]})
        assert client.get("/v1/feedback/r-1").json()["text"] == RAW[1]
        report = client.get("/v1/reports/themes", params={"min_theme_size": 1}).json()
    assert not [s for s in all_strings(report) if leaks(s)]


def test_report_files_are_masked(sample_model: LoadedModel, tmp_path: Path) -> None:
    records = [FeedbackRecord(text=t, id=f"c{i}") for i, t in enumerate(RAW * 3)]
    analyzer = ThemeAnalyzer(sample_model.tagger, ThemeSettings(min_theme_size=2))
    report = analyzer.analyse(records)
    written = write_report(report, tmp_path / "report", analyzer.membership_)
    cells = []
    for path in written:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                cells += [cell for row in csv.reader(handle) for cell in row]
        elif path.suffix in (".json", ".html"):
            cells.append(path.read_text(encoding="utf-8"))
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            cells += all_strings(pq.read_table(path).to_pylist())
    assert cells and not [c for c in cells if leaks(c)]
    assert any("[PHONE]" in c for c in cells)
