"""Index the example folder into a throwaway library and search it across modalities with the Python API.

    python examples/search_photos.py                  # a tiny random ImageBind: runs anywhere, offline
    python examples/search_photos.py imagebind-huge   # the real weights (a 4.5 GB download, once)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import bindsearch
from bindsearch import QueryTerm

HERE = Path(__file__).resolve().parent


def show(title: str, hits: list[bindsearch.Hit]) -> None:
    print(title)
    for hit in hits:
        print(f"  {hit.rank}. {hit.score:.3f}  {hit.modality.value:<5}  {Path(hit.path).name}")


def main() -> None:
    space = sys.argv[1] if len(sys.argv) > 1 else HERE / "tiny-imagebind.json"
    with tempfile.TemporaryDirectory() as tmp:
        with bindsearch.open_library(Path(tmp) / "library", space, create=True) as library:
            report = library.index([HERE / "media"])
            print(f"indexed {report.added} files ({report.failed} failed) into a library of space {library.space_name}")

            show("text -> images:", library.search([QueryTerm.text("a rocket launch")], targets=["image"], k=3))
            bird = QueryTerm.file("audio", HERE / "media" / "sounds" / "birdsong.wav")
            show("sound -> images:", library.search([bird], targets=["image"], k=3))
            show("image -> anything:", library.search([QueryTerm.file("image", HERE / "media" / "cat.jpg")], k=3))
            # Terms add up: a photo of coffee, nudged towards the text "breakfast".
            mixed = [QueryTerm.file("image", HERE / "media" / "coffee.jpg"), QueryTerm.text("breakfast", 0.5)]
            show("image + text:", library.search(mixed, k=3))


if __name__ == "__main__":
    try:
        main()
    except bindsearch.BindsearchError as exc:  # a space that cannot be had, a bad file: one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
