"""Precision: chosen by the hardware, overridden by BINDSEARCH_DTYPE or the space file, recorded by the library,
and faithful: a library embedded in fp32 and queried in bf16 finds the same results."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import draw_image, imagebind_fixture_missing, write_imagebind_space

import bindsearch
from bindsearch.errors import SpaceError, UsageError
from bindsearch.spaces.precision import (
    choose_precision,
    cpu_has_native_bf16,
    default_precision,
    native_bf16_in_cpuinfo,
    parse_precision,
)

pytestmark = pytest.mark.skipif(imagebind_fixture_missing() is not None, reason=imagebind_fixture_missing() or "")

REPO = Path(__file__).resolve().parent.parent
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n"
ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n"
NEOVERSE_V1 = "processor\t: 0\nFeatures\t: fp asimd aes sha2 asimddp sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd aes sha2 asimddp\n"


@pytest.mark.parametrize(("text", "native"), [(SAPPHIRE_RAPIDS, True), (ZEN4, True), (ICE_LAKE, False),
                                              (NEOVERSE_V1, True), (GRAVITON2, False), ("", False)])
def test_native_bf16_is_read_from_cpuinfo(text: str, native: bool) -> None:
    assert native_bf16_in_cpuinfo(text) is native


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="PyTorch's x86 feature checks")
def test_this_cpu_is_judged_as_pytorch_sees_it() -> None:
    import torch

    assert cpu_has_native_bf16() is (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert default_precision("cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_what_chooses_the_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINDSEARCH_DTYPE", raising=False)
    assert choose_precision("cpu") == default_precision("cpu")
    assert choose_precision("cpu", "fp16") == "fp16"  # the space file's field
    assert choose_precision("mps") == "fp32"
    monkeypatch.setenv("BINDSEARCH_DTYPE", "BFloat16")
    assert choose_precision("cpu", "fp32") == "bf16"  # the variable wins over the space file
    monkeypatch.setenv("BINDSEARCH_DTYPE", "auto")
    assert choose_precision("cpu", "fp16") == "fp16"
    monkeypatch.setenv("BINDSEARCH_DTYPE", "fp64")
    with pytest.raises(UsageError, match=r"^BINDSEARCH_DTYPE: 'fp64' is not a precision: write fp32, bf16, fp16"):
        choose_precision("cpu")
    assert [parse_precision(v) for v in ("float32", "half", " BF16 ", "")] == ["fp32", "fp16", "bf16", None]


def test_the_space_file_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINDSEARCH_DTYPE", raising=False)
    plain = bindsearch.load_space(write_imagebind_space(tmp_path / "plain.json"))
    half = bindsearch.load_space(write_imagebind_space(tmp_path / "half.json", precision="float16"))
    assert plain.precision == default_precision("cpu") and half.precision == "fp16"
    assert half.spec["precision"] == "fp16" and "precision" not in plain.spec
    assert half.fingerprint == plain.fingerprint  # vectors of either precision are comparable
    with pytest.raises(SpaceError, match='"precision": \'int3\' is not a precision'):
        bindsearch.load_space(write_imagebind_space(tmp_path / "bad.json", precision="int3"))


# -- a library across precisions ------------------------------------------------------------------------------

TOLERANCE = 2e-3  # scores closer than this in fp32 may trade places under bf16


@pytest.fixture(scope="module")
def fp32_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("precision")
    media = root / "media"
    media.mkdir()
    for photo in (REPO / "examples" / "media").glob("*.jpg"):
        shutil.copy(photo, media / photo.name)
    for seed in range(16):
        draw_image(media / f"drawn-{seed}.png", seed=seed)
    for i, note in enumerate(["a cat asleep on a sofa", "a rocket launch at dawn", "coffee and toast",
                              "stars and galaxies", "an astronaut on the moon"]):
        (media / f"note-{i}.txt").write_text(note)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BINDSEARCH_DTYPE", "fp32")
        space = bindsearch.load_space(write_imagebind_space(root / "space.json"))
        with bindsearch.open_library(root / "lib", space, create=True) as lib:
            report = lib.index([media])
    assert report.errors == [] and report.precision == "fp32"
    return root / "lib", media


def _hits(library: Path, precision: str, term: bindsearch.QueryTerm, k: int) -> list:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BINDSEARCH_DTYPE", precision)
        with bindsearch.open_library(library) as lib:
            assert lib.space.precision == precision
            return lib.search([term], targets=["image", "text"], k=k)


def test_a_library_embedded_in_fp32_ranks_the_same_when_queried_in_bf16(fp32_library: tuple[Path, Path]) -> None:
    library, media = fp32_library
    terms = [bindsearch.QueryTerm.file("image", path) for path in sorted(media.glob("*.*g"))]
    terms += [bindsearch.QueryTerm.text(t) for t in ("a photo of a cat", "a red circle", "night sky")]
    for term in terms:
        exact = _hits(library, "fp32", term, 100)
        score = {h.path: h.score for h in exact}
        low = _hits(library, "bf16", term, 5)
        assert low[0].path == exact[0].path, term
        for rank, (a, b) in enumerate(zip(exact[:5], low)):
            # The same item at each rank, or two whose fp32 scores are a near tie.
            assert a.path == b.path or abs(score[a.path] - score[b.path]) < TOLERANCE, (term, rank)
            assert abs(b.score - score[b.path]) < TOLERANCE, (term, rank)


def test_the_library_records_each_precision_that_embedded(fp32_library: tuple[Path, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    library, _ = fp32_library
    copy = tmp_path / "lib"
    shutil.copytree(library, copy)
    draw_image(tmp_path / "more" / "new.png", seed=99)
    monkeypatch.setenv("BINDSEARCH_DTYPE", "bf16")
    with bindsearch.open_library(copy) as lib:
        assert lib.info().precisions == {"image": ["fp32"], "text": ["fp32"]}
        report = lib.index([tmp_path / "more"])
        assert (report.added, report.precision) == (1, "bf16")
        assert lib.info().precisions == {"image": ["fp32", "bf16"], "text": ["fp32"]}
        assert lib.index([tmp_path / "more"]).precision is None  # nothing embedded
    shown = subprocess.run([sys.executable, "-m", "bindsearch.cli", "info", "--library", str(copy)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^precision +image fp32\+bf16, text fp32 *$", shown.stdout, re.M), shown.stdout
    as_json = subprocess.run([sys.executable, "-m", "bindsearch.cli", "info", "--library", str(copy), "--json"],
                             capture_output=True, text=True, timeout=120)
    assert json.loads(as_json.stdout)["precisions"] == {"image": ["fp32", "bf16"], "text": ["fp32"]}


def test_index_says_which_precision_embedded(tmp_path: Path) -> None:
    draw_image(tmp_path / "media" / "a.png", seed=1)
    space = write_imagebind_space(tmp_path / "space.json", precision="fp16")
    run = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(tmp_path / "media"), "--library",
                          str(tmp_path / "lib"), "--space", str(space)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "embedded in fp16: image" in run.stdout + run.stderr



def test_openclip_runs_in_each_precision_close_to_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import TINY_SPACE_FILE

    monkeypatch.delenv("BINDSEARCH_DTYPE", raising=False)
    photo = draw_image(tmp_path / "a.png", seed=4)
    spec = json.loads(TINY_SPACE_FILE.read_text())
    vectors = {}
    for precision in ("fp32", "bf16", "fp16"):
        path = tmp_path / f"{precision}.json"
        path.write_text(json.dumps({**spec, "precision": precision}))
        space = bindsearch.load_space(path)
        assert space.precision == precision and space.fingerprint == bindsearch.load_space(TINY_SPACE_FILE).fingerprint
        vectors[precision] = np.concatenate([space.embed("image", photo), space.embed("text", "a red square")])
    for precision in ("bf16", "fp16"):
        assert not np.array_equal(vectors[precision], vectors["fp32"])  # it did run in that precision
        assert float(np.min(np.sum(vectors[precision].reshape(2, -1) * vectors["fp32"].reshape(2, -1), axis=1))) > 0.999


def test_the_weights_a_bf16_worker_copies_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What sizes the pool of embedding workers: each holds its own bf16 trunks, float32 ones are shared pages.
    import torch

    from bindsearch.modality import Modality

    spec = json.loads((REPO / "examples" / "tiny-imagebind.json").read_text())
    (tmp_path / "space.json").write_text(json.dumps({**spec, "precision": "bf16"}))
    space = bindsearch.load_space(tmp_path / "space.json")
    estimate = space.private_weight_bytes([Modality.IMAGE, Modality.VIDEO, Modality.AUDIO])
    model = space.model_for(Modality.IMAGE)
    space.model_for(Modality.AUDIO)
    copied = sum(p.numel() * p.element_size() for tower in ("vision", "audio")
                 for p in model.tower(tower).parameters() if p.dtype == torch.bfloat16)
    assert abs(estimate - copied) / copied < 0.05  # (biases left out of the estimate)
    monkeypatch.setenv("BINDSEARCH_DTYPE", "fp32")
    assert space.private_weight_bytes([Modality.IMAGE]) == 0


def test_device_and_precision_are_chosen_without_torch_where_no_gpu_can_be() -> None:
    # An index run's main process only hands work to its workers on a CPU: importing torch there would
    # only delay them by the seconds it takes.
    from bindsearch.spaces.torch_runtime import gpu_may_be_present

    code = ("import sys; from bindsearch.spaces.torch_runtime import pick_device; "
            "from bindsearch.spaces.precision import choose_precision; "
            "device = pick_device(); print(device, choose_precision(device), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k not in ("BINDSEARCH_DEVICE", "BINDSEARCH_DTYPE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    device, precision, imported = out.stdout.split()
    if not gpu_may_be_present():
        assert (device, imported) == ("cpu", "False")
        assert precision == default_precision("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="device nodes are how Linux shows a GPU driver")
def test_a_gpu_driver_node_sends_the_question_to_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bindsearch.spaces import torch_runtime

    node = tmp_path / "nvidiactl"
    monkeypatch.setattr(torch_runtime, "_GPU_DEVICE_NODES", (str(node),))
    assert not torch_runtime.gpu_may_be_present()
    node.touch()
    assert torch_runtime.gpu_may_be_present()
