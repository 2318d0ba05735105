"""Load time and peak memory of a text query with lazy towers, against loading the whole model.

Each scenario runs in a fresh Python process on the same checkpoint file (a
random one of the chosen architecture, written once and reused):

- text_query: an ImageBind space embeds one text, as `bindsearch query --text`
  does: only the text tower is built and read from the memory-mapped file;
- all_towers_mmap: every tower is loaded from the memory-mapped file first, then
  the same text is embedded;
- all_towers_read: the whole file is read into memory (a plain torch.load, as
  code without memory-mapping does), every tower loaded, the text embedded.

With --cold the page cache is dropped before each run (needs root), so that
the times include reading from disk.

Prints one JSON object per scenario:

    python benchmarks/tower_loading.py --config huge     # writes a 4.5 GB checkpoint once
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CONFIGS, machine

# Peak memory is the child's VmHWM: ru_maxrss would carry over the parent's peak across fork and exec.
SCENARIO = r"""
import json, sys, time
started = time.perf_counter()
import torch
from bindsearch.spaces.imagebind import ImageBindSpace
from bindsearch.models.imagebind import load_imagebind
checkpoint, config, scenario = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
space = ImageBindSpace(checkpoint, config, device="cpu")
imported = time.perf_counter()
if scenario == "all_towers_mmap":
    space._model = load_imagebind(checkpoint, config)
elif scenario == "all_towers_read":
    from bindsearch.models.imagebind import ImageBindModel
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    space._model = ImageBindModel(config)
    for tower in ("vision", "text", "audio", "depth", "thermal", "imu"):
        space._model.load_tower(tower, state, source=checkpoint)
loaded = time.perf_counter()
vector = space.embed("text", "a dog barking")
done = time.perf_counter()
print(json.dumps({
    "import_s": round(imported - started, 3),
    "load_s": round(loaded - imported, 3),
    "load_and_embed_s": round(done - imported, 3),
    "peak_rss_mb": round(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024, 1),
    "towers_built": list(space._model.built_modalities),
    "dim": int(vector.shape[0]),
}))
"""


def write_checkpoint(path: Path, config: dict) -> None:
    import torch

    from bindsearch.models.imagebind import ImageBindModel
    from bindsearch.models.imagebind.config import MODALITIES

    torch.manual_seed(0)
    model = ImageBindModel(config)
    for modality in MODALITIES:
        model.tower(modality)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="huge")
    parser.add_argument("--checkpoint-dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-bench"))
    parser.add_argument("--repeat", type=int, default=2, help="runs per scenario; the best is kept")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each run (root only)")
    args = parser.parse_args()

    config = CONFIGS[args.config]
    path = Path(args.checkpoint_dir) / f"imagebind-{args.config}.pth"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_checkpoint(path, config)
        print(json.dumps({"benchmark": "tower_loading", "wrote_checkpoint": str(path),
                          "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 1)}),
              file=sys.stderr)
    for scenario in ("text_query", "all_towers_mmap", "all_towers_read"):
        runs = []
        for _ in range(args.repeat):
            if args.cold:
                os.sync()
                Path("/proc/sys/vm/drop_caches").write_text("3\n")
            out = subprocess.run([sys.executable, "-c", SCENARIO, str(path), json.dumps(config), scenario],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout))
        best = min(runs, key=lambda r: r["load_and_embed_s"])
        print(json.dumps({"benchmark": "tower_loading", "config": args.config, "scenario": scenario,
                          "checkpoint_gb": round(path.stat().st_size / 2**30, 2), "machine": machine(),
                          "page_cache": "cold (dropped before each run)" if args.cold else "warm",
                          **best}), flush=True)


if __name__ == "__main__":
    main()
