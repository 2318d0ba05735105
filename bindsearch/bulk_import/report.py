"""What an import did: the dataclasses ``import_vectors`` returns and ``bindsearch import --json`` prints."""

from __future__ import annotations

from dataclasses import dataclass, field

# At most this many refused rows are listed one by one (``skipped`` counts them all).
MAX_LISTED = 1000


@dataclass(frozen=True)
class BadRow:
    """A row of the file that was not imported: its position (0-based), why, and its path where it has one."""

    row: int
    reason: str
    path: str | None = None


@dataclass
class ImportReport:
    """Rows read from ``file``; those imported (``added`` as new items, ``updated`` replacing the vector of
    an item the library held), per modality; those skipped, listed in ``bad_rows`` (the first
    MAX_LISTED; ``bad_rows_not_listed`` counts the rest); ``without_file``: imported items whose file is
    not on this machine. ``space`` and ``fingerprint`` are what the file says made its vectors (None:
    it does not say). ``interrupted``: stopped by Ctrl-C, every chunk before kept."""

    file: str
    format: str
    space: str | None = None
    fingerprint: str | None = None
    rows: int = 0
    imported: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    without_file: int = 0
    modalities: dict[str, int] = field(default_factory=dict)
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_rows_not_listed: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    def refuse(self, row: int, reason: str, path: str | None = None) -> None:
        self.skipped += 1
        if len(self.bad_rows) < MAX_LISTED:
            self.bad_rows.append(BadRow(row, reason, path))
        else:
            self.bad_rows_not_listed += 1
