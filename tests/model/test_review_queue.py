"""The review queue's choice (model/review.py): what makes a comment worth asking about, the spread across strata,
and the near-duplicates it never asks twice."""

from __future__ import annotations

import pytest

from bazkhord.model.review import (
    Candidate,
    NearDuplicates,
    choose_for_review,
    disagreement,
    margin_uncertainty,
    text_clusters,
)


def test_uncertainty_and_disagreement() -> None:
    assert margin_uncertainty([0.5, 0.5]) == pytest.approx(1.0)
    assert margin_uncertainty([1.0, 0.0]) == pytest.approx(0.0)
    assert margin_uncertainty([0.6, 0.3, 0.1]) == pytest.approx(0.7)
    assert disagreement([0.6, 0.4], [0.4, 0.6]) == 1.0  # another label
    assert disagreement([0.6, 0.4], [0.9, 0.1]) == pytest.approx(0.15)  # same label, half the L1 distance / 2
    assert disagreement([0.6, 0.4], None) == 0.0


def test_the_most_doubtful_come_first_and_a_second_opinion_counts() -> None:
    sure = Candidate("sure", "ارسال سریع بود", [0.95, 0.05])
    unsure = Candidate("unsure", "غذا سرد رسید ولی خوشمزه بود", [0.55, 0.45])
    disputed = Candidate("disputed", "بسته بندی معمولی بود", [0.8, 0.2], second=[0.3, 0.7])
    chosen = choose_for_review([sure, unsure, disputed], 3)
    assert [c for c, _ in chosen] == [2, 1, 0]  # 0.4 + 1 (the baseline reads it otherwise) > 0.9 > 0.1
    assert chosen[1][1].uncertainty == pytest.approx(0.9) and chosen[1][1].disagreement == 0.0
    assert chosen[0][1].worth == pytest.approx(1.4)


def test_picks_spread_across_strata() -> None:
    # Ten doubtful comments about delivery, ten a little less doubtful about price: the queue still asks about price
    # early, because each delivery pick discounts the next one.
    words = ["پیتزا", "برگر", "کباب", "سالاد", "ساندویچ", "پاستا", "سوشی", "جوجه", "قورمه", "املت"]
    delivery = [Candidate(f"d{i}", f"{w} من را پیک {i + 2} ساعت بعد آورد", [0.52, 0.48], strata=("delivery",))
                for i, w in enumerate(words)]
    price = [Candidate(f"p{i}", f"قیمت {w} از هفته پیش گران‌تر شده", [0.6, 0.4], strata=("price",))
             for i, w in enumerate(words)]
    chosen = [c for c, _ in choose_for_review(delivery + price, 6, decay=0.7)]
    assert sum(1 for i in chosen if i >= 10) >= 2
    unspread = [c for c, _ in choose_for_review(delivery + price, 6, decay=1.0)]
    assert all(i < 10 for i in unspread)  # without the discount, one stratum fills the queue


def test_near_duplicates_and_already_corrected_are_skipped() -> None:
    texts = ["غذا خیلی سرد بود و دیر رسید", "غذا خیلی سرد بود و دیر رسید!!", "غذا  خیلی سرد بود و دیر رسید",
             "کیفیت گوشت پایین بود", "پشتیبانی جواب نداد"]
    candidates = [Candidate(str(i), t, [0.5, 0.5]) for i, t in enumerate(texts)]
    chosen = [c for c, _ in choose_for_review(candidates, 5)]
    assert chosen == [0, 3, 4]  # the copies with an extra «!!» or a doubled space are one comment
    after = [c for c, _ in choose_for_review(candidates, 5, already=["کیفیت گوشت پایین بود."])]
    assert 3 not in after and 0 in after
    seen = NearDuplicates(["سلام"])
    assert seen.seen("سلام") and not seen.seen("خداحافظ")


def test_text_clusters_group_comments_that_read_alike() -> None:
    texts = [f"غذا سرد بود {i}" for i in range(30)] + [f"ارسال دیر بود {i}" for i in range(30)]
    labels = text_clusters(texts, clusters=2)
    assert len(labels) == 60 and len(set(labels[:30])) == 1 and labels[0] != labels[-1]
    assert text_clusters(texts[:3], clusters=2) == ["0"] * 3

