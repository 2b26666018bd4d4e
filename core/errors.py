"""The exceptions every stage raises for problems a user can fix."""

from __future__ import annotations

from pathlib import Path


class ChordError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI."""


class ContractError(ChordError, ValueError):
    """A file or object breaks its contract (docs/design.md "File contracts").

    The message always names the file (when there is one), the field and the offending value.
    """

    def __init__(self, field: str, message: str, path: str | Path | None = None):
        self.field = field
        self.path = None if path is None else Path(path)
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{field}: {message}")


class MissingDependencyError(ChordError, ImportError):
    """An optional heavy dependency is not installed; the message says what to install."""
