"""``bindsearch index --ray`` on a Ray started on this machine against the local pipeline, on the same folder.

1. Writes (once) the mixed folder of photos and sound files of ``index_throughput`` and a space file of
   a compute-bound ImageBind architecture with random weights (``--config``, "mid" by default), so
   that embedding dominates as it does with real weights.
2. Indexes it with ``bindsearch index`` in a new process on a new library, once with the local
   pipeline (its worker processes read and embed) and once with ``--ray`` (a Ray started for the run,
   its actors read and embed), alternating which goes first, for ``--rounds`` rounds. The best round
   of each counts: other load on the machine only ever makes a run slower.

Each run's own report times it (scan, read, embed, store, commit). Ray's start-up is left out of
Ray's files/s and reported: ``ray_startup_seconds`` (``ray.init``) and ``ray_actors_seconds`` (from
asking for the actors until the first was up: its process started, the space rebuilt; encoders load
with the first batch, as in a local worker). The ratio is Ray's files/s over the local pipeline's,
``ray.init`` left out (``ray_over_local``), and the actors' start left out too (``..._without_actors``).
The local pipeline's figure keeps its own workers' start: it has no start-up to leave out.

    python benchmarks/scale_out_ray.py --images 192 --sounds 64 --rounds 4

``measure_ray`` is the part ``scale_out.py`` calls; run alone, this prints its JSON rows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import CONFIGS, index_in_new_process, machine
from index_throughput import write_folder


def measure_ray(folder: Path, space_file: Path, files: int, *, rounds: int = 3, batch: int = 16,
                common: dict | None = None) -> list[dict]:
    """Rows (JSON-able dicts): one per round, then the best local run, the best Ray run and their ratio."""
    common = {"benchmark": "scale_out_ray", "files": files, "batch": batch, "machine": machine(), **(common or {})}
    options = ["--batch-size", str(batch)]
    rows, local, ray = [], [], []
    for n in range(rounds):
        sides = ["local", "ray"] if n % 2 == 0 else ["ray", "local"]
        for side in sides:
            report, wall = index_in_new_process([folder], space_file, *options, *(["--ray"] if side == "ray" else []))
            assert report["added"] == files and report["failed"] == 0, report
            (local if side == "local" else ray).append((report, wall))
        l_report, l_wall = local[-1]
        r_report, r_wall = ray[-1]
        rows.append({**common, "measure": "round", "round": n + 1, "first": sides[0],
                     "local_files_per_s": _rate(files, l_report["seconds"]),
                     "ray_files_per_s": _rate(files, _without_init(r_report)),
                     "ray_startup_seconds": r_report["ray_startup_seconds"],
                     "ray_actors_seconds": r_report["ray_actors_seconds"],
                     "local_seconds": round(l_report["seconds"], 2), "ray_seconds": round(r_report["seconds"], 2),
                     "local_wall_seconds": round(l_wall, 2), "ray_wall_seconds": round(r_wall, 2)})
    l_report, l_wall = min(local, key=lambda run: run[0]["seconds"])
    r_report, r_wall = min(ray, key=lambda run: _without_init(run[0]))
    l_rate, r_rate = files / l_report["seconds"], files / _without_init(r_report)
    r_rate_up = files / (_without_init(r_report) - r_report["ray_actors_seconds"])
    rows.append({**common, "measure": "local", "files_per_s": round(l_rate, 3),
                 "seconds": round(l_report["seconds"], 2), "wall_seconds": round(l_wall, 2),
                 "precision": l_report["precision"], "rates": l_report["rates"]})
    rows.append({**common, "measure": "ray", "files_per_s": round(r_rate, 3),
                 "files_per_s_without_actors": round(r_rate_up, 3), "seconds": round(r_report["seconds"], 2),
                 "wall_seconds": round(r_wall, 2), "ray_startup_seconds": r_report["ray_startup_seconds"],
                 "ray_actors_seconds": r_report["ray_actors_seconds"], "precision": r_report["precision"],
                 "rates": r_report["rates"]})
    rows.append({**common, "measure": "ratio", "rounds": rounds, "ray_over_local": round(r_rate / l_rate, 3),
                 "ray_over_local_without_actors": round(r_rate_up / l_rate, 3)})
    return rows


def measure_on_mixed_folder(root: Path, config: str, images: int, sounds: int, *, rounds: int, batch: int,
                            common: dict) -> list[dict]:
    """``measure_ray`` on ``index_throughput``'s mixed folder (written once under ``root``) with a random
    ImageBind space of architecture ``config``."""
    folder = root / f"mixed-{images}-{sounds}"
    if not folder.exists():
        write_folder(folder, images, sounds)
    space_file = root / f"imagebind-{config}-random.json"
    space_file.write_text(json.dumps({"model": "imagebind", "checkpoint": None, "config": CONFIGS[config]}))
    return measure_ray(folder, space_file, images + sounds, rounds=rounds, batch=batch, common=common)


def _without_init(report: dict) -> float:
    return report["seconds"] - report["ray_startup_seconds"]


def _rate(files: int, seconds: float) -> float:
    return round(files / seconds, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--sounds", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides; best counts")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-bench"))
    args = parser.parse_args()

    common = {"config": args.config, "images": args.images, "sounds": args.sounds}
    for row in measure_on_mixed_folder(Path(args.dir), args.config, args.images, args.sounds, rounds=args.rounds,
                                       batch=args.batch_size, common=common):
        print(json.dumps(row), flush=True)

if __name__ == "__main__":
    main()
