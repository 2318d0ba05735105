"""A no-op re-index: `bindsearch index FOLDER --json` on N files of which none changed, as a new process.

The folder (N tiny files in subfolders of about 1000, a mix of .png, .txt and
.wav; their content does not matter for a run that only stats them) and a
library that already holds every file are made once and cached under the temp
folder. The library is filled directly through its writer with random unit
vectors and the files' real size and mtime, so no model runs.

Each run is timed from the shell's side (``bindsearch index`` as a subprocess,
the first of each series only warms the page cache); the reports check that
every file was unchanged and nothing embedded. Two variants: as a re-index
usually runs (the library's own space), and with the same space given again
by --space. One extra instrumented run splits the time into imports, opening
the library, building its space, the scan, reading the stored items and the
rest (diff, commit, report), with what happens outside (interpreter start and
shutdown), and says which heavy modules were imported. Prints one JSON object
per measurement:

    python benchmarks/noop_reindex.py                 # 100 000 files, 5 runs
    python benchmarks/noop_reindex.py --files 10000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

REPO = Path(__file__).resolve().parent.parent
TINY_SPACE = REPO / "examples" / "tiny-imagebind.json"
PER_FOLDER = 1000
# Cheap, valid-looking headers: content is never read by a no-op run.
CONTENT = {
    ".png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 24,
    ".txt": b"a few words of text\n",
    ".wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 24,
}

# Runs the CLI in-process with timers around the phases: the first line of the
# child's stderr that starts with BENCH is the split. Patching is by name and
# skipped where a name is missing, so it survives changes to the indexer.
INSTRUMENTED = r"""
import sys, time
t0 = time.perf_counter()
import json
marks = {}
def timed(owner, name, key):
    fn = getattr(owner, name, None)
    if fn is None:
        return
    def wrapper(*a, **k):
        s = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            marks[key] = marks.get(key, 0.0) + time.perf_counter() - s
    setattr(owner, name, wrapper)
import bindsearch.cli.app as app
t_import = time.perf_counter()
import bindsearch.indexer.run as run
from bindsearch.library import store as lib_mod
timed(run, "scan", "scan_s")
timed(lib_mod.LibraryStore, "items_under", "items_under_s")
timed(lib_mod.LibraryStore, "open", "open_library_s")
import bindsearch.indexer as indexer_pkg
timed(indexer_pkg, "index_paths", "index_paths_s")
space_prop = lib_mod.Library.space
def space_getter(self, _get=space_prop.fget):
    s = time.perf_counter()
    try:
        return _get(self)
    finally:
        marks["space_s"] = marks.get("space_s", 0.0) + time.perf_counter() - s
lib_mod.Library.space = property(space_getter)
sys.argv = ["bindsearch"] + sys.argv[1:]
code = 0
try:
    app.app()
except SystemExit as exc:
    code = exc.code or 0
t_end = time.perf_counter()
marks = {k: round(v, 4) for k, v in marks.items()}
index_s = marks.get("index_paths_s", 0.0)
rest = index_s - marks.get("scan_s", 0.0) - marks.get("items_under_s", 0.0) - marks.get("space_s", 0.0)
print("BENCH " + json.dumps({
    "import_s": round(t_import - t0, 4), **marks,
    "diff_and_rest_s": round(rest, 4),
    "in_process_total_s": round(t_end - t0, 4),
    "imported": {m: m in sys.modules
                 for m in ("torch", "faiss", "numpy", "sqlalchemy", "open_clip", "av", "PIL", "rich")},
}), file=sys.stderr)
sys.exit(code)
"""


def make_folder(media: Path, n: int) -> None:
    """N files in folders of PER_FOLDER, two levels deep (group/folder/file)."""
    exts = list(CONTENT)
    for i in range(n):
        folder = i // PER_FOLDER
        if i % PER_FOLDER == 0:
            d = media / f"group{folder // 10:03d}" / f"folder{folder:04d}"
            d.mkdir(parents=True, exist_ok=True)
        ext = exts[i % len(exts)]
        (d / f"file{i:07d}{ext}").write_bytes(CONTENT[ext])


def fill_library(lib_path: Path, media: Path, n: int) -> None:
    """A library holding every file of ``media`` as embedded, with random unit vectors (no model)."""
    import numpy as np

    from bindsearch import Library
    from bindsearch.modality import modality_from_path
    from bindsearch.windows import WINDOWED

    rng = np.random.default_rng(0)
    with Library.open(lib_path, str(TINY_SPACE), create=True) as lib:
        dim = lib.dim
        with lib.writer() as writer:
            done = 0
            for folder, _dirs, names in os.walk(media):
                for name in sorted(names):
                    path = os.path.join(folder, name)
                    st = os.stat(path)
                    v = rng.standard_normal(dim).astype(np.float32)
                    v /= np.linalg.norm(v)
                    modality = modality_from_path(path)
                    # As a run stores a short audio or video file: cut into windows, of which it has none,
                    # and its length known.
                    windows = [] if modality in WINDOWED else None
                    duration = 1.0 if modality in WINDOWED else None
                    writer.put(path, modality, st.st_size, st.st_mtime_ns, f"{done:064x}", v, windows,
                               duration=duration)
                    done += 1
                    if writer.pending >= 5000:
                        writer.commit()
            writer.commit()
    if done != n:
        raise SystemExit(f"expected {n} files, filled {done}")


def prepare(n: int, cache: Path, rebuild: bool) -> tuple[Path, Path, float]:
    """The cached (media folder, library) pair for ``n`` files; seconds spent making them (0 when cached)."""
    base = cache / f"n{n}"
    media, lib = base / "media", base / "library"
    ready = base / "ready"
    if ready.exists() and not rebuild:
        return media, lib, 0.0
    started = time.perf_counter()
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    make_folder(media, n)
    fill_library(lib, media, n)
    ready.write_text("ok\n")
    return media, lib, time.perf_counter() - started


def bindsearch_command(python_m: bool) -> list[str]:
    exe = shutil.which("bindsearch", path=os.path.dirname(sys.executable)) or shutil.which("bindsearch")
    return [exe] if exe and not python_m else [sys.executable, "-m", "bindsearch.cli"]


def check_report(report: dict, n: int) -> None:
    want = {"unchanged": n, "added": 0, "updated": 0, "moved": 0, "removed": 0, "failed": 0, "embedded": 0}
    got = {k: report.get(k) for k in want}
    if got != want:
        raise SystemExit(f"not a no-op run: {got} (expected {want})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bindsearch-bench-noop")
    parser.add_argument("--rebuild", action="store_true", help="make the folder and library again")
    parser.add_argument("--python-m", action="store_true",
                        help="run `python -m bindsearch.cli`, not the console script (to time another checkout: "
                        "PYTHONPATH=/path/to/it; every run starts in the cache folder, so the current one is no "
                        "shadow)")
    parser.add_argument("--no-space-variant", dest="space_variant", action="store_false",
                        help="time only the run without --space (the library's own space)")
    args = parser.parse_args()

    media, lib, setup_s = prepare(args.files, args.cache, args.rebuild)
    where = machine()
    env = {**os.environ, "BINDSEARCH_OFFLINE": "1"}
    env.pop("BINDSEARCH_DEBUG", None)
    cli_args = ["index", str(media), "--library", str(lib), "--json"]

    # Interpreter start alone, for reference.
    starts = []
    for _ in range(3):
        s = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, cwd=args.cache)
        starts.append(time.perf_counter() - s)

    variants = {"library's space": cli_args, "--space given": [*cli_args, "--space", str(TINY_SPACE)]}
    for variant, argv in variants.items():
        if variant != "library's space" and not args.space_variant:
            continue
        times = []
        for _ in range(args.runs + 1):  # the first warms the page cache and is not counted
            s = time.perf_counter()
            proc = subprocess.run(bindsearch_command(args.python_m) + argv, capture_output=True, text=True, env=env,
                                  cwd=args.cache)
            times.append(time.perf_counter() - s)
            if proc.returncode != 0:
                raise SystemExit(f"bindsearch index failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
            check_report(json.loads(proc.stdout), args.files)
        times = times[1:]
        print(json.dumps({
            "benchmark": "noop_reindex", "measure": "wall", "variant": variant, "files": args.files,
            "machine": where, "runs": len(times), "min_s": round(min(times), 3),
            "median_s": round(statistics.median(times), 3), "python_start_s": round(min(starts), 3),
            "setup_s": round(setup_s, 1),
        }), flush=True)

    # One instrumented run (timers add a little) for the split.
    s = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", INSTRUMENTED, *cli_args], capture_output=True, text=True, env=env,
                          cwd=args.cache)
    wall = time.perf_counter() - s
    if proc.returncode != 0:
        raise SystemExit(f"instrumented run failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    check_report(json.loads(proc.stdout), args.files)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("BENCH "))
    split = json.loads(line[len("BENCH "):])
    print(json.dumps({
        "benchmark": "noop_reindex", "measure": "split", "variant": "library's space", "files": args.files,
        "machine": where,
        "python_start_s": round(min(starts), 3), **split,
        # what the process spent after the command returned: interpreter shutdown (and start, outside it)
        "wall_s": round(wall, 3), "outside_s": round(wall - split["in_process_total_s"], 3),
    }), flush=True)


if __name__ == "__main__":
    main()
