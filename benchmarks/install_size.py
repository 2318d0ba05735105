"""Disk taken by bindsearch's installed dependencies, split into the CUDA parts and the rest.

PyPI's Linux wheels of torch bring NVIDIA's CUDA libraries (nvidia-* packages),
triton and torch's own CUDA kernels (torch/lib/libtorch_cuda*.so); PyTorch's
CPU-only wheels bring none of them. This measures, in the environment it runs
in, the packages bindsearch needs (its dependencies and theirs, test extras
left out): what an install takes as it is, and without its CUDA parts, which is
about what an install with the CPU-only wheels takes (their libtorch_cpu is the
same library). Prints one JSON object:

    python benchmarks/install_size.py
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import metadata

from packaging.requirements import Requirement

_CUDA_DISTRIBUTIONS = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")
_CUDA_FILES = re.compile(r"(^|/)lib(torch_cuda|torch_nvshmem|caffe2_nvrtc|c10_cuda)[^/]*\.so")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def needed(root: str = "bindsearch") -> dict[str, metadata.Distribution]:
    """The installed distributions ``root`` depends on, directly or not, with the extras those ask
    for (torch asks for cuda-toolkit's); markers as this Python evaluates them; ``root``'s extras left out."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(root, "")]
    while todo:
        name, extra = todo.pop()
        name = _key(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo.append((requirement.name, ""))
                todo.extend((requirement.name, wanted) for wanted in requirement.extras)
    return found


def sizes(dist: metadata.Distribution) -> tuple[int, int]:
    """(bytes of CUDA-only files, bytes of the others) of one distribution's installed files."""
    cuda = rest = 0
    whole = bool(_CUDA_DISTRIBUTIONS.match(_key(dist.metadata["Name"])))
    for file in dist.files or []:
        path = file.locate()
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        if whole or _CUDA_FILES.search(str(file)):
            cuda += size
        else:
            rest += size
    return cuda, rest


def main() -> None:
    mib = 1024 * 1024
    per_distribution = {name: sizes(dist) for name, dist in needed().items() if name != "bindsearch"}
    cuda = sum(c for c, _ in per_distribution.values())
    rest = sum(r for _, r in per_distribution.values())
    largest = sorted(per_distribution.items(), key=lambda kv: -sum(kv[1]))[:8]
    print(json.dumps({
        "benchmark": "install_size",
        "python": sys.version.split()[0],
        "torch": metadata.version("torch"),
        "distributions": len(per_distribution),
        "total_mib": round((cuda + rest) / mib),
        "cuda_parts_mib": round(cuda / mib),
        "without_cuda_parts_mib": round(rest / mib),
        "largest_mib": {name: round(sum(size) / mib) for name, size in largest},
    }))


if __name__ == "__main__":
    main()
