"""The seven modalities and how a file's modality is told from its name and content."""

from __future__ import annotations

import enum
import os

from .errors import UsageError
from .text_encoding import decode_text


class Modality(str, enum.Enum):
    """A kind of input that a space can embed."""

    IMAGE = "image"
    VIDEO = "video"
    TEXT = "text"
    AUDIO = "audio"
    DEPTH = "depth"
    THERMAL = "thermal"
    IMU = "imu"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, name: str | Modality) -> Modality:
        """Return the modality called ``name`` (case-insensitive) or raise UsageError."""
        if isinstance(name, Modality):
            return name
        try:
            return cls(name.strip().lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise UsageError(f"unknown modality '{name}' (choose from: {choices})") from None


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
# ("scene.depth.png"). The double extension wins over the folder.
SENSOR_MODALITIES = (Modality.DEPTH, Modality.THERMAL, Modality.IMU)
_SENSOR_FILE_EXTENSIONS = {
    Modality.DEPTH: {".png", ".tif", ".tiff", ".npy", ".npz"},
    Modality.THERMAL: {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"},
    Modality.IMU: {".npy", ".npz", ".csv"},
}


def modality_from_path(path: str) -> Modality | None:
    """Return the modality a file's name implies, or None for files that are not media.

    Costs no I/O: only the path is looked at.
    """
    name = os.path.basename(path).lower()
    stem, ext = os.path.splitext(name)
    if not ext:
        return None
    inner = os.path.splitext(stem)[1].lstrip(".")
    for modality in SENSOR_MODALITIES:
        if inner == modality.value and ext in _SENSOR_FILE_EXTENSIONS[modality]:
            return modality
    folders = {part.lower() for part in os.path.dirname(path).split(os.sep)}
    for modality in SENSOR_MODALITIES:
        if modality.value in folders and ext in _SENSOR_FILE_EXTENSIONS[modality]:
            return modality
    found = EXTENSIONS.get(ext)
    # Bare .npy/.npz/.csv files outside an imu folder are ordinary data, not media.
    if found is Modality.IMU:
        return None
    return found


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
