"""Read feedback from CSV, JSONL, Parquet or a `datasets` dataset, validating every row.

Every rejected row is reported with file, row number, field and reason. A file where more than
`max_bad_fraction` of the rows are bad is refused as a whole: that is a wrong file or a wrong column map,
not a few typos.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from bazkhord.data.errors import DataError
from bazkhord.data.record import POLARITIES, SENTIMENTS, FeedbackRecord, RejectedRow

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet", "datasets")
HUB_PREFIX = "hf:"
MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class ColumnMap:
    """Which source column feeds which record field, and how source labels map to ours.

    The defaults read bazkhord's own layout and the layout of `../shared/data` as-is
    (`source_id` is taken as the id when there is no `id` column).
    """

    text: str = "text"
    id: tuple[str, ...] = ("id", "source_id")
    channel: str = "channel"
    created_at: str = "created_at"
    rating: str = "rating"
    nps: str = "nps"
    product: str = "product"
    segment: str = "segment"
    sentiment: str = "sentiment"
    sentiment_score: str = "sentiment_score"
    aspects: str = "aspects"
    category: str = "category"
    sentiment_values: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def mapped(self) -> frozenset[str]:
        """The source columns this map reads into record fields (the rest are metadata)."""
        return frozenset(v for k, v in vars(self).items() if isinstance(v, str)) | set(self.id)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ColumnMap:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"unknown column-map key(s) {unknown}; known: {sorted(known)}")
        values = dict(values)
        if isinstance(values.get("id"), str):
            values["id"] = (values["id"],)
        return cls(**values)


@dataclass
class ReadResult:
    file: str
    records: list[FeedbackRecord]
    rejected: list[RejectedRow]
    rows_seen: int

    def summary(self) -> str:
        line = f"{self.file}: {self.rows_seen} rows, {len(self.records)} kept, {len(self.rejected)} rejected"
        if self.rejected:
            reasons = Counter(f"{r.field}: {r.reason.split(' (')[0]}" for r in self.rejected)
            line += " (" + "; ".join(f"{n}x {reason}" for reason, n in reasons.most_common(5)) + ")"
        return line


class _RowError(Exception):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name = field_name
        self.reason = reason


def detect_format(path: str) -> str:
    if path.startswith(HUB_PREFIX):
        return "datasets"
    p = Path(path)
    if p.is_dir():
        return "datasets"
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    raise DataError(f"{path}: cannot tell the format from the name; use .jsonl, .csv, .parquet or a dataset folder")


def read_records(
    path: str | Path,
    *,
    columns: ColumnMap | None = None,
    fmt: str | None = None,
    split: str | None = None,
    max_bad_fraction: float = 0.1,
) -> ReadResult:
    """Read and validate one file. Raises `DataError` if it cannot be used at all."""
    path = str(path)
    columns = columns or ColumnMap()
    records: list[FeedbackRecord] = []
    rejected: list[RejectedRow] = []
    seen = 0
    for row_number, raw in iter_rows(path, fmt, split):
        seen += 1
        try:
            if isinstance(raw, _RowError):
                raise raw
            records.append(_to_record(raw, columns, origin=f"{path}:{row_number}"))
        except _RowError as error:
            rejected.append(RejectedRow(path, row_number, error.field_name, error.reason))

    result = ReadResult(path, records, rejected, seen)
    if seen == 0:
        raise DataError(f"{path}: the file has no rows")
    if rejected and len(rejected) / seen > max_bad_fraction:
        first = "\n  ".join(str(r) for r in rejected[:10])
        raise DataError(
            f"{path}: {len(rejected)} of {seen} rows are bad (limit {max_bad_fraction:.0%}); is the column map right?"
            f"\n  {first}"
        )
    for row in rejected:
        log.warning("rejected %s", row)
    log.info(result.summary())
    return result


def _jsonl_rows(path: str, split: str | None) -> Iterator[tuple[int, Any]]:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                decoded = line.decode("utf-8")
            except UnicodeDecodeError as error:
                yield number, _RowError("(row)", f"invalid UTF-8 at byte {error.start}")
                continue
            try:
                value = json.loads(decoded)
            except json.JSONDecodeError as error:
                yield number, _RowError("(row)", f"invalid JSON: {error.msg} at column {error.colno}")
                continue
            if not isinstance(value, dict):
                yield number, _RowError("(row)", f"expected a JSON object, found {type(value).__name__}")
                continue
            yield number, value


def _csv_rows(path: str, split: str | None) -> Iterator[tuple[int, Any]]:
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    # surrogateescape keeps going past bad bytes so the row can be named instead of failing the file.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames:
            raise DataError(f"{path}: no header row")
        for number, row in enumerate(reader, start=2):  # row 1 is the header
            if None in row:
                yield number, _RowError("(row)", f"{len(row[None])} more cells than the header has")  # type: ignore[index]
                continue
            if any(isinstance(v, str) and _has_surrogates(v) for v in row.values()):
                yield number, _RowError("(row)", "invalid UTF-8")
                continue
            yield number, {k: (v if v != "" else None) for k, v in row.items()}


def _parquet_rows(path: str, split: str | None) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a broken file
        raise DataError(f"{path}: not a readable Parquet file ({error})") from error
    number = 0
    for batch in parquet.iter_batches(batch_size=8192):  # streamed: a file of millions of rows is never whole in memory
        for row in batch.to_pylist():
            number += 1
            yield number, row


def iter_rows(path: str | Path, fmt: str | None = None, split: str | None = None) -> Iterator[tuple[int, Any]]:
    """Stream the raw rows of one file as (row number, row); a row that cannot be read at all comes as a `RowError`
    in its place (`comment_text` raises it), so the caller names it and goes on with the next."""
    path = str(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown format {fmt!r}; use one of {FORMATS}")
    if not path.startswith(HUB_PREFIX) and not Path(path).exists():
        raise DataError(f"{path}: no such file or folder")
    rows = {"jsonl": _jsonl_rows, "csv": _csv_rows, "parquet": _parquet_rows, "datasets": _datasets_rows}[fmt]
    yield from rows(path, split)


def comment_text(raw: Mapping[str, Any] | _RowError, columns: ColumnMap) -> tuple[str | None, str]:
    """(id, text) of a raw row for tagging; raises `RowError` with the field and reason when it has no usable text."""
    if isinstance(raw, _RowError):
        raise raw
    text = raw.get(columns.text)
    if text is None or (isinstance(text, str) and not text.strip()):
        raise _RowError(columns.text, "empty or missing text")
    if not isinstance(text, str):
        raise _RowError(columns.text, f"expected a string, found {type(text).__name__}")
    if _has_surrogates(text):
        raise _RowError(columns.text, "invalid UTF-8")
    if len(text) > MAX_TEXT_CHARS:
        raise _RowError(columns.text, f"{len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    ident = next((raw[c] for c in columns.id if raw.get(c) not in (None, "")), None)
    return (None if ident is None else str(ident)), text


RowError = _RowError


def record_of(raw: Mapping[str, Any], columns: ColumnMap, origin: str) -> FeedbackRecord:
    """The record of a raw row with its metadata (dates, ratings, NPS, fields), as `read_records` makes it; raises
    `RowError` with the field and reason."""
    return _to_record(raw, columns, origin)


def _datasets_rows(path: str, split: str | None) -> Iterator[tuple[int, Any]]:
    import datasets

    try:
        if path.startswith(HUB_PREFIX):
            loaded: Any = datasets.load_dataset(path[len(HUB_PREFIX) :], split=split or "train")
        else:
            loaded = datasets.load_from_disk(path)
    except Exception as error:  # datasets raises many types; all mean "cannot use this"
        raise DataError(f"{path}: cannot load as a `datasets` dataset ({error})") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            raise DataError(f"{path}: holds splits {list(loaded)}; name one with --split")
        if split not in loaded:
            raise DataError(f"{path}: has no split {split!r}; it has {list(loaded)}")
        loaded = loaded[split]
    yield from enumerate(loaded, start=1)


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _to_record(raw: Mapping[str, Any], columns: ColumnMap, origin: str) -> FeedbackRecord:
    text = raw.get(columns.text)
    if text is None:
        raise _RowError(columns.text, "missing")
    if not isinstance(text, str):
        raise _RowError(columns.text, f"expected text, found {type(text).__name__}")
    if "\x00" in text:
        raise _RowError(columns.text, "contains a NUL byte")
    if not text.strip():
        raise _RowError(columns.text, "empty")
    if len(text) > MAX_TEXT_CHARS:
        raise _RowError(columns.text, f"{len(text)} characters, over the limit of {MAX_TEXT_CHARS}")

    record_id = next((str(raw[c]) for c in columns.id if raw.get(c) is not None), None)
    product = _optional_str(raw, columns.product) or _optional_str(raw, columns.category)
    return FeedbackRecord(
        text=text,
        id=record_id,
        channel=_optional_str(raw, columns.channel),
        created_at=_parse_datetime(raw.get(columns.created_at), columns.created_at),
        rating=_parse_number(raw.get(columns.rating), columns.rating),
        nps=_parse_nps(raw.get(columns.nps), columns.nps),
        product=product,
        segment=_optional_str(raw, columns.segment),
        sentiment=_parse_sentiment(raw.get(columns.sentiment), columns),
        sentiment_score=_parse_int(raw.get(columns.sentiment_score), columns.sentiment_score),
        aspects=_parse_aspects(raw.get(columns.aspects), columns.aspects),
        fields=_extra_fields(raw, columns),
        origin=origin,
    )


# Columns of the shared data sets that are provenance, not metadata worth a breakdown.
NOT_METADATA = frozenset({"source_id", "source_label", "split", "label", "labels"})
MAX_FIELD_VALUE_CHARS = 200
MAX_FIELD_ITEMS = 100


def _extra_fields(raw: Mapping[str, Any], columns: ColumnMap) -> dict[str, tuple[str, ...]]:
    """Every other short scalar or list-of-scalars column, as strings under the column's own name. Anything else
    (nested objects, long text, floats) is not metadata to break down by and is left out."""
    mapped = columns.mapped
    fields: dict[str, tuple[str, ...]] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or name in mapped or name in NOT_METADATA or "\x00" in name:
            continue
        if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
            with contextlib.suppress(ValueError):  # a list written into a CSV cell as JSON
                value = json.loads(value)
        items = value if isinstance(value, list) else [value]
        kept = tuple(dict.fromkeys(
            text for item in items[:MAX_FIELD_ITEMS]
            if isinstance(item, str | int) and not isinstance(item, bool)
            and (text := str(item).strip()) and len(text) <= MAX_FIELD_VALUE_CHARS and "\x00" not in text))
        if kept:
            fields[name] = kept
    return fields


def _optional_str(raw: Mapping[str, Any], column: str) -> str | None:
    value = raw.get(column)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _parse_sentiment(value: Any, columns: ColumnMap) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    key = str(value).strip()
    label = columns.sentiment_values.get(key, key.lower())
    if label not in SENTIMENTS:
        raise _RowError(columns.sentiment, f"{value!r} is not one of {SENTIMENTS} (map it with sentiment_values)")
    return label


def _parse_aspects(value: Any, column: str) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return None
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            # CSV friendly form: "delivery:negative; price:positive"
            value = dict(_split_pair(part, column) for part in stripped.split(";") if part.strip())
    if not isinstance(value, Mapping):
        raise _RowError(column, f"expected an object of aspect -> polarity, found {type(value).__name__}")
    aspects: dict[str, str] = {}
    for name, polarity in value.items():
        if polarity is None:  # `datasets` fills absent keys of a struct with None
            continue
        name = str(name).strip()
        polarity = str(polarity).strip().lower()
        if not name:
            raise _RowError(column, "an aspect has an empty name")
        if polarity not in POLARITIES:
            raise _RowError(column, f"aspect {name!r} has polarity {polarity!r}, expected one of {POLARITIES}")
        aspects[name] = polarity
    return aspects


def _split_pair(part: str, column: str) -> tuple[str, str]:
    if ":" not in part:
        raise _RowError(column, f"{part.strip()!r} is not JSON nor 'aspect:polarity'")
    name, polarity = part.rsplit(":", 1)
    return name.strip(), polarity.strip()


def _parse_datetime(value: Any, column: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise _RowError(column, f"{value!r} is not an ISO date/time such as 2026-05-01T10:30:00") from None


def _parse_number(value: Any, column: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _RowError(column, f"{value!r} is not a number") from None
    if math.isnan(number):
        return None
    return number


def _parse_int(value: Any, column: str) -> int | None:
    number = _parse_number(value, column)
    if number is None:
        return None
    if number != int(number):
        raise _RowError(column, f"{value!r} is not a whole number")
    return int(number)


def _parse_nps(value: Any, column: str) -> int | None:
    number = _parse_int(value, column)
    if number is not None and not 0 <= number <= 10:
        raise _RowError(column, f"{number} is outside the NPS scale 0-10")
    return number
