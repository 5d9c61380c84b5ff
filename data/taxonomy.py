"""The aspect taxonomy: one TOML file, never a list in code."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from data.errors import DataError

DEFAULT_TAXONOMY_PATH = Path(__file__).with_name("taxonomy.toml")


@dataclass(frozen=True)
class Aspect:
    key: str
    name_fa: str
    name_en: str
    description: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    aspects: tuple[Aspect, ...]
    version: int = 1

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
        return {
            "version": self.version,
            "aspect": [
                {"key": a.key, "name_fa": a.name_fa, "name_en": a.name_en, "description": a.description,
                 "aliases": list(a.aliases)}
                for a in self.aspects
            ],
        }

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
                )
            )
        keys = [aspect.key for aspect in aspects]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise DataError(f"{where}: aspect key(s) {duplicates} appear more than once")
        version = values.get("version", 1)
        return cls(tuple(aspects), int(version) if isinstance(version, int) else 1)


def load_taxonomy(path: str | Path = DEFAULT_TAXONOMY_PATH) -> Taxonomy:
    """Load a taxonomy file; `"default"` names the one shipped with bazkhord."""
    path = DEFAULT_TAXONOMY_PATH if str(path) == "default" else Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: taxonomy file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise DataError(f"{path}: not valid TOML ({error})") from None
    return Taxonomy.from_dict(values, where=str(path))
