"""Where the clips of a signal start: the spacing the ImageBind audio and video recipes share.

``num_clips`` clips of ``clip_seconds`` each are spread evenly: clip i starts
at i * m / num_clips with m = max(duration - clip_seconds, 0). (The spacing
divides by num_clips, not num_clips - 1, so the last clip never reaches the
end of a long signal.) Durations are floats in the reference and the starts
are exact fractions of them; both are kept here so that conversions to
sample or frame indices land where the reference's do.
"""

from __future__ import annotations

from fractions import Fraction


def clip_starts(duration: float, clip_seconds: float, num_clips: int) -> list[Fraction]:
    """Start times in seconds, as exact fractions, of ``num_clips`` clips over ``duration`` seconds."""
    if num_clips <= 0:
        raise ValueError(f"num_clips must be positive, got {num_clips}")
    if clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
    if not duration >= 0:  # also refuses NaN
        raise ValueError(f"duration must be a non-negative number, got {duration}")
    # The float subtraction is the reference's; Fraction then keeps the division exact.
    spread = Fraction(max(float(duration) - float(clip_seconds), 0.0))
    return [spread * i / num_clips for i in range(num_clips)]
