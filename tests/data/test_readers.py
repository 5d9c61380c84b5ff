from __future__ import annotations

import json
from pathlib import Path

import pytest

from bazkhord.data.errors import DataError
from bazkhord.data.readers import ColumnMap, read_records
from tests.conftest import write_jsonl


def test_reads_bazkhord_layout(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [
        {"id": "1", "text": "عالی", "channel": "sms", "created_at": "2026-05-01T10:00", "rating": 5, "nps": 9,
         "product": "گوشی", "segment": "vip", "sentiment": "positive", "aspects": {"quality": "positive"}},
    ])
    record = read_records(path).records[0]
    assert (record.id, record.channel, record.rating, record.nps, record.segment) == ("1", "sms", 5.0, 9, "vip")
    assert record.created_at is not None and record.created_at.month == 5
    assert record.aspects == {"quality": "positive"}


def test_other_columns_are_kept_as_metadata_under_their_own_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [
        {"text": "سرد بود", "products": ["پیتزا", "نوشابه", "پیتزا"], "restaurant": 1042, "source_label": "SAD",
         "details": {"nested": 1}, "score": 0.5, "note": "x" * 300},
    ])
    record = read_records(path).records[0]
    assert record.fields == {"products": ("پیتزا", "نوشابه"), "restaurant": ("1042",)}
    assert record.to_dict()["products"] == ["پیتزا", "نوشابه"]
    csv_path = tmp_path / "a.csv"
    csv_path.write_text('text,products,restaurant\nسرد بود,"[""پیتزا"", ""دوغ""]",R7\n', encoding="utf-8")
    assert read_records(csv_path).records[0].fields == {"products": ("پیتزا", "دوغ"), "restaurant": ("R7",)}


def test_every_bad_row_is_reported_with_file_row_field_reason(tmp_path: Path) -> None:
    good = [{"text": f"متن خوب {i}", "sentiment": "positive"} for i in range(20)]
    bad = [
        '{"text": "", "sentiment": "positive"}',
        '{"text": "x", "sentiment": "happy"}',
        '{"text": "x", "aspects": {"delivery": "great"}}',
        '{"text": "x", "nps": 11}',
        '{"text": "x", "created_at": "yesterday"}',
        '{"text": "x\\u0000y"}',
        "{not json",
        "[1, 2]",
        '{"sentiment": "positive"}',
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", [json.dumps(r, ensure_ascii=False) for r in good] + bad)
    result = read_records(path, max_bad_fraction=0.5)
    assert len(result.records) == 20
    where = {(r.row, r.field) for r in result.rejected}
    assert where == {(21, "text"), (22, "sentiment"), (23, "aspects"), (24, "nps"), (25, "created_at"),
                     (26, "text"), (27, "(row)"), (28, "(row)"), (29, "text")}
    assert all(r.file == str(path) for r in result.rejected)
    assert "happy" in next(r.reason for r in result.rejected if r.field == "sentiment")
    assert "9 rejected" in result.summary()


def test_invalid_utf8_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    lines = [json.dumps({"text": f"خوب {i}"}, ensure_ascii=False).encode() for i in range(10)]
    path.write_bytes(b"\n".join([*lines, b'{"text": "\xff\xfe"}']) + b"\n")
    result = read_records(path)
    assert [(r.row, r.reason) for r in result.rejected] == [(11, "invalid UTF-8 at byte 10")]


def test_a_file_of_mostly_bad_rows_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"comment": "wrong column"}] * 5 + [{"text": "ok"}])
    with pytest.raises(DataError, match=r"5 of 6 rows are bad.*column map"):
        read_records(path)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "none.jsonl")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_records(tmp_path / "x.xlsx")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        read_records(tmp_path / "empty.jsonl")


def test_csv_with_column_map_and_label_values(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text(
        "comment,label,tags,when\n"
        "ارسال دیر بود,-1,delivery:negative; price:positive,2026-06-01\n"
        'خوب بود,1,"{""quality"": ""positive""}",\n'
        "بد,7,,\n",
        encoding="utf-8",
    )
    columns = ColumnMap.from_dict({"text": "comment", "sentiment": "label", "aspects": "tags", "created_at": "when",
                                   "sentiment_values": {"-1": "negative", "1": "positive"}})
    result = read_records(path, columns=columns, max_bad_fraction=0.5)
    assert [r.sentiment for r in result.records] == ["negative", "positive"]
    assert result.records[0].aspects == {"delivery": "negative", "price": "positive"}
    assert result.records[1].aspects == {"quality": "positive"}
    assert [(r.row, r.field) for r in result.rejected] == [(4, "label")]


def test_unknown_column_map_key() -> None:
    with pytest.raises(DataError, match="unknown column-map key"):
        ColumnMap.from_dict({"txt": "comment"})


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["عالی", "بد"], "sentiment": ["positive", "negative"]}), path)
    assert [r.sentiment for r in read_records(path).records] == ["positive", "negative"]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_records(broken)


def test_datasets_folder_with_splits(tmp_path: Path) -> None:
    import datasets

    data = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["عالی", "بد"], "sentiment": ["positive", "negative"]}),
        "test": datasets.Dataset.from_dict({"text": ["خوب"], "sentiment": ["positive"]}),
    })
    data.save_to_disk(str(tmp_path / "ds"))
    assert len(read_records(tmp_path / "ds", split="train").records) == 2
    with pytest.raises(DataError, match="name one with --split"):
        read_records(tmp_path / "ds")
    with pytest.raises(DataError, match="has no split 'dev'"):
        read_records(tmp_path / "ds", split="dev")


def test_reads_shared_layout_as_is(shared_data: Path) -> None:
    for name in ("deepsentipers", "parsinlu_food", "parsinlu_movie"):
        result = read_records(shared_data / name / "dev.jsonl")
        assert not result.rejected, result.rejected[:3]
        assert all(r.id for r in result.records)
    food = read_records(shared_data / "parsinlu_food" / "dev.jsonl").records
    assert any(r.aspects for r in food) and all(r.product for r in food)
    senti = read_records(shared_data / "deepsentipers" / "dev.jsonl").records
    assert all(r.aspects is None and r.sentiment_score is not None for r in senti)
