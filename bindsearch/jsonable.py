"""The API's dataclasses as plain JSON values: what ``--json`` prints and what the HTTP server sends."""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from .paths import display_path


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, enums and paths to plain JSON values (undecodable file-name bytes shown as U+FFFD;
    a number that is not finite as null, which strict JSON has in place of NaN)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, str):
        return display_path(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
