"""Keeping a library's vectors usable: what may be stored, and finding what should not have been."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..vectors import is_usable

# The reason a stored item gets when its vector (or one of its windows') is found unusable.
UNUSABLE_STORED = "its stored embedding was not finite (NaN or infinite): index the file again once it is fixed"


def unusable_problem(vector: np.ndarray, windows: Sequence[tuple[float, float, np.ndarray]] | None) -> str | None:
    """Why an item's vector or window vectors cannot be stored, or None when they can."""
    if not is_usable(vector):
        return "the model gave no usable embedding (not finite, or all zero)"
    if windows and not all(is_usable(w[2]) for w in windows):
        return "the model gave no usable embedding for some of the file's time windows"
    return None
