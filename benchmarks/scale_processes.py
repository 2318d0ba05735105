"""Starting the scale benchmark's measuring processes, and turning a failed one into a skipped row."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
PEERS_PYTHON = PEERS / ".venv" / "bin" / "python"


class MeasureFailed(Exception):
    """A measuring process that did not give its JSON; the message is the reason, one line."""


def run_json_lines(command: list[str], timeout: float | None = None) -> list[dict]:
    """Run ``command`` and parse each line of its stdout as a JSON object. ``started_at`` (the wall clock
    just before it starts) replaces a ``{started_at}`` argument, so the process can time its own first
    result from its start."""
    started_at = time.time()
    command = [str(started_at) if part == "{started_at}" else str(part) for part in command]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MeasureFailed(f"{Path(command[1]).name} {command[2]} ran past {timeout:.0f} s") from None
    except OSError as exc:
        raise MeasureFailed(f"cannot start {command[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise MeasureFailed(f"{Path(command[1]).name} {command[2]} failed: {last_line(done.stderr)}")
    try:
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    except json.JSONDecodeError:
        raise MeasureFailed(f"{Path(command[1]).name} {command[2]} printed no JSON: {last_line(done.stdout)}") from None


def last_line(text: str) -> str:
    """The last non-empty line of a process's output: where Python puts the error of a traceback."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def bindsearch_child(mode: str, *options: object) -> list[str]:
    """The command of a bindsearch measuring process, in this script's Python."""
    return [sys.executable, str(HERE / "scale_bindsearch_child.py"), mode, *map(str, options)]


def peer_child(script: str, mode: str, *options: object) -> list[str]:
    """The command of a peer's measuring process, in the peers' own virtual environment."""
    return [str(PEERS_PYTHON), str(PEERS / script), mode, *map(str, options)]


def peers_missing() -> str | None:
    """Why the peers cannot run (their virtual environment is not there), or None."""
    if not PEERS_PYTHON.exists():
        return f"{PEERS_PYTHON.parent.parent} is missing: run benchmarks/peers/setup.sh"
    return None


def measured(system: str, measure: str, fn: Callable[[], list[dict]]) -> list[dict]:
    """Rows of one measurement, each with ``system`` and ``measure``; one skipped row with the reason if the
    capability is missing or its process fails, so that the next measurement still runs."""
    try:
        out = fn()
    except MeasureFailed as exc:
        return [{"system": system, "measure": measure, "skipped": str(exc)}]
    return [{"system": system, "measure": measure, **row} for row in out]
