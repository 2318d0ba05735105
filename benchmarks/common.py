"""What the benchmarks share: the ImageBind architectures they run on, and a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = {
    "out_embed_dim": 32,
    **{f"{m}_embed_dim": 64 if m == "vision" else 48 if m in ("text", "audio") else 32
       for m in ("vision", "text", "audio", "depth", "thermal", "imu")},
    **{f"{m}_num_blocks": 2 for m in ("vision", "text", "audio", "depth", "thermal", "imu")},
    **{f"{m}_num_heads": 4 for m in ("vision", "text", "audio", "depth", "thermal", "imu")},
}

# Compute-bound on a CPU yet quick enough to time every modality in a few minutes on 2 cores.
MID = {
    "out_embed_dim": 512,
    "vision_embed_dim": 384, "vision_num_blocks": 6, "vision_num_heads": 6,
    "text_embed_dim": 384, "text_num_blocks": 6, "text_num_heads": 6,
    "audio_embed_dim": 384, "audio_num_blocks": 6, "audio_num_heads": 6,
    "depth_embed_dim": 384, "depth_num_blocks": 6, "depth_num_heads": 6,
    "thermal_embed_dim": 384, "thermal_num_blocks": 6, "thermal_num_heads": 6,
    "imu_embed_dim": 256, "imu_num_blocks": 4, "imu_num_heads": 4,
}  # fmt: skip

HUGE: dict = {}  # the constructor's defaults are the huge configuration

CONFIGS = {"tiny": TINY, "mid": MID, "huge": HUGE}


def machine() -> str:
    """CPU model and core count (and the GPU, when torch sees one), for the JSON rows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name()}"
    except ImportError:
        pass
    return text


def index_in_new_process(paths: list[Path], space_file: Path, *options: str) -> tuple[dict, float]:
    """``bindsearch index`` in a new process on a new library: its --json report and the wall time."""
    library = Path(tempfile.mkdtemp(prefix="bindsearch-bench-lib-"))
    shutil.rmtree(library)
    command = [sys.executable, "-m", "bindsearch.cli", "index", *map(str, paths), "--library", str(library),
               "--space", str(space_file), "--json", *options]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    shutil.rmtree(library)
    return json.loads(out.stdout), wall
