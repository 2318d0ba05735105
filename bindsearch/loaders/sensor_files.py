"""Reading the files of the sensor modalities (depth, thermal, IMU): format sniffing, images, arrays.

Shared by the three sensor loaders: each turns what it reads into one-line
MediaErrors, refuses images over MAX_PIXELS before decoding them, and never
loads pickled arrays.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np

from ..errors import MediaError
from ..modality import looks_like_text, sniff_format
from ..regular_files import open_regular
from .common import FILE_ERRNOS, cut_signature, os_reason, read_head, truncated_reason
from .image import decode_image

NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def describe_mode(mode: str) -> str:
    """Pillow image mode in words, for error messages."""
    return {
        "1": "black-and-white (1-bit)",
        "P": "palette (colour-mapped)",
        "PA": "palette (colour-mapped) with alpha",
        "LA": "greyscale with alpha",
        "La": "greyscale with alpha",
        "RGB": "colour (RGB)",
        "RGBA": "colour (RGBA)",
        "RGBa": "colour (RGBA)",
        "RGBX": "colour (RGB)",
        "CMYK": "colour (CMYK)",
        "YCbCr": "colour (YCbCr)",
        "LAB": "colour (Lab)",
        "HSV": "colour (HSV)",
    }.get(mode, f"mode {mode}")


# --- file checks and readers shared with the thermal and IMU loaders -----------------------------


def content_kind(head: bytes) -> tuple[str, str]:
    """What the leading bytes show: (kind, words) with kind one of npy, npz, image, text, media, unknown."""
    if head.startswith(NPY_MAGIC):
        return "npy", "a NumPy .npy array"
    if head.startswith(_ZIP_MAGICS):
        return "npz", "a zip archive (.npz)"
    found = sniff_format(head)
    if found is not None:
        name, modality = found
        if modality.value == "image":
            return "image", f"{name} (image)"
        return "media", f"{name} ({modality.value})"
    if looks_like_text(head):
        return "text", "plain text"
    return "unknown", "unrecognised binary data"


_KIND_WORDS = {"npy": "a NumPy .npy array", "npz": "a NumPy .npz archive", "image": "an image", "csv": "a CSV table"}


def sniff_sensor_file(path: str, kinds_by_ext: Mapping[str, str], what: str) -> str:
    """The reader a sensor file needs ("image", "npy", "npz" or "csv"), checked against its content.

    ``kinds_by_ext`` maps the extensions the loader knows to the reader they
    imply; a file whose leading bytes show something else is refused. A file
    with another extension is read according to its content, if that is one
    of the loader's readers. Raises MediaError (missing, unreadable, empty,
    wrong content).
    """
    head = read_head(path)
    kind, words = content_kind(head)
    ext = _extension(path)
    accepted = set(kinds_by_ext.values())
    expected = kinds_by_ext.get(ext)
    if expected is None:
        guess = "csv" if kind == "text" else kind
        if guess in accepted or (kind == "unknown" and "image" in accepted):
            return "image" if kind == "unknown" else guess
        raise MediaError(path, f"content is {words}, not {what}")
    if kind in ("text", "unknown") and expected not in (None, "csv"):
        cut = cut_signature(head)
        if cut is not None:
            raise MediaError(path, truncated_reason(cut, len(head)))
    if expected == "csv":
        if kind == "text":
            return "csv"
        raise MediaError(path, f"content is {words}, not {_KIND_WORDS['csv']} as the name says")
    if kind == expected or (expected == "image" and kind == "unknown"):
        return expected  # Pillow knows formats we do not sniff; let it try
    raise MediaError(path, f"content is {words}, not {_KIND_WORDS[expected]} as the name says")


def _extension(path: str) -> str:
    return os.path.splitext(str(path))[1].lower()


open_sensor_image = decode_image  # depth and thermal keep their own mode (16-bit stays 16-bit)


def load_numeric_array(path: str, *, name: str, max_elements: int, what: str) -> np.ndarray:
    """A plain numeric array from a .npy file, or from a .npz holding one array or one called ``name``.

    Never unpickles: object and structured arrays are refused, and so are
    arrays of more than ``max_elements`` values (checked from the header,
    before reading the data). Returns the array as stored (any numeric dtype).
    """
    head = read_head(path)
    try:
        if head.startswith(NPY_MAGIC):
            with open_regular(path) as fp:
                return _read_npy(path, fp, max_elements, what)
        if head.startswith(_ZIP_MAGICS):
            return _read_npz(path, name, max_elements, what)
    except MediaError:
        raise
    except OSError as exc:
        if exc.errno in FILE_ERRNOS:
            raise MediaError(path, os_reason(exc)) from None
        raise MediaError(path, f"corrupt or truncated NumPy file ({exc})") from None
    raise MediaError(path, "not a NumPy .npy or .npz file")


def _read_npz(path: str, name: str, max_elements: int, what: str) -> np.ndarray:
    try:
        with open_regular(path) as raw, zipfile.ZipFile(raw) as zf:
            members = [m for m in zf.namelist() if m.endswith(".npy")]
            keys = [m[: -len(".npy")] for m in members]
            if not members:
                raise MediaError(path, "the .npz archive holds no arrays")
            if len(members) == 1:
                member = members[0]
            elif name in keys:
                member = members[keys.index(name)]
            else:
                shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
                raise MediaError(
                    path, f"the .npz archive holds {len(keys)} arrays ({shown}) and none is named '{name}'"
                )
            with zf.open(member) as fp:
                return _read_npy(path, fp, max_elements, what, member=member)
    except MediaError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise MediaError(path, f"corrupt .npz archive ({exc})") from None


def _read_npy(path: str, fp: BinaryIO, max_elements: int, what: str, member: str | None = None) -> np.ndarray:
    where = f" (array '{member[:-4]}')" if member else ""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise MediaError(path, f"unsupported .npy format version {version[0]}.{version[1]}{where}")
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(path, f"corrupt .npy header{where} ({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise MediaError(
            path, f"holds Python objects (a pickled array){where}; only plain numeric arrays are read, never unpickled"
        )
    if dtype.names is not None or dtype.subdtype is not None:
        raise MediaError(path, f"is a structured array{where} (dtype {dtype}); expected a plain numeric array")
    if dtype.kind not in "iuf":
        raise MediaError(path, f"holds {dtype} values{where}; expected a numeric {what} array")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise MediaError(path, f"corrupt .npy header{where} (impossible shape {shape})")
    count = math.prod(shape)
    if count > max_elements or any(n > max_elements for n in shape):
        raise MediaError(
            path, f"array is too large{where} (shape {shape}, {count:,} values; the limit is {max_elements:,})"
        )
    try:
        data = fp.read(count * dtype.itemsize)
    except (EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise MediaError(path, f"corrupt or truncated .npy data{where} ({exc})") from None
    if len(data) != count * dtype.itemsize:
        raise MediaError(
            path, f"truncated .npy data{where} ({len(data):,} of {count * dtype.itemsize:,} bytes present)"
        )
    try:
        array = np.frombuffer(data, dtype=dtype, count=count)
        array = array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
        return array.astype(array.dtype.newbyteorder("="), copy=True)  # writable, native byte order
    except ValueError as exc:
        raise MediaError(path, f"corrupt .npy data{where} ({exc})") from None
