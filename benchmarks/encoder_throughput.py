"""Encoder throughput per modality: items/s at batch sizes 1 and 32, fused vs plain attention.

Times the model alone on ready inputs (random tensors of each modality's
shape), after a warm-up call. fp32 on CPU; on a GPU also bf16, with the cosine
of the bf16 output against fp32. Prints one JSON object per measurement:

    python benchmarks/encoder_throughput.py --config mid
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import CONFIGS, machine

from bindsearch.models.imagebind import ImageBindModel

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


def make_input(kind: str, batch: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "text":
        x = torch.zeros((batch, 77), dtype=torch.int64)
        x[:, 0], x[:, 1:12] = 49406, torch.randint(1, 49000, (batch, 11), generator=g)
        x[:, 12] = 49407
        return x.to(device)
    return torch.randn((batch, *SHAPES[kind]), generator=g).to(device)


def time_calls(model: ImageBindModel, kind: str, x: torch.Tensor, min_seconds: float) -> tuple[float, torch.Tensor]:
    """Seconds per call (median-free: total over as many calls as fit in ``min_seconds``, at least 2)."""
    out = model.embed(kind, x)  # warm-up
    sync(x.device)
    calls, started = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - started < min_seconds:
        model.embed(kind, x)
        calls += 1
    sync(x.device)
    return (time.perf_counter() - started) / calls, out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    parser.add_argument("--kinds", default=",".join(SHAPES))
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtypes = ["fp32", "bf16"] if device == "cuda" else ["fp32"]
    where = machine()
    torch.manual_seed(0)
    model = ImageBindModel(CONFIGS[args.config])
    for kind in args.kinds.split(","):
        model.tower(kind)
    reference = {}
    for dtype in dtypes:
        for attention in ("sdpa", "plain"):
            model.set_attention(attention)
            model.to(device=device, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
            for name in model.built_modalities:  # scaling stays in fp32, as when loading a checkpoint
                model.tower(name).postprocessor.float()
            for kind in args.kinds.split(","):
                for batch in (int(b) for b in args.batch_sizes.split(",")):
                    x = make_input(kind, batch, device)
                    with torch.inference_mode():
                        seconds, out = time_calls(model, kind, x, args.min_seconds)
                    row = {
                        "benchmark": "encoder_throughput", "config": args.config, "kind": kind,
                        "batch": batch, "attention": attention, "dtype": dtype, "device": device,
                        "machine": where, "threads": torch.get_num_threads(),
                        "items_per_s": round(batch / seconds, 3), "ms_per_batch": round(seconds * 1000, 2),
                    }
                    key = (kind, batch)
                    if dtype == "fp32" and attention == "sdpa":
                        reference[key] = out.float()
                    else:
                        row["cosine_vs_fp32_sdpa"] = round(float(
                            torch.nn.functional.cosine_similarity(out.float(), reference[key]).min()), 6)
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
