"""Audio preprocessing per file: bindsearch's transforms against the reference transforms (torchaudio's).

Writes (once) 40 WAVs of 3 to 10 s at 16, 22.05 and 44.1 kHz, mono and stereo, and times, at one
thread, what turns each decoded file into model input (1, 3 clips, 128 mel bins, 204 frames):
resampling to 16 kHz, three 2 s clips, Kaldi filterbanks, normalisation. Both sides get the same
decoded samples, so decoding (timed once, apart) is not part of the comparison.

The reference side is ImageBind's published audio transform written with torchaudio's resampler and
Kaldi filterbank; it runs when torchaudio can be imported (``--torchaudio DIR`` puts a folder that
holds it on the path; bindsearch itself never needs it). Rounds alternate the two sides; the best
round of each counts. Prints one JSON object per side and one with the ratio and the lowest cosine
between the two sides' model inputs:

    python benchmarks/audio_preprocess.py --torchaudio /path/to/site-packages
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from common import machine

from bindsearch.loaders.audio import load_audio
from bindsearch.preprocess.audio import audio_to_input
from bindsearch.preprocess.resample import resample

RATES = (16000, 22050, 44100)
MEAN, STD = -4.268, 9.138  # the reference's normalisation of the log mel features


def write_files(folder: Path, count: int = 40) -> list[Path]:
    import soundfile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        rate = RATES[i % len(RATES)]
        seconds = 3.0 + 7.0 * (i / (count - 1))
        t = np.arange(int(rate * seconds)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.05 * rng.standard_normal(t.shape)
        channels = 2 if i % 4 == 3 else 1
        data = np.stack([tone, tone[::-1]], axis=1) if channels == 2 else tone
        path = folder / f"sound-{i:02d}-{rate}.wav"
        if not path.exists():
            soundfile.write(path, data.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def reference_input(samples: np.ndarray, rate: int) -> torch.Tensor:
    """ImageBind's published audio transform, with torchaudio's resampler and Kaldi filterbank."""
    import torchaudio.functional as taf
    from torchaudio.compliance import kaldi

    wave = torch.as_tensor(samples, dtype=torch.float32)
    wave = wave[None] if wave.dim() == 1 else wave
    wave = taf.resample(wave, rate, 16000)
    duration = wave.shape[1] / 16000
    spare = Fraction(max(duration - 2.0, 0.0))  # clip times as exact fractions, as the reference's sampler keeps them
    clips = []
    for i in range(3):
        start = spare * i / 3
        clip = wave[:, int(start * 16000):int((start + 2) * 16000)]
        clip = clip - clip.mean()
        fbank = kaldi.fbank(clip, htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
                            num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10).T
        frames = fbank.shape[1]
        fbank = torch.nn.functional.pad(fbank, (0, 204 - frames)) if frames < 204 else fbank[:, :204]
        clips.append(((fbank - MEAN) / STD)[None])
    return torch.stack(clips)


def time_side(transform, signals: list[tuple[np.ndarray, int]]) -> tuple[float, list[torch.Tensor]]:
    started = time.perf_counter()
    outputs = [transform(samples, rate) for samples, rate in signals]
    return (time.perf_counter() - started) / len(signals), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, default=Path(tempfile.gettempdir()) / "bindsearch-bench-audio")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--torchaudio", type=Path, help="a folder holding torchaudio, for the reference side")
    args = parser.parse_args()
    if args.torchaudio:
        sys.path.insert(0, str(args.torchaudio))
    torch.set_num_threads(1)
    paths = write_files(args.files)
    started = time.perf_counter()
    signals = [load_audio(str(p)) for p in paths]
    decode_ms = (time.perf_counter() - started) / len(paths) * 1000
    try:
        import torchaudio  # noqa: F401
        sides = {"bindsearch": audio_to_input, "reference": reference_input}
    except ImportError:
        sides = {"bindsearch": audio_to_input}
    best = dict.fromkeys(sides, float("inf"))
    outputs: dict[str, list[torch.Tensor]] = {}
    resample_best = float("inf")
    for _ in range(args.rounds):
        for name, transform in sides.items():
            seconds, outputs[name] = time_side(transform, signals)
            best[name] = min(best[name], seconds)
        started = time.perf_counter()
        for samples, rate in signals:
            resample(torch.as_tensor(samples, dtype=torch.float32), rate, 16000)
        resample_best = min(resample_best, (time.perf_counter() - started) / len(signals))
    where = machine()
    for name, seconds in best.items():
        row = {"benchmark": "audio_preprocess", "side": name, "files": len(paths), "threads": 1,
               "ms_per_file": round(seconds * 1000, 2), "decode_ms_per_file": round(decode_ms, 2), "machine": where}
        if name == "bindsearch":
            row["resample_ms_per_file"] = round(resample_best * 1000, 2)
        print(json.dumps(row), flush=True)
    if "reference" in best:
        cosines = [torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()
                   for a, b in zip(outputs["bindsearch"], outputs["reference"], strict=True)]
        print(json.dumps({"benchmark": "audio_preprocess", "reference_over_bindsearch":
                          round(best["reference"] / best["bindsearch"], 3), "min_input_cosine": round(min(cosines), 9),
                          "machine": where}), flush=True)


if __name__ == "__main__":
    main()
