"""Training throughput of ``bindsearch bind``: pairs/s of one training step (forward, symmetric InfoNCE,
backward, AdamW) per input kind, tower size and precision.

Times the step alone on ready inputs (random tensors of each input kind's shape, random unit "image"
vectors of ImageBind-Huge's 1024 dims) after a warm-up step, rounds alternating between the
precisions, the best round of each counting (other load on a shared machine only ever slows a round
down). Each precision trains its own copy of the same initial weights.

    python benchmarks/bind_throughput.py                       # base towers, fp32 and this machine's precision
    python benchmarks/bind_throughput.py --sizes small --batch 64 --device cuda

Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from common import machine

from bindsearch.bind.objective import info_nce
from bindsearch.bind.trainer import autocast_for
from bindsearch.models.imagebind.bound_tower import NewTowerArch, build_new_tower, embed_items
from bindsearch.spaces.precision import default_precision

# Per-item input shapes (audio keeps its 3 clips of 2 s); the time series is the IMU design's 6 x 2000.
SHAPES = {"timeseries": (1, 6, 2000), "image1": (1, 1, 224, 224), "audio": (3, 1, 128, 204)}
DIM = 1024


def step(tower, optimiser, rows, counts, images, precision: str) -> None:
    with autocast_for(rows.device, precision):
        x = embed_items(tower, rows, counts)
    loss = info_nce(x, images, torch.tensor(14.0, device=rows.device))
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="timeseries,image1,audio")
    parser.add_argument("--sizes", default="base")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precisions", default=None, help="default: fp32 and this machine's")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps timed per round")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    precisions = (args.precisions or ",".join(dict.fromkeys(["fp32", default_precision(args.device)]))).split(",")
    for size in args.sizes.split(","):
        for kind in args.kinds.split(","):
            clips, *item = SHAPES[kind]
            data = {"channels": item[0], "steps": item[1]} if kind == "timeseries" else {}
            torch.manual_seed(0)
            base = build_new_tower(kind, NewTowerArch.sized(kind, size, DIM, **data)).to(args.device).train()
            towers = {p: copy.deepcopy(base) for p in precisions}
            optimisers = {p: torch.optim.AdamW(towers[p].parameters(), lr=1e-4) for p in precisions}
            rows = torch.randn(args.batch * clips, *item, device=args.device)
            counts = [clips] * args.batch if clips > 1 else None
            images = torch.nn.functional.normalize(torch.randn(args.batch, DIM, device=args.device), dim=-1)
            best = {p: float("inf") for p in precisions}
            for p in precisions:  # warm-up
                step(towers[p], optimisers[p], rows, counts, images, p)
            for _ in range(args.rounds):
                for p in precisions:
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    started = time.perf_counter()
                    for _ in range(args.steps):
                        step(towers[p], optimisers[p], rows, counts, images, p)
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    best[p] = min(best[p], (time.perf_counter() - started) / args.steps)
            params = sum(t.numel() for t in base.parameters())
            for p in precisions:
                print(json.dumps({"benchmark": "bind_throughput", "input": kind, "size": size, "params": params,
                                  "batch": args.batch, "precision": p, "device": args.device,
                                  "pairs_per_s": round(args.batch / best[p], 2),
                                  "speedup_vs_fp32": round(best["fp32"] / best[p], 3) if "fp32" in best else None,
                                  "threads": torch.get_num_threads(), "machine": machine()}), flush=True)


if __name__ == "__main__":
    main()
