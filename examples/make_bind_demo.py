"""Make a demo for ``bindsearch bind``: pictures of coloured shapes, and a made-up vibration sensor that
sees them.

Each picture shows one shape (circle, square or triangle) in one colour (red, green, blue or yellow) at a
random place and size on a noisy background. Its "vibration" recording (3 channels, about 200 steps) tells
the same two things in another way: the colour sets a frequency, the shape a waveform, and a third
channel mixes both through a non-linear curve; every recording has its own phase, length and noise. A
tower bound on the (picture, recording) pairs learns to read colour and shape off the signal, and a
recording then finds pictures, and text through them.

    python examples/make_bind_demo.py demo/            # writes demo/pairs.csv, demo/images, demo/vibration
    python examples/make_bind_demo.py demo/ --pairs 600 --seed 1 --modality sonar

``--modality sonar`` encodes the attributes differently (the shape sets the frequency, the colour the
waveform, 2 channels), for a second sensor bound on its own pairs.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")


def draw(colour: str, shape: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """A noisy light background with one shape of ``colour``."""
    background = rng.integers(200, 256, (size, size, 3)).astype(np.uint8)
    img = Image.fromarray(background)
    pen = ImageDraw.Draw(img)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    fill = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOURS[colour])
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        pen.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def _wave(kind: int, phase: np.ndarray) -> np.ndarray:
    """One of three waveforms of a phase in cycles: sine, square, sawtooth."""
    if kind == 0:
        return np.sin(2 * np.pi * phase)
    if kind == 1:
        return np.sign(np.sin(2 * np.pi * phase))
    return 2 * (phase % 1.0) - 1


def recording(colour: str, shape: str, rng: np.random.Generator, modality: str = "vibration") -> np.ndarray:
    """(steps, channels) signal encoding colour and shape non-linearly, with noise."""
    c, s = list(COLOURS).index(colour), SHAPES.index(shape)
    steps = int(rng.integers(180, 221))
    t = np.arange(steps) / steps
    offset = rng.random()
    if modality == "vibration":
        frequency, waveform = 3 + 3 * c, s
    else:
        frequency, waveform = 4 + 5 * s, c % 3
    carrier = _wave(waveform, frequency * t + offset)
    channels = [carrier, np.sin(2 * np.pi * (frequency / 2) * t + offset) * (1 + c)]
    if modality == "vibration":
        channels.append(np.tanh(2 * carrier * (s - 1) + c - 1.5))
    noise = rng.normal(0, 0.3, (steps, len(channels)))
    return np.stack(channels, axis=1) + noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modality", default="vibration", choices=["vibration", "sonar"])
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / args.modality).mkdir(parents=True, exist_ok=True)
    with open(args.out / "pairs.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["image", "other"])
        for i in range(args.pairs):
            colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
            image = f"images/{i:05d}-{colour}-{shape}.png"
            other = f"{args.modality}/{i:05d}-{colour}-{shape}.csv"
            draw(colour, shape, rng).save(args.out / image)
            np.savetxt(args.out / other, recording(colour, shape, rng, args.modality), delimiter=",", fmt="%.5f",
                       header=",".join(f"ch{k}" for k in range(3 if args.modality == "vibration" else 2)),
                       comments="")
            rows.writerow([image, other])
    print(f"wrote {args.pairs} pairs to {args.out / 'pairs.csv'}")


if __name__ == "__main__":
    main()
