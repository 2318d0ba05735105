"""Indexing a long recording as time windows: time, clips per second, against the audio encoder alone.

1. Writes (once) a recording of ``--minutes`` minutes (16 kHz mono WAV: quiet
   noise with a tone that changes every second) and a space file of an
   ImageBind architecture with random weights (same arithmetic as real ones).
2. Encoder only: the file's 2 s clips, already read and turned into
   filterbanks (not timed), embedded in pieces as an index run does: the ceiling.
3. End to end: `bindsearch index` on the file, in a new process on a new
   library, timed by the run's report: reading, filterbanks, embedding the
   whole file and every clip, pooling the windows, storing, committing.

Prints one JSON object per measurement and the ratio:

    python benchmarks/long_audio.py --minutes 60 --config mid
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

import bindsearch
from bindsearch.windows import WindowSettings, chunks, file_windows

RATE = 16000
CLIPS_PER_PIECE = 32  # as the indexer reads audio


def write_recording(path: Path, minutes: float) -> None:
    import soundfile

    rng = np.random.default_rng(0)
    seconds = int(minutes * 60)
    t = np.arange(RATE) / RATE
    path.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        for _ in range(seconds):  # a second at a time: an hour never sits in memory
            tone = 0.3 * np.sin(2 * np.pi * 200 * 2 ** rng.uniform(0, 4) * t)
            f.write((tone + 0.02 * rng.standard_normal(RATE)).astype(np.float32))


def encoder_only(space_file: Path, recording: Path) -> dict[str, float]:
    space = bindsearch.load_space(space_file)
    encoder = space.encoder("audio")
    clips, _ = file_windows(encoder.duration(recording), WindowSettings())
    pieces = [encoder.prepare_clips(recording, clips[a:b]) for a, b in chunks(len(clips), CLIPS_PER_PIECE)]
    encoder.embed_clips(pieces[0][:4])  # build the tower and warm up
    started = time.perf_counter()
    for piece in pieces:
        encoder.embed_clips(piece)
    seconds = time.perf_counter() - started
    return {"clips": len(clips), "seconds": seconds, "clips_per_s": len(clips) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="mid")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "bindsearch-bench"))
    args = parser.parse_args()

    root = Path(args.dir)
    recording = root / f"recording-{args.minutes:g}min.wav"
    if not recording.exists():
        write_recording(recording, args.minutes)
    space_file = root / f"imagebind-{args.config}-random.json"
    space_file.write_text(json.dumps({"model": "imagebind", "checkpoint": None, "config": CONFIGS[args.config]}))

    ceiling = encoder_only(space_file, recording)
    report, wall = index_in_new_process([recording], space_file)
    assert report["added"] == 1 and report["failed"] == 0, report
    common = {"benchmark": "long_audio", "config": args.config, "minutes": args.minutes, "machine": machine()}
    print(json.dumps({**common, "measure": "encoder_only", "clips": ceiling["clips"],
                      "seconds": round(ceiling["seconds"], 2), "clips_per_s": round(ceiling["clips_per_s"], 2)}))
    # The run also embeds the file as a whole (3 clips): negligible next to its clips.
    e2e = ceiling["clips"] / report["seconds"]
    print(json.dumps({**common, "measure": "end_to_end", "windows": report["windows"],
                      "seconds": round(report["seconds"], 2), "wall_seconds": round(wall, 2),
                      "clips_per_s": round(e2e, 2),
                      "audio_minutes_per_minute": round(args.minutes * 60 / report["seconds"], 1)}))
    ratio = round(e2e / ceiling["clips_per_s"], 3)
    print(json.dumps({**common, "measure": "ratio", "end_to_end_over_encoder_only": ratio}))


if __name__ == "__main__":
    main()
