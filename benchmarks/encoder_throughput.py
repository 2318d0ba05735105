"""Encoder throughput per modality and precision: items/s, the speed-up over fp32 and the cosine to fp32.

Times the towers alone on ready inputs (random tensors of each modality's shape) after a warm-up
call: each precision's copy of the same random weights, rounds alternating between them, the best
round of each counting (other load on a shared machine only ever slows a round down).
``--precisions`` defaults to fp32 and the precision bindsearch picks on this machine.

``--reference PATH`` times the official ImageBind implementation beside them, in fp32 with the same
weights: PATH is a checkout of it (the folder holding its ``imagebind`` package), imported from
there at run time; its model code needs ``timm``, ``einops``, ``ftfy``, ``regex`` and ``iopath``
importable (``--reference-deps DIR`` adds a folder holding them to the path).

Prints one JSON object per measurement:

    python benchmarks/encoder_throughput.py --config mid --batch-sizes 1,16
    python benchmarks/encoder_throughput.py --config huge --kinds image,audio,text --batch-sizes 4
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from common import CONFIGS, machine

from bindsearch.models.imagebind import ImageBindConfig, ImageBindModel
from bindsearch.spaces.precision import default_precision

# Input shapes per kind (batch axis first); audio and video carry their clip axis.
SHAPES = {
    "image": (3, 224, 224),
    "text": (77,),
    "audio": (3, 1, 128, 204),
    "video": (15, 3, 2, 224, 224),
    "depth": (1, 224, 224),
    "thermal": (1, 224, 224),
    "imu": (6, 2000),
}
OFFICIAL_KEY = {"image": "vision", "video": "vision", "text": "text", "audio": "audio", "depth": "depth",
                "thermal": "thermal", "imu": "imu"}


def make_input(kind: str, batch: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "text":
        x = torch.zeros((batch, 77), dtype=torch.int64)
        x[:, 0], x[:, 1:12] = 49406, torch.randint(1, 49000, (batch, 11), generator=g)
        x[:, 12] = 49407
        return x.to(device)
    return torch.randn((batch, *SHAPES[kind]), generator=g).to(device)


def seconds_per_call(call: Callable[[], torch.Tensor], device: str, min_seconds: float) -> tuple[float, torch.Tensor]:
    """Seconds per call: the total over as many calls as fit in ``min_seconds`` (at least 2), after a warm-up."""
    out = call()
    sync(device)
    calls, started = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - started < min_seconds:
        call()
        calls += 1
    sync(device)
    return (time.perf_counter() - started) / calls, out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def official_model(checkout: Path, config: ImageBindConfig, ours: ImageBindModel, device: str) -> torch.nn.Module:
    """The official model built from ``checkout`` with ``config``, holding our towers' weights (fp32, eval)."""
    # Only its model code is needed: a bare package object skips the package's __init__ (its data loaders).
    package = types.ModuleType("imagebind")
    package.__path__ = [str(checkout / "imagebind")]
    sys.modules["imagebind"] = package
    from imagebind.models.imagebind_model import ImageBindModel as Official

    model = Official(**config.to_dict())
    state = {k: v.float() for k, v in ours.state_dict().items()}
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    return model.eval().requires_grad_(False).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    parser.add_argument("--kinds", default=",".join(SHAPES))
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--precisions", default=None, help="comma-separated (default: fp32 and this machine's)")
    parser.add_argument("--attention", choices=["sdpa", "plain"], default="sdpa")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reference", type=Path, help="a checkout of the official ImageBind, timed beside")
    parser.add_argument("--reference-deps", type=Path, help="a folder holding the official code's dependencies")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precisions = (args.precisions or f"fp32,{default_precision(device)}").split(",")
    precisions = list(dict.fromkeys(["fp32", *precisions]))  # fp32 first: the others are compared with it
    where = machine()
    kinds = args.kinds.split(",")
    config = ImageBindConfig.from_dict(CONFIGS[args.config])
    torch.manual_seed(0)
    ours = ImageBindModel(config, attention=args.attention)
    for kind in kinds:
        ours.tower(kind).to(device)
    models = {"fp32": ours}
    for precision in precisions[1:]:
        models[precision] = copy.deepcopy(ours)
        models[precision].set_precision(precision)
    official = None
    if args.reference:
        if args.reference_deps:
            sys.path.insert(0, str(args.reference_deps))
        official = official_model(args.reference, config, ours, device)

    for kind in kinds:
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            x = make_input(kind, batch, device)
            sides: dict[str, Callable[[], torch.Tensor]] = {
                p: (lambda m=m, kind=kind, x=x: m.embed(kind, x)) for p, m in models.items()}
            if official is not None:
                key = OFFICIAL_KEY[kind]
                sides["official-fp32"] = lambda key=key, x=x: official({key: x})[key]
            best, outputs = dict.fromkeys(sides, float("inf")), {}
            for _ in range(args.rounds):
                for name, call in sides.items():
                    with torch.inference_mode():
                        seconds, outputs[name] = seconds_per_call(call, device, args.min_seconds)
                    best[name] = min(best[name], seconds)
            reference = outputs["fp32"].float()
            for name, seconds in best.items():
                row = {
                    "benchmark": "encoder_throughput", "config": args.config, "kind": kind, "batch": batch,
                    "side": "official" if name.startswith("official") else "bindsearch",
                    "precision": name.removeprefix("official-"), "attention": args.attention, "device": device,
                    "machine": where, "threads": torch.get_num_threads(),
                    "items_per_s": round(batch / seconds, 3), "ms_per_batch": round(seconds * 1000, 2),
                    "speedup_vs_fp32": round(best["fp32"] / seconds, 3),
                    "cosine_vs_fp32": round(float(torch.nn.functional.cosine_similarity(
                        outputs[name].float(), reference).min()), 7),
                }
                if official is not None:
                    row["speedup_vs_official_fp32"] = round(best["official-fp32"] / seconds, 3)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
