"""Fuzz every loader and encoder with mutated real files; prints one JSON object.

    python tests/fuzz/fuzz_loaders.py --cases 300 --seed 0
    python tests/fuzz/fuzz_loaders.py --minutes 10 --seed 1

Each case takes a seed file of some modality (``seeds.py``), applies one to
three mutations (bit flips, overwritten bytes, truncation, splices of
itself or of another seed, extreme values written over header fields) and
feeds the result through the modality's encoder of the tiny random ImageBind
space: ``prepare`` (loader and transform) then ``embed_batch`` (the model).

The property: the model input is finite and the embedding a finite unit
vector, or the file is refused with a MediaError whose message is one line;
and either way within ``--time-limit`` seconds. Anything else (another
exception type, NaN, a timeout, running out of the capped memory) is a
failure, reported with the case's number, so ``--seed S --only N`` replays it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seeds import make_seeds

REPO = Path(__file__).resolve().parents[2]
TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
# Values that break arithmetic on header fields: zero, signed and unsigned extremes, powers of two.
_EXTREMES = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 20, 1 << 24]


class CaseTimeout(Exception):
    """A case ran past the time limit (raised from SIGALRM)."""


def mutate(data: bytes, rng: np.random.Generator, others: list[bytes]) -> tuple[bytes, list[str]]:
    """One to three random mutations of ``data``, and their names."""
    b = bytearray(data)
    done = []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["flip", "bytes", "truncate", "splice", "field", "repeat"],
                              p=[0.25, 0.15, 0.15, 0.15, 0.2, 0.1]))
        if not b:
            break
        n = len(b)
        # Headers are where decoders decide sizes: aim half the edits at the first 256 bytes.
        at = int(rng.integers(0, min(n, 256))) if rng.random() < 0.5 else int(rng.integers(0, n))
        if kind == "flip":
            for _ in range(int(rng.integers(1, 9))):
                i = at if rng.random() < 0.5 else int(rng.integers(0, n))
                b[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == "bytes":
            length = int(rng.integers(1, 17))
            b[at : at + length] = rng.bytes(length)
        elif kind == "truncate":
            del b[int(rng.integers(0, n)) :]
        elif kind == "splice":
            source = others[int(rng.integers(0, len(others)))] if rng.random() < 0.5 else bytes(b)
            lo = int(rng.integers(0, len(source)))
            piece = source[lo : lo + int(rng.integers(1, 4096))]
            b[at : at + int(rng.integers(0, 64))] = piece
        elif kind == "field":
            width = int(rng.choice([1, 2, 4]))
            value = int(rng.choice(_EXTREMES)) & ((1 << (8 * width)) - 1)
            order = "little" if rng.random() < 0.5 else "big"
            b[at : at + width] = value.to_bytes(width, order)
        else:  # repeat a chunk: long or looping structures
            lo = int(rng.integers(0, n))
            chunk = bytes(b[lo : lo + int(rng.integers(1, 512))])
            b[lo:lo] = chunk * int(rng.integers(1, 20))
        done.append(kind)
    return bytes(b), done


def check_case(encoder, path: str) -> str:
    """'embedded' or 'refused'; raises AssertionError for a broken property, or whatever the code raised."""
    import torch

    from bindsearch.errors import MediaError

    try:
        prepared = encoder.prepare(path)
    except MediaError as exc:
        assert "\n" not in str(exc) and exc.reason.strip(), f"MediaError message is not one line: {exc!r}"
        return "refused"
    tensors = prepared if isinstance(prepared, (list, tuple)) else [prepared]
    for t in tensors:
        t = torch.as_tensor(t)
        assert bool(torch.isfinite(t.to(torch.float64)).all()), f"model input is not finite (shape {tuple(t.shape)})"
    try:
        vector = np.asarray(encoder.embed_batch([prepared]))[0]
    except MediaError as exc:
        assert "\n" not in str(exc) and exc.reason.strip(), f"MediaError message is not one line: {exc!r}"
        return "refused"
    assert np.isfinite(vector).all(), "embedding is not finite"
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3, f"embedding norm is {np.linalg.norm(vector)}"
    return "embedded"


def cap_memory(headroom_mb: int) -> None:
    """Cap the address space at what the process holds now plus ``headroom_mb``: a blow-up fails as MemoryError."""
    with open("/proc/self/status") as f:
        held = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (held + (headroom_mb << 20), resource.RLIM_INFINITY))


def run(seed: int, cases: int | None, minutes: float | None, time_limit: float, headroom_mb: int,
        only: int | None = None) -> dict:
    import torch

    import bindsearch

    torch.set_num_threads(1)
    space = bindsearch.load_space(str(TINY_IMAGEBIND))
    rng = np.random.default_rng(seed)
    seeds = make_seeds(rng)
    encoders = {m: space.encoder(m) for _, modalities, _ in seeds for m in modalities}
    work = Path(tempfile.mkdtemp(prefix="bindsearch-fuzz-"))
    # Load every tower once before the memory cap and the clock start: weights are not what is measured.
    for rel, modalities, data in seeds[:1] + [s for s in seeds if s[0] in ("a.txt", "a.wav", "a.mp4", "depth/a.png",
                                                                        "thermal/a.png", "imu/a.csv")]:
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        for m in modalities:
            check_case(encoders[m], str(path))
    cap_memory(headroom_mb)

    def on_alarm(signum, frame):
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    outcomes = {"embedded": 0, "refused": 0}
    failures: list[dict] = []
    slowest = (0.0, None)
    start = time.monotonic()
    deadline = None if minutes is None else start + minutes * 60
    case = 0
    while (cases is None or case < cases) and (deadline is None or time.monotonic() < deadline):
        case_rng = np.random.default_rng([seed, case])
        rel, modalities, data = seeds[int(case_rng.integers(0, len(seeds)))]
        mutated, kinds = mutate(data, case_rng, [s[2] for s in seeds])
        if only is not None and case != only:
            case += 1
            continue
        path = work / f"case{case}" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mutated)
        for modality in modalities:
            began = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, time_limit)
            try:
                outcomes[check_case(encoders[modality], str(path))] += 1
            except BaseException as exc:  # everything but the two outcomes is a finding
                signal.setitimer(signal.ITIMER_REAL, 0)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append({"case": case, "file": rel, "modality": modality, "mutations": kinds,
                                 "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                                 "where": traceback.format_exception(exc)[-2].strip()[:300]})
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.monotonic() - began
            if took > slowest[0]:
                slowest = (took, f"case {case} {rel} as {modality}")
        if not failures or failures[-1]["case"] != case:
            for child in sorted(path.parent.rglob("*"), reverse=True):
                child.unlink() if child.is_file() else child.rmdir()
            path.parent.rmdir() if path.parent.exists() else None
        case += 1
    elapsed = time.monotonic() - start
    checked = outcomes["embedded"] + outcomes["refused"] + len(failures)
    return {"seed": seed, "cases": case, "checks": checked, "seconds": round(elapsed, 1),
            "cases_per_s": round(case / elapsed, 2) if elapsed else None, **outcomes, "failures": failures,
            "slowest_s": round(slowest[0], 2), "slowest": slowest[1], "time_limit_s": time_limit,
            "memory_headroom_mb": headroom_mb, "kept": str(work)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=None, help="stop after this many cases")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds one check may take")
    parser.add_argument("--memory", type=int, default=1500, help="MB of address space a check may add")
    parser.add_argument("--only", type=int, default=None, help="replay one case")
    args = parser.parse_args()
    if args.cases is None and args.minutes is None:
        args.cases = 300
    os.environ.setdefault("BINDSEARCH_DEVICE", "cpu")
    report = run(args.seed, args.cases, args.minutes, args.time_limit, args.memory, args.only)
    print(json.dumps(report, indent=1))
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
