"""End-to-end indexing throughput against the encoders alone, on a mixed folder of images and audio.

1. Writes (once) a folder of photos and sound files (from examples/media,
   re-encoded into distinct files) and a space file of a compute-bound
   ImageBind architecture with random weights (same arithmetic as real ones).
2. Encoder only: decodes every file first (not timed), then times embedding
   them in batches, per modality: the ceiling.
3. End to end: `bindsearch index` in a new process on a new library, timed by
   the run's own report (scan, decode in workers, embed, store, commit,
   model load included) and by the wall clock (process start included).

Steps 2 and 3 alternate for ``--rounds`` rounds and the best round of each
counts: other load on the machine (a shared host's neighbours) only ever makes
a run slower, and alternating exposes both measurements to the same spells of
it. Every round's figures are printed too.

Both measurements embed in the precision bindsearch picks on the machine (bf16 where it has native
bf16). ``--checkpoint-file`` writes a random checkpoint of the architecture once and indexes with it,
memory-mapped as a real one is (for the huge architecture: random weights built in each worker would
take longer than the indexing).

Prints one JSON object per measurement and the ratio:

    python benchmarks/index_throughput.py --images 192 --sounds 64
    python benchmarks/index_throughput.py --config huge --checkpoint-file --images 96 --sounds 32 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CONFIGS, index_in_new_process, machine
from PIL import Image

import bindsearch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "media"


def write_folder(root: Path, images: int, sounds: int) -> None:
    import soundfile

    photos = sorted(EXAMPLES.glob("*.jpg"))
    rng = np.random.default_rng(0)
    (root / "photos").mkdir(parents=True)
    for i in range(images):
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        w, h = img.size
        box = (int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4)), w - int(rng.integers(0, w // 4)), h)
        img.crop(box).resize((640, 480)).save(root / "photos" / f"{i:05d}.jpg", quality=88)
    (root / "sounds").mkdir()
    speech, rate = soundfile.read(EXAMPLES / "sounds" / "speech.wav", dtype="float32")
    for i in range(sounds):
        gain = 0.5 + 0.5 * rng.random()
        clip = np.tile(speech, 2)[: int(rate * (4 + i % 5))] * gain
        clip = clip + 0.01 * rng.standard_normal(clip.shape).astype(np.float32)
        soundfile.write(root / "sounds" / f"{i:05d}.wav", clip, rate)


def decoded_inputs(space: bindsearch.Space, folder: Path) -> dict[str, list]:
    """Every file of the folder as model input, per modality (the encoders-only runs start from these)."""
    by_modality = {"image": sorted((folder / "photos").iterdir()), "audio": sorted((folder / "sounds").iterdir())}
    return {modality: [space.encoder(modality).prepare(p) for p in paths] for modality, paths in by_modality.items()}


def encoder_only(space: bindsearch.Space, inputs: dict[str, list], batch: int) -> dict[str, float]:
    rates = {}
    total_files, total_seconds = 0, 0.0
    for modality, prepared in inputs.items():
        encoder = space.encoder(modality)
        encoder.embed_batch(prepared[:batch])  # load the tower and warm up
        started = time.perf_counter()
        for i in range(0, len(prepared), batch):
            encoder.embed_batch(prepared[i : i + batch])
        seconds = time.perf_counter() - started
        rates[modality] = len(prepared) / seconds
        total_files += len(prepared)
        total_seconds += seconds
    rates["all"] = total_files / total_seconds
    return rates


def end_to_end(space_file: Path, folder: Path, batch: int, workers: int | None) -> tuple[dict, float]:
    options = ["--batch-size", str(batch)] + (["--workers", str(workers)] if workers is not None else [])
    return index_in_new_process([folder], space_file, *options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--sounds", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: bindsearch's)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both measurements; best counts")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-bench"))
    parser.add_argument("--checkpoint-file", action="store_true", help="random weights saved as a checkpoint file")
    args = parser.parse_args()

    root = Path(args.dir)
    folder = root / f"mixed-{args.images}-{args.sounds}"
    if not folder.exists():
        write_folder(folder, args.images, args.sounds)
    space_file = root / f"imagebind-{args.config}-random.json"
    checkpoint = None
    if args.checkpoint_file:
        from tower_loading import write_checkpoint

        checkpoint = root / f"imagebind-{args.config}.pth"
        if not checkpoint.exists():
            write_checkpoint(checkpoint, CONFIGS[args.config])
        checkpoint = str(checkpoint)
    space_file.write_text(json.dumps({"model": "imagebind", "checkpoint": checkpoint, "config": CONFIGS[args.config]}))
    files = args.images + args.sounds

    space = bindsearch.load_space(space_file)
    inputs = decoded_inputs(space, folder)
    common = {"benchmark": "index_throughput", "config": args.config, "images": args.images,
              "sounds": args.sounds, "batch": args.batch_size, "precision": space.precision, "machine": machine()}
    ceilings, runs = [], []
    for n in range(args.rounds):
        ceiling = encoder_only(space, inputs, args.batch_size)
        report, wall = end_to_end(space_file, folder, args.batch_size, args.workers)
        assert report["added"] == files and report["failed"] == 0, report
        print(json.dumps({**common, "measure": "round", "round": n + 1,
                          "encoder_only_files_per_s": round(ceiling["all"], 3),
                          "end_to_end_files_per_s": round(files / report["seconds"], 3)}), flush=True)
        ceilings.append(ceiling)
        runs.append((report, wall))
    ceiling = max(ceilings, key=lambda c: c["all"])
    report, wall = min(runs, key=lambda run: run[0]["seconds"])
    print(json.dumps({**common, "measure": "encoder_only", "files_per_s": round(ceiling["all"], 3),
                      "by_modality": {k: round(v, 3) for k, v in ceiling.items() if k != "all"}}))
    e2e = files / report["seconds"]
    print(json.dumps({**common, "measure": "end_to_end", "files_per_s": round(e2e, 3),
                      "files_per_s_wall": round(files / wall, 3), "seconds": round(report["seconds"], 2),
                      "wall_seconds": round(wall, 2), "rates": report["rates"], "workers": args.workers}))
    print(json.dumps({**common, "measure": "ratio", "rounds": args.rounds,
                      "end_to_end_over_encoder_only": round(e2e / ceiling["all"], 3),
                      "wall_over_encoder_only": round(files / wall / ceiling["all"], 3)}))

if __name__ == "__main__":
    main()
