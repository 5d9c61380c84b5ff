"""The aspect taxonomy: one TOML file per domain, never a list in code.

`default` (and `ecommerce`) is data/taxonomy.toml; other domains live in data/taxonomies/<name>.toml
(`food_delivery`). Each aspect has Persian names, descriptions and seed phrases: what a statement about it says,
in the customers' words, so statements can be assigned to it zero-shot when a model has no aspect head for it.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bazkhord.data.errors import DataError

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("taxonomy.toml")
TAXONOMIES_DIR = Path(__file__).with_name("taxonomies")
ALIASES = {"default": DEFAULT_TAXONOMY_PATH, "ecommerce": DEFAULT_TAXONOMY_PATH}


@dataclass(frozen=True)
class Aspect:
    key: str
    name_fa: str
    name_en: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    description_fa: str = ""
    seeds: tuple[str, ...] = ()  # short statements about the aspect, as customers write them


@dataclass(frozen=True)
class Taxonomy:
    aspects: tuple[Aspect, ...]
    version: int = 1
    domain: str = ""
    # Zero-shot assignment: least similarity to an aspect's closest seed, by embedder ("e5", "tfidf").
    zero_shot: tuple[tuple[str, float], ...] = ()
    # Words that name what is sold (dishes, devices): context, never a theme's label on their own.
    product_words: tuple[str, ...] = ()
    # Words of the trade that alone name no cause («سفارش»): never a label on their own.
    context_words: tuple[str, ...] = ()
    # The aspect a complaint about a product itself belongs to when no other aspect is found («سالاد افتضاح بود»).
    product_aspect: str = ""
    # Words of the business that name no aspect but tell the domain (a device's parts and features: «صفحه»,
    # «باتری»): what complaints in this business blame, counted when the report decides whether the taxonomy fits.
    domain_words: tuple[str, ...] = ()

    def zero_shot_threshold(self, embedder: str) -> float | None:
        return dict(self.zero_shot).get(embedder)

    @property
    def keys(self) -> list[str]:
        return [aspect.key for aspect in self.aspects]

    def get(self, key: str) -> Aspect | None:
        return next((aspect for aspect in self.aspects if aspect.key == key), None)

    def canonical(self, name: str) -> str | None:
        """The key for an aspect name or alias (e.g. ParsiNLU's «ارسال» -> delivery); None if unknown."""
        for aspect in self.aspects:
            if name == aspect.key or name in aspect.aliases:
                return aspect.key
        return None

    def map_labels(self, aspects: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        """Rename labelled aspects to taxonomy keys. Names it does not know are kept and returned as unknown.
        Two source aspects that land on one key with opposite polarities become `mixed`."""
        mapped: dict[str, str] = {}
        unknown: list[str] = []
        for name, polarity in aspects.items():
            key = self.canonical(name)
            if key is None:
                unknown.append(name)
                key = name
            previous = mapped.get(key)
            if previous is not None and previous != polarity:
                polarity = "mixed" if {previous, polarity} <= {"positive", "negative", "mixed"} else previous
            mapped[key] = polarity
        return mapped, unknown

    def to_dict(self) -> dict[str, object]:
        values: dict[str, object] = {
            "version": self.version,
            "aspect": [
                {"key": a.key, "name_fa": a.name_fa, "name_en": a.name_en, "description": a.description,
                 "aliases": list(a.aliases), "description_fa": a.description_fa, "seeds": list(a.seeds)}
                for a in self.aspects
            ],
        }
        if self.domain:
            values["domain"] = self.domain
        if self.zero_shot:
            values["zero_shot"] = dict(self.zero_shot)
        if self.product_words:
            values["product_words"] = list(self.product_words)
        if self.product_aspect:
            values["product_aspect"] = self.product_aspect
        if self.context_words:
            values["context_words"] = list(self.context_words)
        if self.domain_words:
            values["domain_words"] = list(self.domain_words)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, object], where: str = "taxonomy") -> Taxonomy:
        entries = values.get("aspect")
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{where}: needs at least one [[aspect]] table")
        aspects = []
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict):
                raise DataError(f"{where}: aspect #{number} is not a table")
            missing = [name for name in ("key", "name_fa", "name_en") if not entry.get(name)]
            if missing:
                raise DataError(f"{where}: aspect #{number} lacks {', '.join(missing)}")
            aspects.append(
                Aspect(
                    key=str(entry["key"]),
                    name_fa=str(entry["name_fa"]),
                    name_en=str(entry["name_en"]),
                    description=str(entry.get("description", "")),
                    aliases=tuple(str(alias) for alias in entry.get("aliases", [])),
                    description_fa=str(entry.get("description_fa", "")),
                    seeds=tuple(str(seed) for seed in entry.get("seeds", [])),
                )
            )
        keys = [aspect.key for aspect in aspects]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise DataError(f"{where}: aspect key(s) {duplicates} appear more than once")
        version = values.get("version", 1)
        zero_shot = values.get("zero_shot", {})
        if not isinstance(zero_shot, dict) or not all(isinstance(v, int | float) and 0 < v < 1 for v in zero_shot.values()):
            raise DataError(f"{where}: [zero_shot] maps an embedder name to a similarity between 0 and 1")
        words = {}
        for name in ("product_words", "context_words", "domain_words"):
            found = values.get(name, [])
            if not isinstance(found, list) or not all(isinstance(w, str) and w.strip() for w in found):
                raise DataError(f"{where}: {name} is a list of words")
            words[name] = tuple(w.strip() for w in found)
        product_aspect = str(values.get("product_aspect", ""))
        if product_aspect and product_aspect not in keys:
            raise DataError(f"{where}: product_aspect {product_aspect!r} is not an aspect key; known: {keys}")
        return cls(tuple(aspects), int(version) if isinstance(version, int) else 1, str(values.get("domain", "")),
                   tuple(sorted((str(k), float(v)) for k, v in zero_shot.items())),
                   words["product_words"], words["context_words"], product_aspect, words["domain_words"])


def taxonomy_toml(taxonomy: Taxonomy, header: str = "") -> str:
    """The taxonomy as a file `load_taxonomy` reads back (a draft codebook an analyst edits); `header` is written
    as comments above it."""
    def value(v: object) -> str:
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=False)  # JSON strings and numbers are TOML

    values = taxonomy.to_dict()
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{k} = {value(v)}" for k, v in values.items() if k not in ("aspect", "zero_shot")]
    if taxonomy.zero_shot:
        lines += ["", "[zero_shot]", *(f"{k} = {value(v)}" for k, v in taxonomy.zero_shot)]
    for aspect in taxonomy.aspects:
        lines += ["", "[[aspect]]", f"key = {value(aspect.key)}", f"name_fa = {value(aspect.name_fa)}",
                  f"name_en = {value(aspect.name_en)}", f"description = {value(aspect.description)}",
                  f"description_fa = {value(aspect.description_fa)}", f"seeds = {value(list(aspect.seeds))}"]
        if aspect.aliases:
            lines.append(f"aliases = {value(list(aspect.aliases))}")
    return "\n".join(lines) + "\n"


def taxonomy_names() -> list[str]:
    """The taxonomies shipped with bazkhord, by name."""
    return sorted({*ALIASES, *(p.stem for p in TAXONOMIES_DIR.glob("*.toml"))})


def load_taxonomy(path: str | Path = DEFAULT_TAXONOMY_PATH) -> Taxonomy:
    """Load a taxonomy: a shipped one by name (`default`, `ecommerce`, `food_delivery`) or a file."""
    text = str(path)
    if text in ALIASES:
        path = ALIASES[text]
    elif "/" not in text and not text.endswith(".toml") and (TAXONOMIES_DIR / f"{text}.toml").exists():
        path = TAXONOMIES_DIR / f"{text}.toml"
    elif "/" not in text and not text.endswith(".toml"):
        raise DataError(f"taxonomy {text!r}: no such shipped taxonomy ({', '.join(taxonomy_names())}) nor file")
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: taxonomy file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise DataError(f"{path}: not valid TOML ({error})") from None
    return Taxonomy.from_dict(values, where=str(path))
