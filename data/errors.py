"""Errors that say what is wrong, where, and what to do (STYLE.md, practice 9)."""

from __future__ import annotations


class BazkhordError(Exception):
    """Base of every error bazkhord raises on purpose. `code` is stable and documented."""

    code = "E000"

    def __str__(self) -> str:
        return f"[{self.code}] {super().__str__()}"


class DataError(BazkhordError):
    """A data file cannot be used: missing, unreadable, wrong format or too many bad rows."""

    code = "E100"


class ConfigError(BazkhordError):
    """A config file or a --set override is wrong."""

    code = "E200"


class ModelFolderError(BazkhordError):
    """A model folder is missing, incomplete, corrupt or made by an incompatible version."""

    code = "E300"


class InputError(BazkhordError):
    """Text given for prediction is unusable."""

    code = "E400"


class TrainingStopped(BazkhordError):
    """A training run stopped early (Ctrl-C); its checkpoint is saved and the same command resumes it."""
