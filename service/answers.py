"""The model's tags and the store's rows as the API's answer schemas."""

from __future__ import annotations

import dataclasses

from bazkhord.data.taxonomy import Taxonomy
from bazkhord.model.base import AspectTag, Evidence, Tag
from bazkhord.model.folder import LoadedModel
from bazkhord.service.schemas import AspectOut, EvidenceOut, ModelInfo, ModelRef, StoredFeedback, TagResult
from bazkhord.service.store import Stored


def to_stored(row: Stored, status: str, taxonomy: Taxonomy | None, reader: int | None = None) -> StoredFeedback:
    """The stored comment as answered; to `reader`, a key other than the one that stored it, a duplicate comes
    without the metadata (channel, product, segment, rating, NPS, times): sending a client id it guessed, with the
    text it has, must not tell an ingest-only key what another key stored."""
    if status == "duplicate" and reader is not None and row.api_key_id is not None and row.api_key_id != reader:
        row = dataclasses.replace(row, channel=None, product=None, segment=None, rating=None, nps=None)
        answer = _to_stored(row, status, taxonomy)
        answer.created_at = answer.received_at = None
        return answer
    return _to_stored(row, status, taxonomy)


def _to_stored(row: Stored, status: str, taxonomy: Taxonomy | None) -> StoredFeedback:
    aspects = tuple(AspectTag(a["aspect"], a["confidence"], a["polarity"], a["polarity_confidence"],
                              tuple(Evidence(e["text"], e["start"], e["end"]) for e in a["evidence"]))
                    for a in row.aspects)
    out = aspects_out(aspects, taxonomy)
    for answer, stored in zip(out, row.aspects, strict=True):
        answer.source = stored.get("source", "model")
        answer.model_polarity = stored.get("model_polarity") if answer.source == "human" else None
    return StoredFeedback(
        client_id=row.client_id, status=status, text=row.text, channel=row.channel, product=row.product,  # type: ignore[arg-type]
        segment=row.segment, rating=row.rating, nps=row.nps, created_at=row.created_at, received_at=row.received_at,
        sentiment=row.sentiment, probabilities=row.probabilities, aspects=out,
        model=ModelRef(name=row.model_name, version=row.model_version),
        sentiment_source="human" if row.human_sentiment is not None else "model",
        model_sentiment=row.model_sentiment, removed_aspects=list(row.removed_aspects),
        corrected_by=row.corrected_by, corrected_at=row.corrected_at)


def model_info(loaded: LoadedModel) -> ModelInfo:
    return ModelInfo(name=loaded.name, version=loaded.version, kind=str(loaded.manifest["kind"]))


def aspects_out(aspects: tuple[AspectTag, ...], taxonomy: Taxonomy | None) -> list[AspectOut]:
    found = []
    for a in aspects:
        entry = taxonomy.get(a.aspect) if taxonomy is not None else None
        found.append(AspectOut(
            aspect=a.aspect,
            name_fa=entry.name_fa if entry else None,
            name_en=entry.name_en if entry else None,
            confidence=a.confidence,
            polarity=a.polarity,
            polarity_confidence=a.polarity_confidence,
            evidence=[EvidenceOut(text=e.text, start=e.start, end=e.end) for e in a.evidence],
        ))
    return found


def to_result(item_id: str | None, tag: Tag, loaded: LoadedModel) -> TagResult:
    return TagResult(id=item_id, sentiment=tag.sentiment, probabilities=tag.probabilities,
                     aspects=aspects_out(tag.aspects, loaded.tagger.taxonomy))
