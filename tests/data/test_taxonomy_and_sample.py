"""The default taxonomy and the shipped sample keep the promises of the data card."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bazkhord.data.errors import DataError
from bazkhord.data.normalise import normalise
from bazkhord.data.readers import read_records
from bazkhord.data.taxonomy import Taxonomy, load_taxonomy
from tests.conftest import SAMPLE, SAMPLE_TEST


def test_default_taxonomy() -> None:
    taxonomy = load_taxonomy()
    assert len(taxonomy.keys) >= 10
    assert {"delivery", "price", "quality", "packaging", "support"} <= set(taxonomy.keys)
    assert Taxonomy.from_dict(taxonomy.to_dict()) == taxonomy


def test_bad_taxonomy_files(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[aspect]]\nkey = "a"\nname_fa = "x"\nname_en = "x"\n[[aspect]]\nkey = "a"\nname_fa = "y"\nname_en = "y"\n')
    with pytest.raises(DataError, match="more than once"):
        load_taxonomy(path)
    path.write_text('[[aspect]]\nkey = "a"\n')
    with pytest.raises(DataError, match="lacks name_fa, name_en"):
        load_taxonomy(path)
    path.write_text("[[aspect]\n")
    with pytest.raises(DataError, match="not valid TOML"):
        load_taxonomy(path)


def test_sample_is_large_varied_and_valid() -> None:
    pool = read_records(SAMPLE, max_bad_fraction=0).records
    test = read_records(SAMPLE_TEST, max_bad_fraction=0).records
    assert len(pool) + len(test) >= 1200
    rows = pool + test
    assert len({r.channel for r in rows}) >= 5
    assert set(Counter(r.sentiment for r in rows)) == {"positive", "negative", "neutral", "mixed"}
    taxonomy = set(load_taxonomy().keys)
    used = Counter(a for r in rows for a in (r.aspects or {}))
    assert set(used) == taxonomy and min(used.values()) >= 50
    dates = sorted(r.created_at for r in rows if r.created_at)
    assert (dates[-1] - dates[0]).days >= 150
    assert any(r.nps is not None for r in rows) and any(r.rating is not None for r in rows)
    assert any("ي" in r.text or "ك" in r.text for r in rows)  # Arabic letters, as customers type them
    assert len({normalise(r.text) for r in pool}) == len(pool)


def test_sample_test_file_is_held_out() -> None:
    pool = {normalise(r.text) for r in read_records(SAMPLE).records}
    assert not pool & {normalise(r.text) for r in read_records(SAMPLE_TEST).records}


def test_aliases_map_other_datasets_onto_the_taxonomy() -> None:
    taxonomy = load_taxonomy("default")
    mapped, unknown = taxonomy.map_labels({"ارسال": "negative", "طعم": "positive", "کیفیت": "negative", "رنگ": "neutral"})
    assert mapped == {"delivery": "negative", "quality": "mixed", "رنگ": "neutral"}
    assert unknown == ["رنگ"]
    assert taxonomy.canonical("بسته بندی") == "packaging" and taxonomy.canonical("nothing") is None
