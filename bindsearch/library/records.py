"""What a library hands out about its items: plain records, and the names of its files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from ..modality import Modality
from ..windows import WINDOWED

if TYPE_CHECKING:  # (the ann package loads FAISS, which a no-op index run never needs)
    from ..ann.base import IndexStats

DB_FILE = "library.sqlite"
INDEX_DIR = "index"
LOCK_FILE = "write.lock"


@dataclass(frozen=True)
class FileError:
    """A file that could not be indexed, and why (one line)."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndexInfo:
    """What ``info`` shows of one index: its name (``image``, ``audio.windows``) and its engine's stats."""

    name: str
    stats: IndexStats
    file_bytes: int  # of its saved file; 0 for an exact index, which has none
    vector_bytes: int = 0  # what its vector file takes on disk (less than its length once optimize freed rows)


@dataclass(frozen=True)
class OptimizeReport:
    """What ``bindsearch optimize`` did: the indexes as it left them, and the disk space it gave back (the rows
    of removed and re-embedded items, which stay in the vector files until then)."""

    indexes: list[IndexInfo]
    freed_bytes: int


@dataclass(frozen=True)
class ItemWindow:
    """One time window of a long audio or video item (seconds from the start of the file)."""

    start: float
    end: float


@dataclass(frozen=True)
class ItemDetails:
    """One embedded item as a viewer shows it: its file, modality, size, modification time (seconds since
    the epoch), length (audio and video; None where not known), tags and time windows."""

    id: int
    path: str
    modality: Modality
    size: int
    mtime: float
    duration: float | None
    tags: tuple[str, ...] = ()
    windows: tuple[ItemWindow, ...] = ()


@dataclass(frozen=True)
class LibraryInfo:
    """What ``bindsearch info`` shows about a library."""

    path: str
    space: str
    fingerprint: str
    dim: int
    schema_version: int
    created_at: float
    counts: dict[str, int]
    failed: list[FileError] = field(default_factory=list)
    size_bytes: int = 0
    # Time windows of long audio and video: how they are cut, and how many each modality has.
    window_settings: dict[str, float] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    # How many items carry each tag.
    tags: dict[str, int] = field(default_factory=dict)
    # Which precisions (fp32, bf16, fp16) embedded each modality's vectors.
    precisions: dict[str, list[str]] = field(default_factory=dict)
    # Why this process cannot change the library (it can still search it), or None.
    read_only: str | None = None
    # Per index that holds vectors: its engine (exact or approximate), size, last build, expected recall.
    indexes: list[IndexInfo] = field(default_factory=list)
    # Every modality the space embeds, built-in ones first, with what reads its files ("timeseries",
    # "image1", "audio" for a modality a space adds; a built-in one's own name): what the page draws.
    modalities: dict[str, str] = field(default_factory=dict)
    # Where a library named by a library file keeps its metadata (the database URL, password hidden) and its
    # vectors (the folder); None for a library folder, which holds both.
    metadata: str | None = None
    vectors: str | None = None


class StoredItem(NamedTuple):
    """An item row as the indexer needs it to decide what changed.

    A named tuple, not a dataclass: a re-index reads one per item of the library.
    """

    id: int
    path: str
    modality: Modality
    size: int
    mtime_ns: int
    content_hash: str | None
    status: str
    window_count: int | None
    duration: float | None
    error: str | None = None  # why a failed item failed


class StoredWindow(NamedTuple):
    """A time window of an item: its id, the item's id, and where it lies in the file (seconds)."""

    id: int
    item_id: int
    start: float
    end: float


VECTOR_DIR = "vectors"


def index_keys(modalities: Iterable[Modality]) -> Iterator[tuple[Modality, bool]]:
    """The indexes of these modalities, (modality, windows?) each: long audio and video have a second one for
    their time windows."""
    for modality in modalities:
        yield modality, False
        if modality in WINDOWED:
            yield modality, True


def index_name(modality: Modality, windows: bool = False) -> str:
    """What names an index and its vector file: ``audio`` for whole items, ``audio.windows`` for their windows."""
    return f"{modality.value}.windows" if windows else modality.value


def generation_key(modality: Modality, windows: bool = False) -> str:
    """The meta key counting the commits that changed this index."""
    return f"generation:{index_name(modality, windows)}"


def build_key(modality: Modality, windows: bool = False) -> str:
    """The meta key counting the builds of this index's file: a process holding an older build loads the new."""
    return f"build:{index_name(modality, windows)}"
