"""Multipart uploads read while they stream in, with the size cap enforced on file parts as they arrive.

Starlette's form parser limits only the non-file fields; a file part would be spooled whole before any
check. Here every file part is written to a temporary folder as it arrives, and the request is refused
(413) the moment the file bytes pass the cap, so an oversized upload never sits in memory or on disk.
The caller removes the folder (``UploadedForm.cleanup``), whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from .errors import HTTPError, TooLarge

MAX_FIELD_BYTES = 256 * 1024  # all non-file fields together: text, weights, labels, filters
MAX_PARTS = 64
_SUFFIX = re.compile(r"(?:\.[A-Za-z0-9]{1,12}){1,2}$")  # "scan.depth.png" keeps ".depth.png"


@dataclass
class UploadedFile:
    """A file part: the name the client gave it (for messages; never a path on this machine), and where it
    lies now, keeping the name's extension so that its modality can be told."""

    filename: str
    path: Path
    content_type: str
    size: int = 0


@dataclass
class UploadedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    folder: Path | None = None
    order: list[tuple[str, int]] = field(default_factory=list)  # (field name or "file", index) as sent

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class _Parts:
    """The parser's callbacks: one part at a time into a field buffer or an open temporary file."""

    def __init__(self, form: UploadedForm, max_file_bytes: int) -> None:
        self.form = form
        self.max_file_bytes = max_file_bytes
        self.file_bytes = 0
        self.field_bytes = 0
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.buffer: bytearray | None = None
        self.handle = None
        self.parts = 0

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
            "on_header_field": self.header_field_data, "on_header_value": self.header_value_data,
            "on_header_end": self.header_end, "on_headers_finished": self.headers_finished,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise HTTPError(f"an upload may have at most {MAX_PARTS} parts")
        self.headers = {}

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            self.buffer = bytearray()
            return
        shown = os.path.basename(filename.decode("utf-8", "replace").replace("\\", "/")) or "upload"
        suffix = _SUFFIX.search(shown)
        if self.form.folder is None:
            self.form.folder = Path(tempfile.mkdtemp(prefix="bindsearch-upload-"))
        index = len(self.form.files)
        # The client's name never becomes a path here: only its extension is kept.
        path = self.form.folder / f"upload-{index}{suffix.group(0).lower() if suffix else ''}"
        content_type = self.headers.get(b"content-type", b"application/octet-stream").decode("latin-1")
        self.form.files.append(UploadedFile(shown, path, content_type))
        self.form.order.append(("file", index))
        self.handle = open(path, "wb")  # noqa: SIM115 (closed at the part's end, or by close())

    def part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self.handle is not None:
            self.file_bytes += n
            if self.file_bytes > self.max_file_bytes:
                raise TooLarge(f"the upload is larger than this server's cap of {_mib(self.max_file_bytes)}")
            self.handle.write(data[start:end])
            self.form.files[-1].size += n
        elif self.buffer is not None:
            self.field_bytes += n
            if self.field_bytes > MAX_FIELD_BYTES:
                raise TooLarge(f"the upload's form fields are larger than {_mib(MAX_FIELD_BYTES)}")
            self.buffer += data[start:end]

    def part_end(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        elif self.buffer is not None:
            values = self.form.fields.setdefault(self.name, [])
            self.form.order.append((self.name, len(values)))
            values.append(self.buffer.decode("utf-8", "replace"))
            self.buffer = None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


async def read_upload(request: Request, max_file_bytes: int) -> UploadedForm:
    """The form of a multipart request, its files in a temporary folder; HTTPError (400) for a body that is
    not multipart, TooLarge (413) past the cap. On any error the folder is already removed."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPError("send the files as multipart/form-data")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_file_bytes + MAX_FIELD_BYTES + 65536:
        raise TooLarge(f"the upload is larger than this server's cap of {_mib(max_file_bytes)}")
    form = UploadedForm()
    parts = _Parts(form, max_file_bytes)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except HTTPError:
        parts.close()
        form.cleanup()
        raise
    except ClientDisconnect:
        parts.close()
        form.cleanup()
        raise HTTPError("the upload was cut short") from None
    except Exception as exc:  # the parser's own errors: a body that is not the multipart it claims
        parts.close()
        form.cleanup()
        raise HTTPError(f"the upload is not well-formed multipart data ({exc})") from None
    parts.close()
    return form


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"
