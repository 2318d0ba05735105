"""IMU recordings to the (clips, 6, 2000) float32 tensor of ImageBind IMU windows.

The official ImageBind release has no IMU loader; this is bindsearch's own
convention, after the encoder's training data (Ego4D IMU: 6 channels at
200 Hz, 10-second windows of 2000 samples).

Files: ``.npy``, ``.npz`` (a single array, or the one named ``imu``) holding
an integer or float array, and ``.csv`` text tables separated by commas,
semicolons, tabs or whitespace (detected from the lines after the first),
with or without a header row (the first line is a header when one of its
cells is not a number), blank lines and ``#`` comment lines skipped. Empty
cells, ``nan`` and infinities are missing values. With any separator but
the comma, a decimal comma (``1,5``) is read as a decimal point.

Channels, in this order: accelerometer x, y, z in m/s^2, then gyroscope x,
y, z in rad/s. Values are used as they are (no unit conversion, no
normalisation). Orientation: the channel axis is the one of length 6 (the
second if both are); failing that the one of length 7 (the second if both
are). With 7 channels the first is either a row number, counting 0, 1, 2,
... or 1, 2, 3, ... by exactly 1 (as pandas writes its index), which is
dropped, or a strictly increasing timestamp column; anything else is
refused. Arrays of more than 2 dimensions are accepted when their extra
dimensions have length 1.

Timestamps: unit ``timestamp_unit`` ("auto" by default). In "auto", the
median step d between consecutive timestamps picks it: d <= 0.1 seconds;
0.1 < d <= 100 milliseconds; 100 < d <= 1e5 microseconds; 1e5 < d <= 1e8
nanoseconds; larger steps are refused. (So rates between 10 Hz and 10 kHz are
told apart in every unit; a slower recording with second timestamps needs
``timestamp_unit: "s"``.) Without timestamps, samples are taken to be
``sample_rate_hz`` apart (default 200 Hz, the Ego4D rate).

Missing values are filled per channel by linear interpolation in time from
the nearest valid samples on each side (before the first or after the last
valid sample: that sample's value); a channel with no valid value is refused.
The signal is then resampled by linear interpolation (no low-pass filter) to
``target_rate_hz`` (200 Hz): a recording lasting D seconds (first to last
sample) gives L = floor(D * target_rate_hz) + 1 samples, sample k at time
t0 + k / target_rate_hz. When the rate already is the target, no value
changes.

Windows of 2000 samples (10 s at 200 Hz): L <= 2000: one window, padded at the
end by repeating the last (resampled) sample (a device at rest keeps measuring
gravity, so zeros would be a fake free fall). L > 2000: n = min(num_clips,
ceil(L / 2000)) windows (num_clips = 3 by default) whose starts are spread
evenly from 0 to m = L - 2000, both included: start_i = round(i * m / (n - 1)), rounding halves
up (with n = 1, the centred window, start round(m / 2)). A 35 s recording at
200 Hz (L = 7000) gives windows starting at 0, 2500 and 5000 samples (0, 12.5
and 25 s). The caller embeds each window and averages the embeddings.

Limits: at least 2 samples, at most ``MAX_SAMPLES`` rows, CSV files of at
most ``MAX_CSV_BYTES``, timestamps spanning at most 30 days, no value of
magnitude above 1e12.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MediaError
from ..regular_files import open_regular
from ..text_encoding import decode_text
from .common import os_reason
from .sensor_files import load_numeric_array, sniff_sensor_file
from .sensor_settings import TIMESTAMP_UNITS, ImuSettings

WINDOW = 2000  # samples per window: the IMU encoder's input length
CHANNELS = 6
CHANNEL_NAMES = ("accelerometer x", "accelerometer y", "accelerometer z", "gyroscope x", "gyroscope y", "gyroscope z")
MAX_SAMPLES = 20_000_000  # rows (about 28 hours at 200 Hz)
MAX_CSV_BYTES = 1 << 30
# "auto": the unit whose interpretation of the median step d puts the rate in [10 Hz, 10 kHz).
_AUTO_UNIT_LIMITS = ((0.1, "s"), (100.0, "ms"), (1e5, "us"), (1e8, "ns"))
_NEEDS = "needs 6 channels (accelerometer x, y, z and gyroscope x, y, z)"
_IMU_KINDS = {".npy": "npy", ".npz": "npz", ".csv": "csv"}
# Far beyond any sensor in any unit (400 g is 4e3 m/s^2, 4e9 in micro-units); the encoder's float32
# arithmetic overflows (NaN embedding) from about 1e19.
_MAX_ABS = 1e12
MAX_SPAN_S = 30 * 86400.0  # a timestamp column spanning longer is taken to be misread
_MAX_RESAMPLED = 1 << 50  # resampled lengths stay exact integers in float64 and int64


@dataclass(frozen=True)
class ImuSignal:
    """A decoded recording: ``values`` (T, 6) float64 (NaN = missing), ``times`` (T,) seconds from the first sample.

    ``rate_hz`` is the nominal rate: the setting, or 1 / the median timestamp step.
    """

    values: np.ndarray
    times: np.ndarray
    rate_hz: float
    timestamped: bool


# --- pure functions -------------------------------------------------------------------------------


def orient(array: np.ndarray) -> np.ndarray:
    """A 2-D array to (samples, channels): the channel axis has length 6, else 7 (axis 1 preferred).

    Leading/trailing length-1 axes beyond two are dropped. Raises ValueError
    with a user-facing reason when no axis qualifies.
    """
    a = np.asarray(array)
    while a.ndim > 2 and 1 in a.shape:
        a = np.squeeze(a, axis=a.shape.index(1))
    if a.ndim != 2:
        raise ValueError(f"{_NEEDS}; got an array of shape {np.shape(array)}, expected (samples, 6) or (6, samples)")
    rows, cols = a.shape
    for width in (CHANNELS, CHANNELS + 1):
        if cols == width:
            return a
        if rows == width:
            return a.T
    found = cols if (rows >= cols or rows == 1) else rows
    raise ValueError(f"{_NEEDS}, found {found}")


def is_row_index(column: np.ndarray) -> bool:
    """True for a column counting 0, 1, 2, ... or 1, 2, 3, ... exactly: a row number (as pandas writes), not a clock."""
    if column.size == 0 or column[0] not in (0, 1):
        return False
    return bool(np.array_equal(column, np.arange(column[0], column[0] + column.size)))


def timestamp_unit_seconds(median_step: float, unit: str = "auto") -> float:
    """Seconds per timestamp unit: ``unit``'s, or in "auto" the one the median step implies (see module docstring)."""
    if unit != "auto":
        return TIMESTAMP_UNITS[unit]
    for limit, name in _AUTO_UNIT_LIMITS:
        if median_step <= limit:
            return TIMESTAMP_UNITS[name]
    raise ValueError(
        f"timestamp steps are too large (median {median_step:g}) for seconds, milliseconds, microseconds"
        " or nanoseconds at 10 Hz or more; set timestamp_unit"
    )


def split_channels(table: np.ndarray, settings: ImuSettings | None = None) -> ImuSignal:
    """(samples, 6 or 7) values to an ImuSignal; 7 columns: the first is the timestamp column.

    Raises ValueError with a user-facing reason.
    """
    s = settings or ImuSettings()
    if table.ndim != 2 or table.shape[1] not in (CHANNELS, CHANNELS + 1):
        raise ValueError(f"{_NEEDS}, found {table.shape[-1] if table.ndim else 0}")
    n = table.shape[0]
    if n == 0:
        raise ValueError("no samples")
    if n < 2:
        raise ValueError(f"too short: {n} sample (need at least 2)")
    if table.dtype.kind == "f" and table.dtype != np.float64:
        with np.errstate(invalid="ignore"):  # signalling NaNs raise the invalid flag when cast
            table = table.astype(np.float64)
    if table.shape[1] == CHANNELS + 1 and is_row_index(table[:, 0]):
        table = table[:, 1:]
    if table.shape[1] == CHANNELS:
        values = table.astype(np.float64)
        times = np.arange(n, dtype=np.float64) / float(s.sample_rate_hz)
        return ImuSignal(values, times, float(s.sample_rate_hz), timestamped=False)
    stamps = table[:, 0]
    if stamps.dtype.kind in "iu":
        offsets = (stamps - stamps[0]).astype(np.float64)  # exact for large integer clocks
    else:
        offsets = stamps.astype(np.float64) - float(stamps[0])
    steps = np.diff(offsets)
    if not (np.isfinite(offsets).all() and (steps > 0).all()):
        raise ValueError(
            "has 7 columns but the first is not strictly increasing, so it is not a timestamp column;"
            " expected 6 channels (accelerometer x, y, z and gyroscope x, y, z), optionally after a timestamp column"
        )
    median = float(np.median(steps))
    unit = timestamp_unit_seconds(median, s.timestamp_unit)
    times = offsets * unit
    if times[-1] > MAX_SPAN_S:
        raise ValueError(
            f"timestamps span {times[-1]:.3g} s, over {MAX_SPAN_S / 86400:g} days;"
            " check the timestamp column, or set timestamp_unit"
        )
    return ImuSignal(table[:, 1:].astype(np.float64), times, 1.0 / (median * unit), timestamped=True)


def fill_missing(values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Replace non-finite values per channel by linear interpolation in time (edges: nearest valid value).

    ``values`` (T, C); raises ValueError naming the first channel with no valid value.
    """
    out = np.array(values, dtype=np.float64)
    for c in range(out.shape[1]):
        column = out[:, c]
        valid = np.isfinite(column)
        if valid.all():
            continue
        if not valid.any():
            name = CHANNEL_NAMES[c] if out.shape[1] == CHANNELS else f"channel {c + 1}"
            raise ValueError(f"{name} has no valid value (every value is missing, NaN or infinite)")
        out[:, c] = np.interp(times, times[valid], column[valid])
    return out


def resampled_length(duration_s: float, rate_hz: float) -> int:
    """Samples at ``rate_hz`` from time 0 to ``duration_s`` included: floor(duration * rate) + 1."""
    return int(math.floor(duration_s * rate_hz + 1e-9)) + 1


def window_starts(length: int, num_clips: int = 3, window: int = WINDOW) -> list[int]:
    """Starts of the windows over ``length`` samples (module docstring): [0] when it fits in one window."""
    if length <= window:
        return [0]
    n = min(num_clips, math.ceil(length / window))
    m = length - window
    if n == 1:
        return [(m + 1) // 2]
    return [(2 * i * m + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def signal_to_input(signal: ImuSignal, settings: ImuSettings | None = None) -> torch.Tensor:
    """A decoded recording to (clips, 6, 2000) float32: fill gaps, resample, pad or cut windows."""
    s = settings or ImuSettings()
    values = fill_missing(signal.values, signal.times)
    _check_channels(values)
    if values.shape[1] != CHANNELS or values.shape[0] < 2:
        raise ValueError(f"expected (samples >= 2, 6) values, got {values.shape}")
    times = signal.times
    same_grid = not signal.timestamped and float(signal.rate_hz) == float(s.target_rate_hz)
    length = values.shape[0] if same_grid else resampled_length(float(times[-1] - times[0]), float(s.target_rate_hz))
    if length > _MAX_RESAMPLED:
        raise ValueError(f"too long: {length:,} samples at {s.target_rate_hz:g} Hz")
    clips = []
    for start in window_starts(length, int(s.num_clips)):
        steps = np.arange(start, start + WINDOW)
        if same_grid:
            index = np.minimum(steps, length - 1)  # pad by repeating the last sample
            clips.append(values[index].T)
        else:
            grid = times[0] + np.minimum(steps, length - 1) / float(s.target_rate_hz)
            clips.append(np.stack([np.interp(grid, times, values[:, c]) for c in range(CHANNELS)]))
    windows = np.ascontiguousarray(np.stack(clips), dtype=np.float32)
    out = torch.from_numpy(windows)
    assert out.shape[1:] == (CHANNELS, WINDOW) and out.shape[0] >= 1, out.shape
    return out


# --- files ----------------------------------------------------------------------------------------


def parse_table(text: str) -> np.ndarray:
    """A CSV text to a float64 table (rows, columns); empty cells become NaN (NaN and inf are read as such).

    Separator: tab, ';' or ',' when it occurs the same number of times on
    each of the lines after the first (up to 5 of them), or on the only line;
    else whitespace. The first line is a header when one of its non-empty
    cells is not a number. Raises ValueError with a user-facing reason.
    """
    lines = [
        (i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ValueError("holds no data (only blank or comment lines)")
    sep = _detect_separator([line for _, line in (lines[1:6] or lines[:1])])
    first = _cells(lines[0][1], sep)
    if any(cell and _number(cell, sep) is None for cell in first):
        lines = lines[1:]
        if not lines:
            raise ValueError("has a header row but no data rows")
    if len(lines) > MAX_SAMPLES:
        raise ValueError(f"too long: {len(lines):,} rows (the limit is {MAX_SAMPLES:,})")
    fast = _fast_parse(lines, sep)
    if fast is not None:
        return fast
    rows = [_cells(line, sep) for _, line in lines]
    width = len(rows[0])
    table = np.empty((len(rows), width), dtype=np.float64)
    for (lineno, _), row in zip(lines, rows):
        if len(row) != width:
            raise ValueError(
                f"line {lineno} has {_plural(len(row), 'value')}, but line {lines[0][0]} has {_plural(width, 'value')}"
            )
    for r, ((lineno, _), row) in enumerate(zip(lines, rows)):
        for c, cell in enumerate(row):
            value = _number(cell, sep) if cell else math.nan
            if value is None:
                raise ValueError(f"non-numeric value {cell[:20]!r} at line {lineno}, column {c + 1}")
            table[r, c] = value
    return _drop_empty_trailing_columns(table, rows)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _detect_separator(sample: list[str]) -> str | None:
    for sep in ("\t", ";", ","):
        counts = {line.count(sep) for line in sample}
        if len(counts) == 1 and counts.pop() > 0:
            return sep
    for sep in ("\t", ";", ","):
        if all(sep in line for line in sample):
            return sep
    return None


def _cells(line: str, sep: str | None) -> list[str]:
    return [cell.strip().strip("\"'").strip() for cell in (line.split(sep) if sep else line.split())]


def _number(cell: str, sep: str | None) -> float | None:
    try:
        return float(cell)
    except ValueError:
        pass
    if sep != "," and cell.count(",") == 1 and "." not in cell:
        try:
            return float(cell.replace(",", "."))
        except ValueError:
            return None
    return None


def _fast_parse(lines: list[tuple[int, str]], sep: str | None) -> np.ndarray | None:
    """np.loadtxt on clean files (no empty cells, quotes or decimal commas); None to fall back to the careful path."""
    try:
        table = np.loadtxt(io.StringIO("\n".join(line for _, line in lines)), delimiter=sep, dtype=np.float64, ndmin=2)
    except (ValueError, IndexError):
        return None
    return table


def _drop_empty_trailing_columns(table: np.ndarray, rows: list[list[str]]) -> np.ndarray:
    """Drop trailing columns empty on every row (lines ending with the separator)."""
    width = table.shape[1]
    while width > 1 and all(row[width - 1] == "" for row in rows):
        width -= 1
    return table[:, :width]


def read_imu(path: str, settings: ImuSettings | None = None) -> ImuSignal:
    """Decode an IMU file (.npy/.npz/.csv) to an ImuSignal; MediaError for a bad file."""
    kind = sniff_sensor_file(path, _IMU_KINDS, "an IMU recording")
    if kind == "csv":
        table = _read_csv(path)
        where = ""
    else:
        table = load_numeric_array(path, name="imu", max_elements=MAX_SAMPLES * (CHANNELS + 1), what="IMU")
        if table.size == 0:
            raise MediaError(path, f"empty array (shape {table.shape})")
        where = f" (array shape {table.shape})"
    try:
        oriented = orient(table)
    except ValueError as exc:
        reason = str(exc)
        raise MediaError(path, reason if "shape" in reason else reason + where) from None
    try:
        signal = split_channels(oriented, settings)
        _check_channels(signal.values)
    except ValueError as exc:
        raise MediaError(path, str(exc)) from None
    return signal


def _check_channels(values: np.ndarray) -> None:
    finite = np.isfinite(values)
    for c in range(values.shape[1]):
        if not finite[:, c].any():
            raise ValueError(f"{CHANNEL_NAMES[c]} has no valid value (every value is missing, NaN or infinite)")
    if finite.any() and float(np.abs(values[finite]).max()) > _MAX_ABS:
        raise ValueError(f"holds values too large for an IMU signal (|value| up to {np.abs(values[finite]).max():.3g})")


def _read_csv(path: str) -> np.ndarray:
    try:
        size = os.path.getsize(path)
        if size > MAX_CSV_BYTES:
            raise MediaError(path, f"CSV file is too large ({size:,} bytes; the limit is {MAX_CSV_BYTES:,})")
        with open_regular(path) as f:
            raw = f.read(MAX_CSV_BYTES + 1)
    except MediaError:
        raise
    except OSError as exc:
        raise MediaError(path, os_reason(exc)) from None
    if len(raw) > MAX_CSV_BYTES:  # grew since it was measured
        raise MediaError(path, f"CSV file is too large (over {MAX_CSV_BYTES:,} bytes)")
    decoded = decode_text(raw)
    if decoded is None:
        raise MediaError(path, "content is binary, not a CSV table as the name says")
    text = decoded[0]
    try:
        return parse_table(text)
    except ValueError as exc:
        raise MediaError(path, str(exc)) from None


def load_imu(path: str, settings: ImuSettings | None = None) -> torch.Tensor:
    """An IMU file to the (clips, 6, 2000) float32 model input; MediaError for a bad file."""
    signal = read_imu(path, settings)
    try:
        return signal_to_input(signal, settings)
    except ValueError as exc:
        raise MediaError(path, str(exc)) from None
