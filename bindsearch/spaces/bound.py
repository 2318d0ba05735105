"""Bound spaces: a base space plus towers taught with ``bindsearch bind``.

Spec (the ``space.json`` that ``bind`` writes)::

    {"model": "bound",
     "base": {...the base space's spec...} | "imagebind-huge" | "path/to/space.json",
     "towers": {"vibration": {"input": "timeseries", "arch": {...}, "settings": {...},
                              "checkpoint": "vibration.pt", "logit_scale": 14.3}}}

Each tower embeds one modality: a new one (its name is then a modality of this
space, its files told by a folder or an inner extension of that name), or one
of the base's, whose tower it replaces. Every other modality is the base's,
untouched, and so are its vectors: ``modality_fingerprint`` tells a library
which of its modalities a change of space leaves as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpaceError, first_line
from ..modality import DEFAULT_NAMING, INPUT_EXTENSIONS, Modality, Naming, is_modality_name
from .base import Encoder, Space, resolve_relative
from .checkpoint import checkpoint_identity
from .precision import check_space_precision, choose_precision
from .registry import register_space_kind
from .torch_runtime import pick_device

# The built-in modalities whose tower ``bind`` can fine-tune, and the ImageBind tower of each.
TUNABLE = {Modality.AUDIO: "audio", Modality.DEPTH: "depth", Modality.THERMAL: "thermal", Modality.IMU: "imu"}
_TOWER_FIELDS = {"input", "arch", "settings", "checkpoint", "logit_scale"}


@dataclass(frozen=True)
class TowerSpec:
    """One tower of a bound space, as its space file says (the checkpoint an absolute path)."""

    modality: Modality
    input: str  # timeseries | image1 | audio (a new tower); or the built-in modality it fine-tunes
    arch: dict[str, Any]  # {"design": "new", ...NewTowerArch} or {"design": "imagebind", "tower": ..., "config": ...}
    settings: dict[str, Any]
    checkpoint: str
    logit_scale: float

    @property
    def is_new(self) -> bool:
        return self.arch.get("design") == "new"

    def to_spec(self, relative_to: Path | None = None) -> dict[str, Any]:
        checkpoint = self.checkpoint
        if relative_to is not None:
            checkpoint = os.path.relpath(checkpoint, relative_to)
        return {"input": self.input, "arch": self.arch, "settings": self.settings, "checkpoint": checkpoint,
                "logit_scale": self.logit_scale}


def parse_tower(name: str, data: Any, base_dir: Path | None) -> TowerSpec:
    """A tower of a space file, checked; SpaceError naming what is wrong."""
    if not is_modality_name(name):
        raise SpaceError(f"bound tower name {name!r} is not a modality name (lower-case letters, digits and _)")
    if not isinstance(data, dict):
        raise SpaceError(f"bound tower {name!r} must be an object")
    unknown = set(data) - _TOWER_FIELDS
    missing = {"input", "arch", "checkpoint"} - set(data)
    if unknown or missing:
        problem = f"unknown field(s) {', '.join(sorted(unknown))}" if unknown else \
            f"missing field(s) {', '.join(sorted(missing))}"
        raise SpaceError(f"bound tower {name!r}: {problem}")
    modality = Modality(name)
    arch, settings = data["arch"], data.get("settings") or {}
    if not isinstance(arch, dict) or arch.get("design") not in ("new", "imagebind"):
        raise SpaceError(f'bound tower {name!r}: "arch" must be an object with "design": "new" or "imagebind"')
    if not isinstance(settings, dict):
        raise SpaceError(f'bound tower {name!r}: "settings" must be an object')
    kind = data["input"]
    if arch["design"] == "new" and kind not in INPUT_EXTENSIONS:
        raise SpaceError(f"bound tower {name!r}: input must be one of {', '.join(INPUT_EXTENSIONS)}, got {kind!r}")
    if arch["design"] == "imagebind" and (modality not in TUNABLE or kind != modality.value):
        raise SpaceError(f"bound tower {name!r}: only {', '.join(TUNABLE)} towers of ImageBind can be fine-tuned")
    checkpoint = data["checkpoint"]
    if not isinstance(checkpoint, str) or not checkpoint:
        raise SpaceError(f'bound tower {name!r}: "checkpoint" must be a file path')
    scale = data.get("logit_scale", 100.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale < 1e4:
        raise SpaceError(f'bound tower {name!r}: "logit_scale" must be a positive number')
    return TowerSpec(modality, kind, arch, settings, resolve_relative(checkpoint, base_dir), float(scale))


@register_space_kind
class BoundSpace(Space):
    """A base space with towers added or replaced; everything else is the base's."""

    kind = "bound"

    def __init__(self, base: Space, towers: Sequence[TowerSpec], *, precision: str | None = None) -> None:
        if isinstance(base, BoundSpace):  # one level: a bound space of a bound space is the root's, with both's towers
            towers = [*[t for t in base.towers.values() if t.modality not in {x.modality for x in towers}], *towers]
            base = base.base
        if Modality.IMAGE not in base.modalities:
            raise SpaceError(f"space {base.name} has no image tower: a tower is bound to a space's image embeddings")
        self.base = base
        self.towers: dict[Modality, TowerSpec] = {t.modality: t for t in towers}
        for tower in towers:
            if tower.modality in base.modalities and tower.is_new:
                raise SpaceError(f"space {base.name} has a {tower.modality} tower already: a new one needs another "
                                 "name (or fine-tune it)")
        self._precision_given = check_space_precision(precision)
        self._modalities = frozenset(base.modalities) | frozenset(self.towers)
        self._lock = threading.Lock()
        self._loaded: dict[Modality, Any] = {}

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_name(cls, name: str) -> BoundSpace | None:
        return None

    @classmethod
    def name_help(cls) -> str:
        return "a space file written by bindsearch bind"

    @classmethod
    def from_spec(cls, spec: dict[str, Any], base_dir: Path | None = None, *, stored: bool = False) -> BoundSpace:
        from .registry import load_space, space_from_spec

        unknown = set(spec) - {"model", "base", "towers", "precision"}
        if unknown:
            raise SpaceError(f"unknown field(s) in bound space: {', '.join(sorted(unknown))}")
        base_given = spec.get("base")
        if isinstance(base_given, dict):
            base = space_from_spec(base_given, base_dir, "bound space base", stored=stored)
        elif isinstance(base_given, str) and base_given:
            path = Path(resolve_relative(base_given, base_dir)) if base_given.endswith(".json") else None
            base = load_space(path if path is not None else base_given)
        else:
            raise SpaceError('bound space needs "base": a space spec, a built-in space name or a space file')
        towers = spec.get("towers")
        if not isinstance(towers, dict) or not towers:
            raise SpaceError('bound space needs "towers": an object of one tower per modality')
        return cls(base, [parse_tower(n, t, base_dir) for n, t in towers.items()], precision=spec.get("precision"))

    @classmethod
    def from_stored_spec(cls, spec: dict[str, Any]) -> BoundSpace:
        return cls.from_spec(spec, None, stored=True)

    def spec_relative_to(self, folder: Path | None) -> dict[str, Any]:
        """The spec, tower checkpoints relative to ``folder`` (a space file kept beside them)."""
        out: dict[str, Any] = {"model": self.kind, "base": self.base.spec,
                               "towers": {m.value: t.to_spec(folder) for m, t in self.towers.items()}}
        if self._precision_given is not None:
            out["precision"] = self._precision_given
        return out

    # -- identity -------------------------------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        return self.spec_relative_to(None)

    @property
    def name(self) -> str:
        return f"{self.base.name}+{'+'.join(sorted(m.value for m in self.towers))}"

    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def modalities(self) -> frozenset[Modality]:
        return self._modalities

    @property
    def naming(self) -> Naming:
        added = [(m, INPUT_EXTENSIONS[t.input]) for m, t in self.towers.items() if t.is_new]
        return DEFAULT_NAMING.with_modalities(sorted(added))

    def input_kind(self, modality: Modality | str) -> str:
        modality = Modality.parse(modality)
        tower = self.towers.get(modality)
        return tower.input if tower is not None else self.base.input_kind(modality)

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"model": self.kind, "base": self.base.fingerprint,
                "towers": {m.value: self._tower_identity(t) for m, t in sorted(self.towers.items())}}

    def modality_fingerprint(self, modality: Modality | str) -> str:
        modality = Modality.parse(modality)
        tower = self.towers.get(modality)
        if tower is None:
            return self.base.modality_fingerprint(modality)
        canonical = json.dumps(self._tower_identity(tower), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def root_fingerprint(self) -> str:
        return self.base.fingerprint

    def _tower_identity(self, tower: TowerSpec) -> dict[str, Any]:
        return {"input": tower.input, "arch": tower.arch, "settings": tower.settings, "dim": self.dim,
                "checkpoint": checkpoint_identity(tower.checkpoint)}

    # -- running ----------------------------------------------------------------------

    @property
    def device(self) -> str:
        return getattr(self.base, "device", None) or pick_device()

    @property
    def precision(self) -> str:
        if self._precision_given is None:
            return self.base.precision
        return choose_precision(self.device, self._precision_given)

    def private_weight_bytes(self, modalities: Sequence[Modality]) -> int:
        return self.base.private_weight_bytes([m for m in modalities if m not in self.towers])

    def logit_scale(self, modality: Modality | str) -> float:
        """A bound tower's learned temperature against images (what ``bind`` trained); else the base's."""
        modality = Modality.parse(modality)
        tower = self.towers.get(modality)
        return tower.logit_scale if tower is not None else self.base.logit_scale(modality)

    def tower_module(self, modality: Modality) -> Any:
        """The torch module of a bound tower, its weights loaded (once) on the space's device."""
        with self._lock:
            if modality not in self._loaded:
                self._loaded[modality] = load_tower_module(self.towers[modality], self.device, self.precision)
            return self._loaded[modality]

    def _make_encoder(self, modality: Modality) -> Encoder:
        tower = self.towers.get(modality)
        if tower is None:
            return self.base.encoder(modality)
        from .bound_encoder import BoundEncoder

        base_encoder = self.base.encoder(modality) if modality in self.base.modalities else None
        return BoundEncoder(self, tower, base_encoder)


def load_tower_module(tower: TowerSpec, device: str, precision: str) -> Any:
    """Build a tower's module from its spec and load its checkpoint; SpaceError for a bad file."""
    import torch

    from ..models.imagebind.bound_tower import build_tower_of
    from ..models.imagebind.precision import set_matmul_dtype

    if not os.path.isfile(tower.checkpoint):
        raise SpaceError(f"tower checkpoint not found: {tower.checkpoint} (the {tower.modality} tower of a "
                         "bound space)")
    try:
        module = build_tower_of(tower.modality.value, tower.arch)
        state = torch.load(tower.checkpoint, map_location="cpu", weights_only=True)
        module.load_state_dict(state.get("state_dict", state))
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as exc:
        raise SpaceError(f"cannot load the {tower.modality} tower from {tower.checkpoint}: {first_line(exc)}") from None
    module.eval().to(device)
    if precision != "fp32":
        set_matmul_dtype(module.trunk, {"bf16": torch.bfloat16, "fp16": torch.float16}[precision])
    return module
