"""A cold text query: what tokenizing without importing OpenCLIP saves a new process.

``bindsearch query --text "a dog" --target image`` runs as a new process
against a small library of the tiny random ImageBind space (its model costs
little, so what is measured is the process: imports, tokenizer, library),
alternately as shipped and with OpenCLIP imported first, which is what
tokenizing with OpenCLIP's tokenizer cost every text query. The two alternate
for ``--rounds`` rounds; the best of each counts (a shared machine's
neighbours only ever slow a run down), and the median is given too.

Prints one JSON object per measurement:

    python benchmarks/text_query_cold.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

import bindsearch

REPO = Path(__file__).resolve().parent.parent
SPACE = REPO / "examples" / "tiny-imagebind.json"

QUERY = r"""
import sys
{preload}
from bindsearch.cli.app import main
sys.argv = ["bindsearch", "query", "--text", "a dog", "--target", "image", "--library", sys.argv[1], "--paths"]
main()
"""

CASES = {"shipped": "", "openclip_imported": "import open_clip"}


def query_seconds(library: Path, preload: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", QUERY.format(preload=preload), str(library)], check=True,
                   capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bindsearch-bench-") as tmp:
        library = Path(tmp) / "lib"
        with bindsearch.open_library(library, SPACE, create=True) as lib:
            lib.index([REPO / "examples" / "media"])
        times: dict[str, list[float]] = {case: [] for case in CASES}
        query_seconds(library, "import open_clip")  # warm the page cache for both cases
        for _ in range(args.rounds):
            for case, preload in CASES.items():
                times[case].append(query_seconds(library, preload))
    for case, seconds in times.items():
        print(json.dumps({
            "benchmark": "text_query_cold", "machine": machine(), "case": case, "rounds": args.rounds,
            "best_s": round(min(seconds), 3), "median_s": round(statistics.median(seconds), 3),
        }))
    saved = min(times["openclip_imported"]) - min(times["shipped"])
    print(json.dumps({"benchmark": "text_query_cold", "machine": machine(), "measure": "saved_best_s",
                      "seconds": round(saved, 3)}))


if __name__ == "__main__":
    main()
