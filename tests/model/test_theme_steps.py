"""Each step of theme discovery, alone."""

from __future__ import annotations

import numpy as np

from bazkhord.model.themes.steps import (
    AgglomerativeClusterer,
    CtfidfLabeler,
    KMeansClusterer,
    NearestCentroid,
    SvdReducer,
    TfidfEmbedder,
    fit_projection,
    lemma,
    stopwords,
)

LATE = ["پیک خیلی دیر اومد", "پیک دو روز دیر رسید", "ارسال با پیک خیلی دیر بود", "پیک دیر کرد و زنگ نزد",
        "پیک سه روز دیر اومد", "باز هم پیک دیر رسید"]
BATTERY = ["باتری گوشی زود خالی میشه", "باتری گوشی داغ میکنه", "باتری گوشیم نصف روز دووم نداره",
           "شارژ باتری گوشی زود تموم میشه", "باتری گوشی خراب شد", "باتری این گوشی ضعیفه"]


def test_embed_and_reduce_are_deterministic_unit_vectors() -> None:
    vectors = TfidfEmbedder().embed(LATE + BATTERY)
    assert vectors.shape[0] == 12
    reduced = SvdReducer(n_components=5, seed=1).reduce(vectors)
    np.testing.assert_allclose(np.linalg.norm(reduced, axis=1), 1.0)
    np.testing.assert_array_equal(reduced, SvdReducer(n_components=5, seed=1).reduce(vectors))


def test_kmeans_never_mixes_the_two_groups_and_drops_small_ones() -> None:
    reduced = SvdReducer(n_components=5).reduce(TfidfEmbedder().embed(LATE + BATTERY))
    assert list(KMeansClusterer(max_k=2, min_size=3).cluster(reduced)) == [1] * 6 + [0] * 6
    labels = KMeansClusterer(max_k=4, min_size=3).cluster(reduced)
    assert not (set(labels[:6]) & set(labels[6:])) - {-1}  # clusters under min_size are -1; none mixes groups
    assert list(KMeansClusterer(min_size=7).cluster(reduced)) == [0] * 12  # too few for two clusters of 7


def test_statements_outside_the_sample_join_the_nearest_cluster_or_none() -> None:
    sample = LATE[:4] + BATTERY[:4]
    projection = fit_projection(TfidfEmbedder(), SvdReducer(n_components=4), sample)
    assert projection is not None
    vectors = projection(sample)
    np.testing.assert_allclose(vectors, SvdReducer(n_components=4).reduce(TfidfEmbedder().embed(sample)), atol=1e-9)
    assign = NearestCentroid.of(projection, projection(sample, unit=False), np.array([0, 0, 0, -1, 1, 1, 1, 1]))
    labels, closeness = assign([*LATE[4:], *BATTERY[4:], "سلام"])
    assert list(labels) == [0, 0, 1, 1, -1]  # a greeting shares no word with either cluster
    assert closeness[:4].min() > closeness[4]
    again = NearestCentroid.of(projection, vectors, np.full(8, -1))  # no cluster at all: nothing to join
    assert list(again(LATE[4:])[0]) == [-1, -1]
    assert fit_projection(TfidfEmbedder(), AgglomerativeClusterer(), sample) is None  # type: ignore[arg-type]


def test_agglomerative_alternative() -> None:
    points = np.array([[1, 0], [0.99, 0.05], [0.98, 0.1], [0, 1], [0.05, 0.99], [0.1, 0.98], [0.7, 0.7]])
    labels = AgglomerativeClusterer(distance=0.2, min_size=2).cluster(points)
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4] == labels[5]
    assert labels[6] == -1


def test_ctfidf_keyphrases_say_what_is_special() -> None:
    keys = CtfidfLabeler().keyphrases([LATE, BATTERY])
    assert set(keys[0][0].split()) & {"پیک", "دیر"}
    assert set(keys[1][0].split()) & {"باتری", "گوشی"}
    assert not any(word in stopwords() for phrase in keys[0] for word in phrase.split()[:1])


def test_placeholders_numbers_and_stop_words_are_no_keyphrases() -> None:
    terms = CtfidfLabeler().terms("لطفا با [PHONE] تماس بگیرید، 1234 خیلی واقعا")
    assert not any("PHONE" in t or "1234" in t for t in terms)
    assert "خیلی" not in terms and "تماس" in terms


def test_labels_are_readable_phrases_never_greetings_feelings_verbs_or_products() -> None:
    labeler = CtfidfLabeler(avoid=frozenset({"پیتزا", "مرغ"}))
    assert labeler.label(["پیک", "پیک دیر", "باتری"]) == "پیک دیر"  # a phrase of 2-4 words first
    assert labeler.label(["پیک", "باتری"]) == "پیک"
    for bad in ("سلام", "خسته نباشید", "سفارش داده بودم", "راضی نبودم", "خیلی بد بود", "نداشت", "پیتزا", "مرغ‌ها"):
        assert labeler.label([bad]) == "", bad
    assert labeler.label([]) == ""


def test_a_cluster_is_named_by_a_phrase_it_shares_in_the_words_it_uses() -> None:
    cold = ["غذا سرد رسید", "غذا کاملا سرد رسید", "غذا سرد رسید و دیر", "پیتزا سرد رسید", "سرد رسید متاسفانه"]
    pizza = ["پیتزا افتضاح", "پیتزا خیلی بد", "پیتزا واقعا افتضاح", "این پیتزا", "پیتزا بد"]
    feelings = ["خیلی بد بود", "افتضاح بود افتضاح", "راضی نبودم", "خیلی بد", "افتضاح"]
    described = CtfidfLabeler(avoid=frozenset({"پیتزا"})).describe([cold, pizza, feelings])
    label = described[0][1]
    assert "سرد" in label.split() and len(label.split()) >= 2 and label in " ".join(cold)  # a phrase, as written
    assert described[1][1] == "شکایت از پیتزا"  # complaints about one product and nothing more
    assert described[2][1] == ""  # feelings, no cause
    assert not any(len(set(k.split())) < len(k.split()) for keys, _ in described for k in keys)  # no «افتضاح ... افتضاح»


def test_lemma_drops_suffixes_but_keeps_nouns_hazm_takes_for_verbs() -> None:
    assert lemma("کتاب‌ها") == "کتاب"
    assert lemma("کارم") == "کارم"
