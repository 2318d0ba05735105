"""Packaging: the three top-level folders install as one bindsearch package, and a checkout imports alike."""

import subprocess
import sys
import zipfile
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
