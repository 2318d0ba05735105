"""Opening a checkpoint file as tensors only, with refusals a user can read in one line.

``torch.load(weights_only=True)`` already refuses a pickle that would build
anything but tensors and plain containers, so no code from the file runs.
What it says when it refuses is several paragraphs that even suggest the
unsafe ``weights_only=False``, and a file that is a bare pickle rather than a
``torch.save`` archive first prints a warning about its pickle protocol. This
module keeps the refusal and says it in one line.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any

import torch

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format since PyTorch 1.6 is a zip archive
_REFUSED = "Weights only load failed"  # how torch's weights-only unpickler starts a refusal
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def is_zip_checkpoint(path: str) -> bool:
    """Whether ``path`` is a zip-format ``torch.save`` file (the only kind that can be memory-mapped)."""
    with open(path, "rb") as f:
        return f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC


def load_tensors_only(path: str | os.PathLike[str], mmap: bool = True) -> Any:
    """``torch.load`` of ``path`` on the CPU with weights only, memory-mapped when the format allows.

    Raises ValueError with a one-line message: for a file whose pickle would
    run code, that it is not a plain state_dict and was not loaded; for
    anything else that cannot be read, the reason.
    """
    path = os.fspath(path)
    try:
        zipped = is_zip_checkpoint(path)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        with warnings.catch_warnings():
            # The weights-only unpickler warns about pickle protocols it may not know; a file it cannot
            # read is refused below anyway, so the warning only adds lines before that one line.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except Exception as exc:  # torch raises many types for files that are not checkpoints at all
        raise ValueError(load_error_message(path, exc)) from None


def load_error_message(path: str, exc: BaseException) -> str:
    """One line on why ``torch.load(path, weights_only=True)`` raised ``exc``."""
    called = code_in_pickle(exc)
    if called:
        return f"{path} is not a plain state_dict and was not loaded: its pickle would run code ({called})"
    return f"cannot read {path} as a PyTorch state_dict ({load_failure(exc)})"


def code_in_pickle(exc: BaseException) -> str | None:
    """The callable a refused pickle would have run (``posix.system``...), or None if ``exc`` is no such refusal."""
    if isinstance(exc, pickle.UnpicklingError) and str(exc).startswith(_REFUSED):
        found = _GLOBAL.search(str(exc))
        return found.group(1) if found else None
    return None


def load_failure(exc: BaseException) -> str:
    """Why a checkpoint could not be loaded, in a few words."""
    if isinstance(exc, pickle.UnpicklingError) and str(exc).startswith(_REFUSED):
        # Opcodes the weights-only unpickler does not take: text, a bare pickle, any other file.
        return "not a torch.save file of tensors"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
