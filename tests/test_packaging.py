"""Packaging: the three top-level folders install as one bindsearch package, and a checkout imports alike."""

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import tomllib
from helpers import REPO

FOLDERS = {"bindsearch": "bindsearch", "indexer": "bindsearch.indexer", "cli": "bindsearch.cli"}


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, package in FOLDERS.items():
        assert config["package-dir"][package] == folder
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join([package, *relative]))
    assert found == listed


def test_wheel_holds_nothing_but_the_bindsearch_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("bindsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"bindsearch", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for expected in ("bindsearch/indexer/run.py", "bindsearch/cli/app.py", "bindsearch/py.typed"):
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "bindsearch = bindsearch.cli.app:main" in entry_points


def test_source_checkout_imports_without_the_install_mapping():
    # Drop the editable install's import hook: what a plain `pip install .` user gets
    # when running Python from the repository root.
    code = (
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "sys.path_hooks[:] = [h for h in sys.path_hooks if 'editable' not in repr(h).lower()]\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import bindsearch.cli.app, bindsearch.indexer\n"
        "print(bindsearch.indexer.__file__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO / "indexer" / "__init__.py"


def _install_section() -> str:
    readme = (REPO / "README.md").read_text()
    return readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]


def test_readme_installs_the_cpu_builds_of_the_torch_packages_first():
    from packaging.requirements import Requirement

    blocks = re.findall(r"```sh\n(.*?)```", _install_section(), flags=re.S)
    [cpu] = [b.splitlines() for b in blocks if "download.pytorch.org/whl/cpu" in b]
    first = cpu[0].split()
    assert first[:2] == ["pip", "install"] and first[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert cpu[1:] == ["pip install ."]
    # Every torch package bindsearch pulls in comes from that index, and what it gives meets bindsearch's pins.
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from install_size import needed
    finally:
        sys.path.pop(0)
    torch_family = {name for name in needed() if name in {"torch", "torchvision", "torchaudio"}}
    assert torch_family == set(first[2:-2]) == {"torch", "torchvision"}
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    [torch] = [Requirement(r) for r in config["project"]["dependencies"] if Requirement(r).name == "torch"]
    assert torch.specifier.contains("2.5.1+cpu")  # a CPU build's version: pip keeps it


def test_install_size_benchmark_splits_off_the_cuda_parts():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "install_size.py")], capture_output=True,
                          text=True, check=True, timeout=300)
    row = json.loads(done.stdout)
    assert abs(row["total_mib"] - row["cuda_parts_mib"] - row["without_cuda_parts_mib"]) <= 1
    assert "torch" in row["largest_mib"] and row["without_cuda_parts_mib"] > 0
    cuda_wheels = any(d.metadata["Name"].startswith("nvidia-") for d in metadata.distributions())
    assert (row["cuda_parts_mib"] > 0) == cuda_wheels
