"""Modalities, and how a file's modality is told from its name and content.

A modality is a name. The seven of ImageBind are built in; a space may hold
more (a tower bound with ``bindsearch bind``), and says so in its spec: the
names are data, what a space can embed is the space's to say
(``Space.modalities``), not this module's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import UsageError
from .text_encoding import decode_text

# Lower-case identifiers, as short as the library's modality column (16 characters).
MAX_NAME_LENGTH = 16
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class Modality(str):
    """A kind of input that a space can embed: a lower-case name such as ``"image"``.

    One object per name (``Modality("image") is Modality.IMAGE``), so that modalities compare by
    identity as cheaply as the enum they once were; a plain string of the same name is equal to it.
    """

    __slots__ = ()
    _interned: dict[str, Modality] = {}

    # The built-in modalities, set below the class.
    IMAGE: Modality
    VIDEO: Modality
    TEXT: Modality
    AUDIO: Modality
    DEPTH: Modality
    THERMAL: Modality
    IMU: Modality

    def __new__(cls, name: str) -> Modality:
        if type(name) is cls:
            return name
        try:
            return cls._interned[name]
        except (KeyError, TypeError):
            pass
        if not isinstance(name, str) or not is_modality_name(name):
            raise ValueError(f"{name!r} is not a modality name (lower-case letters, digits and _, "
                             f"starting with a letter, at most {MAX_NAME_LENGTH} characters)")
        made = super().__new__(cls, name)
        return cls._interned.setdefault(str(name), made)

    @property
    def value(self) -> str:
        """The name as a plain string (what the library stores)."""
        return str.__str__(self)

    @property
    def builtin(self) -> bool:
        """One of ImageBind's seven modalities (rather than one a space adds)."""
        return self in BUILTIN_MODALITIES

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Modality({str.__str__(self)!r})"

    def __reduce__(self) -> tuple:
        return (Modality, (str.__str__(self),))

    @classmethod
    def parse(cls, name: str | Modality, known: Iterable[Modality] | None = None) -> Modality:
        """The modality called ``name`` (case-insensitive), or a UsageError.

        ``known``: the modalities to choose from (a space's, a library's). Without it any well-formed
        name is a modality, since what a space embeds is the space's to say: the caller checks it there
        (``check_modality``).
        """
        if isinstance(name, Modality) and known is None:
            return name
        text = name.strip().lower() if isinstance(name, str) else ""
        if known is None:
            if is_modality_name(text):
                return cls(text)
            known = BUILTIN_MODALITIES
        return check_modality(text if is_modality_name(text) else str(name), known)


def check_modality(name: str, known: Iterable[Modality], who: str | None = None) -> Modality:
    """``name`` if it is one of ``known``, else a UsageError that lists them (``who``: whose they are)."""
    choices = tuple(known)
    if name in choices:
        return Modality(name)
    listed = ", ".join(sorted(m.value for m in choices))
    owner = f"{who} embeds" if who else "choose from"
    raise UsageError(f"unknown modality '{name}' ({owner}: {listed})")


def is_modality_name(name: str) -> bool:
    """A lower-case identifier of at most MAX_NAME_LENGTH characters."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


for _member in ("image", "video", "text", "audio", "depth", "thermal", "imu"):
    setattr(Modality, _member.upper(), Modality(_member))

BUILTIN_MODALITIES: tuple[Modality, ...] = (
    Modality.IMAGE, Modality.VIDEO, Modality.TEXT, Modality.AUDIO, Modality.DEPTH, Modality.THERMAL, Modality.IMU,
)


EXTENSIONS: dict[str, Modality] = {
    **dict.fromkeys([".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"], Modality.IMAGE),
    **dict.fromkeys([".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"], Modality.VIDEO),
    **dict.fromkeys([".txt", ".md"], Modality.TEXT),
    **dict.fromkeys([".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac"], Modality.AUDIO),
    **dict.fromkeys([".npy", ".npz", ".csv"], Modality.IMU),
}

# Depth maps, thermal images and IMU logs look like ordinary images and tables,
# so their modality comes from a convention: a folder named after the modality
# anywhere in the path (".../thermal/0001.png"), or a double extension
# ("scene.depth.png"). The double extension wins over the folder. A modality a
# space adds is told the same way, by its own name.
SENSOR_MODALITIES = (Modality.DEPTH, Modality.THERMAL, Modality.IMU)
_SENSOR_FILE_EXTENSIONS = {
    Modality.DEPTH: frozenset({".png", ".tif", ".tiff", ".npy", ".npz"}),
    Modality.THERMAL: frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}),
    Modality.IMU: frozenset({".npy", ".npz", ".csv"}),
}

# The kinds of input a modality that a space adds can be read as, and their file extensions:
# time series (ImageBind's IMU design, any number of channels), single-channel images (its
# depth and thermal design) and sound (its audio design).
INPUT_EXTENSIONS: dict[str, frozenset[str]] = {
    "timeseries": frozenset({".npy", ".npz", ".csv"}),
    "image1": frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy", ".npz"}),
    "audio": frozenset(ext for ext, m in EXTENSIONS.items() if m is Modality.AUDIO),
}


@dataclass(frozen=True)
class Naming:
    """The modalities told by the naming convention (a folder or an inner extension), with the
    extensions each takes: the sensors, and those a space adds (``Space.naming``), added first."""

    conventions: tuple[tuple[Modality, frozenset[str]], ...]

    @property
    def names(self) -> frozenset[str]:
        """The inner extensions that name a modality ("scan.depth.png")."""
        return frozenset(m.value for m, _ in self.conventions)

    def with_modalities(self, added: Iterable[tuple[Modality, frozenset[str]]]) -> Naming:
        """This naming with more modalities told by convention, ahead of the others."""
        added = tuple(added)
        names = {m for m, _ in added}
        return Naming(added + tuple(c for c in self.conventions if c[0] not in names))

    def modality_of(self, path: str) -> Modality | None:
        """The modality a file's name implies, or None for files that are not media (no I/O)."""
        name = os.path.basename(path).lower()
        stem, ext = os.path.splitext(name)
        if not ext:
            return None
        inner = os.path.splitext(stem)[1].lstrip(".")
        for modality, extensions in self.conventions:
            if inner == modality and ext in extensions:
                return modality
        folders = {part.lower() for part in os.path.dirname(path).split(os.sep)}
        for modality, extensions in self.conventions:
            if modality in folders and ext in extensions:
                return modality
        found = EXTENSIONS.get(ext)
        # Bare .npy/.npz/.csv files outside an imu folder are ordinary data, not media.
        if found is Modality.IMU:
            return None
        return found


DEFAULT_NAMING = Naming(tuple(_SENSOR_FILE_EXTENSIONS.items()))


def modality_from_path(path: str, naming: Naming | None = None) -> Modality | None:
    """Return the modality a file's name implies, or None for files that are not media.

    Costs no I/O: only the path is looked at. ``naming``: a space's (``Space.naming``), which
    knows the modalities it adds; by default the built-in ones.
    """
    return (naming or DEFAULT_NAMING).modality_of(path)


# Leading bytes of the container formats we read, to catch a file whose content
# is not what its extension says before a decoder gives a murkier message.
_SIGNATURES: list[tuple[bytes, int, str, Modality]] = [
    (b"\xff\xd8\xff", 0, "JPEG", Modality.IMAGE),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", Modality.IMAGE),
    (b"GIF87a", 0, "GIF", Modality.IMAGE),
    (b"GIF89a", 0, "GIF", Modality.IMAGE),
    (b"BM", 0, "BMP", Modality.IMAGE),
    (b"II*\x00", 0, "TIFF", Modality.IMAGE),
    (b"MM\x00*", 0, "TIFF", Modality.IMAGE),
    (b"WEBP", 8, "WebP", Modality.IMAGE),
    (b"WAVE", 8, "WAV", Modality.AUDIO),
    (b"fLaC", 0, "FLAC", Modality.AUDIO),
    (b"OggS", 0, "Ogg", Modality.AUDIO),
    (b"ID3", 0, "MP3", Modality.AUDIO),
    (b"ftyp", 4, "MP4/MOV", Modality.VIDEO),
    (b"\x1a\x45\xdf\xa3", 0, "Matroska/WebM", Modality.VIDEO),
    (b"AVI ", 8, "AVI", Modality.VIDEO),
]


def sniff_format(head: bytes) -> tuple[str, Modality] | None:
    """Name the container format of a file from its first bytes, if it is one we know."""
    for magic, offset, name, modality in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name, modality
    return None


def looks_like_text(head: bytes) -> bool:
    """True when a file's leading bytes are text in an encoding ``text_encoding`` reads (a cut character allowed)."""
    return decode_text(head, complete=False) is not None
