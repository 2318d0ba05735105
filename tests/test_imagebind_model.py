"""Our ImageBind implementation against the official model's outputs (tiny conformance fixture).

The fixture (``imagebind-tiny``) holds a small random-weight checkpoint in the
official format and, for every case, the official model's input and output.
It ships in ``tests/fixtures/imagebind-tiny``; ``BINDSEARCH_FIXTURES`` names
another folder holding an ``imagebind-tiny`` copy.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from bindsearch.models.imagebind import MODALITIES, ImageBindConfig, ImageBindModel, load_imagebind

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("BINDSEARCH_FIXTURES") or REPO / "tests" / "fixtures")
TINY = FIXTURES / "imagebind-tiny"
CLIP_KINDS = {"audio", "video"}  # outputs are means of scaled clip embeddings, not of the scale's norm
MIN_COSINE = 0.9999


def _fixture_missing() -> str | None:
    needed = ["config.json", "model.pth", "expected.safetensors", "manifest.json"]
    absent = [name for name in needed if not (TINY / name).is_file()]
    if absent:
        return (
            f"ImageBind conformance fixture not found at {TINY} (missing {', '.join(absent)}); "
            "set BINDSEARCH_FIXTURES to the folder that contains imagebind-tiny"
        )
    return None


def _cases() -> list:
    reason = _fixture_missing()
    if reason:
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-fixture")]
    cases = json.loads((TINY / "manifest.json").read_text())["cases"]
    return [pytest.param(case, id=case["input"].removesuffix("/input")) for case in cases]


@pytest.fixture(scope="module")
def tiny() -> dict:
    reason = _fixture_missing()
    if reason:
        pytest.skip(reason)
    from safetensors.torch import load_file

    return {
        "config": ImageBindConfig.from_dict(json.loads((TINY / "config.json").read_text())),
        "expected": load_file(str(TINY / "expected.safetensors")),
        "checkpoint": TINY / "model.pth",
    }


@pytest.fixture(scope="module")
def model(tiny: dict) -> ImageBindModel:
    return load_imagebind(tiny["checkpoint"], tiny["config"])


@pytest.fixture(scope="module")
def models(tiny: dict, model: ImageBindModel) -> dict[str, ImageBindModel]:
    """The fixture's model in each precision (every one runs on every machine, emulated where need be)."""
    low = {name: load_imagebind(tiny["checkpoint"], tiny["config"], dtype=name) for name in ("bf16", "fp16")}
    return {"fp32": model, **low}


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.double(), dim=-1)


# -- conformance ---------------------------------------------------------------


def test_fixture_ships_in_the_repository() -> None:
    # A fresh clone must run the conformance tests, not skip them: every file they read is committed.
    shipped = REPO / "tests" / "fixtures" / "imagebind-tiny"
    manifest = json.loads((shipped / "manifest.json").read_text())
    needed = {"README.md", "config.json", "model.pth", "expected.safetensors", "manifest.json"}
    needed |= {case["file"] for case in manifest["cases"] if "file" in case}
    tracked = subprocess.run(["git", "ls-files", "--", "tests/fixtures/imagebind-tiny"], cwd=REPO,
                             capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert needed <= {name.removeprefix("tests/fixtures/imagebind-tiny/") for name in tracked}
    assert len(manifest["cases"]) == len(_cases()) and all(not param.marks for param in _cases())



@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("case", _cases())
def test_matches_official_output(case: dict, precision: str, tiny: dict, models: dict) -> None:
    model = models[precision]
    kind = case["modality"]
    x, official = tiny["expected"][case["input"]], tiny["expected"][case["output"]]
    ours = model.embed(kind, x)
    assert ours.shape == official.shape and ours.dtype == torch.float32

    cosine = (_unit(ours) * _unit(official)).sum(-1)
    assert cosine.min().item() >= MIN_COSINE, f"{case['input']}: cosine {cosine.tolist()}"
    if kind not in CLIP_KINDS:
        # Same per-modality scale (text's comes from the checkpoint).
        ratio = ours.double().norm(dim=-1) / official.double().norm(dim=-1)
        assert torch.allclose(ratio, torch.ones_like(ratio), rtol=0, atol=1e-3), ratio.tolist()

    unit = model.embed_unit(kind, x)
    assert unit.dtype == np.float32 and unit.shape == tuple(official.shape)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)


def test_plain_attention_matches_sdpa(tiny: dict, model: ImageBindModel) -> None:
    # text: causal trunk with a stored additive mask; audio, imu: bias_k/bias_v; video: vision trunk.
    plain = load_imagebind(tiny["checkpoint"], tiny["config"], ["text", "audio", "imu", "video"], attention="plain")
    for key, kind in [("text/1", "text"), ("audio/tone_16k_mono.wav", "audio"), ("imu/tensor", "imu"),
                      ("video/tensor", "video")]:  # fmt: skip
        x = tiny["expected"][f"{key}/input"]
        diff = (plain.embed(kind, x) - model.embed(kind, x)).abs().max().item()
        assert diff < 1e-4, f"{kind}: sdpa and plain attention differ by {diff}"


def test_switching_attention_kind(tiny: dict) -> None:
    m = load_imagebind(tiny["checkpoint"], tiny["config"], ["depth"])
    x = tiny["expected"]["depth/tensor/input"]
    fused = m.embed("depth", x)
    m.set_attention("plain")
    assert (m.embed("depth", x) - fused).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="attention must be one of"):
        m.set_attention("flash")


def test_low_precision_keeps_the_fidelity_critical_parts_in_float32(tiny: dict) -> None:
    m = load_imagebind(tiny["checkpoint"], tiny["config"], ["audio"], dtype="bf16")
    tower = m.tower("audio")
    assert tower.compute_dtype == torch.bfloat16
    low = {name for name, p in tower.named_parameters() if p.dtype == torch.bfloat16}
    # Only the trunk's matrix products: attention projections and MLPs, weights and biases.
    assert low and all(name.startswith("trunk.blocks.") and (".attn." in name or ".mlp." in name) for name in low)
    assert all(p.dtype == torch.float32 for name, p in tower.named_parameters() if "norm" in name)
    assert tower.preprocessor.rgbt_stem.proj.weight.dtype == torch.float32
    m.set_precision("fp32")
    assert all(p.dtype == torch.float32 for p in tower.parameters())
    with pytest.raises(ValueError, match="unknown dtype"):
        m.set_precision("int4")


# -- laziness --------------------------------------------------------------------


def test_construction_builds_nothing() -> None:
    model = ImageBindModel()  # the huge config: building anything would take gigabytes
    assert model.built_modalities == ()
    assert not list(model.parameters()) and not list(model.buffers())


def test_loading_text_only_builds_only_text(tiny: dict) -> None:
    model = load_imagebind(tiny["checkpoint"], tiny["config"], modalities=["text"])
    assert model.built_modalities == ("text",)
    names = list(model.state_dict())
    assert names and all(n.split(".")[1] == "text" for n in names)
    for group in (model.modality_preprocessors, model.modality_trunks, model.modality_heads):
        assert list(group.keys()) == ["text"]
    with pytest.raises(ValueError, match="vision tower is not loaded"):
        model.embed("image", torch.zeros(1, 3, 224, 224))


def test_tower_builds_one_modality_on_demand(tiny: dict) -> None:
    model = ImageBindModel(tiny["config"])
    tower = model.tower("imu")
    assert model.tower("imu") is tower and model.built_modalities == ("imu",)
    assert model.embed("imu", torch.randn(2, 6, 2000)).shape == (2, tiny["config"].out_embed_dim)


def test_huge_default_config_matches_released_checkpoint_layout() -> None:
    keys_file = TINY / "imagebind_huge_keys.tsv"
    if not keys_file.is_file():
        pytest.skip(f"{keys_file} not found")
    released = {}
    for line in keys_file.read_text().splitlines():
        key, shape = line.split("\t")
        released[key] = tuple(ast.literal_eval(shape))
    model = ImageBindModel()
    with torch.device("meta"):  # shapes only, no memory
        for modality in MODALITIES:
            model.tower(modality)
    ours = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    assert ours == released


# -- errors a user can act on ----------------------------------------------------


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="text_num_block"):
        ImageBindConfig.from_dict({"text_num_block": 2})
    with pytest.raises(ValueError, match="divisible"):
        ImageBindConfig(text_embed_dim=50, text_num_heads=4)


def test_checkpoint_missing_a_key_is_rejected(tiny: dict, tmp_path: Path) -> None:
    state = torch.load(tiny["checkpoint"], map_location="cpu", weights_only=True)
    del state["modality_trunks.text.blocks.1.norm_2.bias"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="missing key") as info:
        load_imagebind(broken, tiny["config"], ["text"])
    assert "modality_trunks.text.blocks.1.norm_2.bias" in str(info.value) and str(broken) in str(info.value)
    # Other towers do not need that key and still load.
    assert load_imagebind(broken, tiny["config"], ["audio"]).built_modalities == ("audio",)


def test_checkpoint_of_another_config_is_rejected(tiny: dict) -> None:
    with pytest.raises(ValueError, match="wrong shape") as info:
        load_imagebind(tiny["checkpoint"], ImageBindConfig(), ["depth"])  # huge config, tiny weights
    assert "config" in str(info.value)
    deeper = ImageBindConfig.from_dict({**tiny["config"].to_dict(), "imu_num_blocks": 1})
    with pytest.raises(ValueError, match="unexpected key"):
        load_imagebind(tiny["checkpoint"], deeper, ["imu"])


def test_file_that_is_not_a_state_dict_is_rejected(tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="does not look like an ImageBind checkpoint"):
        load_imagebind(other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_imagebind(junk)


@pytest.mark.parametrize(
    ("kind", "bad", "message"),
    [
        ("image", torch.zeros(3, 224, 224), "add a batch axis"),
        ("image", torch.zeros(1, 3, 112, 112), r"\(B, 3, 224, 224\)"),
        ("video", torch.zeros(1, 3, 2, 224, 224), "clips"),
        ("text", torch.zeros(1, 77), "integer token ids"),
        ("text", torch.full((1, 77), 49408), "token ids must lie"),
        ("audio", torch.zeros(1, 1, 128, 204), "clips"),
        ("imu", torch.zeros(1, 2000, 6), r"\(B, 6, 2000\)"),
    ],
)
def test_wrong_input_shape_is_rejected(kind: str, bad: torch.Tensor, message: str, model: ImageBindModel) -> None:
    with pytest.raises(ValueError, match=message):
        model.embed(kind, bad)


def test_a_batch_larger_than_one_pass_gives_each_row_its_own_vector(tiny: dict, model: ImageBindModel) -> None:
    from bindsearch.models.imagebind.model import TOKENS_PER_PASS

    per_pass = TOKENS_PER_PASS // model.config.num_tokens("vision")
    x = torch.randn(2 * per_pass + 3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    whole = model.embed("image", x)  # three passes, the last one short
    alone = torch.cat([model.embed("image", x[i:i + 1]) for i in range(x.shape[0])])
    assert whole.shape == alone.shape and (whole - alone).abs().max().item() < 1e-5
