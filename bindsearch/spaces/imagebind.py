"""ImageBind spaces: one checkpoint embeds image, video, text, audio, depth, thermal and IMU data.

Spec (a space file, or the built-in name ``imagebind-huge``)::

    {"model": "imagebind",
     "checkpoint": "imagebind_huge.pth" | "https://.../imagebind_huge.pth" | null,
     "config": {"out_embed_dim": 1024, ...},      # optional: the official constructor's arguments
     "depth": {...}, "thermal": {...}, "imu": {...},   # optional: loader settings
     "precision": "auto" | "fp32" | "bf16" | "fp16"}   # optional: see spaces.precision

A relative checkpoint path is relative to the space file; a URL is downloaded
once into the user cache; ``null`` gives random weights fixed by ``"seed"``
(for tests and demos only). Towers load lazily: a text query reads only the text
tower's weights from the (memory-mapped) checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpaceError, first_line
from ..modality import BUILTIN_MODALITIES, Modality
from ..paths import cache_dir
from .base import Encoder, Space, resolve_relative
from .checkpoint import checkpoint_identity
from .precision import check_space_precision, choose_precision
from .registry import register_space_kind
from .torch_runtime import pick_device

log = logging.getLogger("bindsearch")

BUILTIN_NAME = "imagebind-huge"
HUGE_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
LICENCE = "the ImageBind weights are licensed CC BY-NC-SA 4.0 (non-commercial use only)"

# Which tower of the model embeds each modality.
_TOWER = {
    Modality.IMAGE: "vision",
    Modality.VIDEO: "vision",
    Modality.TEXT: "text",
    Modality.AUDIO: "audio",
    Modality.DEPTH: "depth",
    Modality.THERMAL: "thermal",
    Modality.IMU: "imu",
}
_SENSOR_SETTINGS = ("depth", "thermal", "imu")
_ALL_MODALITIES = frozenset(BUILTIN_MODALITIES)


@register_space_kind
class ImageBindSpace(Space):
    """The seven modalities of one ImageBind checkpoint."""

    kind = "imagebind"

    def __init__(
        self,
        checkpoint: str | None,
        config: dict[str, Any] | None = None,
        settings: dict[str, dict[str, Any]] | None = None,
        device: str | None = None,
        seed: int = 0,
        *,
        precision: str | None = None,
        check: bool = True,
    ) -> None:
        # The config and the loader settings are parsed (and checked) by classes whose
        # modules import torch: with check=False (a library's own, already checked
        # spec) that waits until something needs them, so that a run with nothing to
        # embed never imports torch.
        self._config_given = config or {}
        self._settings_given = settings or {}
        self._config: Any = None
        self._settings: dict[str, Any] | None = None
        self.checkpoint = checkpoint
        self.seed = int(seed)
        self._device = device
        self._precision_given = check_space_precision(precision)
        self._model: Any = None
        self._lock = threading.Lock()
        if check:
            self.config  # noqa: B018  (parse now: a bad value fails here, not at the first embedding)
            self.settings  # noqa: B018

    @property
    def config(self) -> Any:
        """The architecture (an ``ImageBindConfig``), parsed on first use."""
        if self._config is None:
            from ..models.imagebind.config import ImageBindConfig

            try:
                self._config = ImageBindConfig.from_dict(self._config_given)
            except ValueError as exc:
                raise SpaceError(f"invalid ImageBind config: {exc}") from None
        return self._config

    @property
    def settings(self) -> dict[str, Any]:
        """Loader settings of the depth, thermal and IMU modalities, parsed on first use."""
        if self._settings is None:
            self._settings = _parse_settings(self._settings_given)
        return self._settings

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_name(cls, name: str) -> ImageBindSpace | None:
        return cls(HUGE_URL) if name == BUILTIN_NAME else None

    @classmethod
    def name_help(cls) -> str:
        return BUILTIN_NAME

    @classmethod
    def from_spec(cls, spec: dict[str, Any], base_dir: Path | None = None, *, check: bool = True) -> ImageBindSpace:
        """Build from a space file's object; ``check=False`` defers parsing the config and settings to first use."""
        unknown = set(spec) - {"model", "checkpoint", "config", "seed", "precision", *_SENSOR_SETTINGS}
        if unknown:
            raise SpaceError(f"unknown field(s) in imagebind space: {', '.join(sorted(unknown))}")
        if "checkpoint" not in spec:
            raise SpaceError('imagebind space needs "checkpoint": a checkpoint file path, a URL, or null')
        checkpoint = spec["checkpoint"]
        if checkpoint is not None and (not isinstance(checkpoint, str) or not checkpoint):
            raise SpaceError('"checkpoint" must be a checkpoint file path, a URL, or null for random weights')
        if checkpoint is not None and not _is_url(checkpoint):
            checkpoint = resolve_relative(checkpoint, base_dir)
        seed = spec.get("seed", 0)
        if not isinstance(seed, int):
            raise SpaceError('"seed" must be an integer')
        config = spec.get("config")
        if config is not None and not isinstance(config, dict):
            raise SpaceError('"config" must be an object of ImageBind constructor arguments')
        settings = {key: spec[key] for key in _SENSOR_SETTINGS if key in spec}
        return cls(checkpoint, config, settings, seed=seed, precision=spec.get("precision"), check=check)

    @classmethod
    def from_stored_spec(cls, spec: dict[str, Any]) -> ImageBindSpace:
        """A library's own spec (written from a checked space): parsed lazily, so opening imports no torch."""
        return cls.from_spec(spec, None, check=False)

    # -- identity -----------------------------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.kind, "checkpoint": self.checkpoint}
        if self.checkpoint is None:
            out["seed"] = self.seed
        custom = _non_default_config(self.config)
        if custom:
            out["config"] = custom
        for key in _SENSOR_SETTINGS:
            if self._custom_settings.get(key):
                out[key] = self._custom_settings[key]
        if self._precision_given is not None:
            out["precision"] = self._precision_given
        return out

    @property
    def name(self) -> str:
        if self.checkpoint == HUGE_URL and not _non_default_config(self.config):
            return BUILTIN_NAME
        if self.checkpoint is None:
            return f"imagebind:random(seed={self.seed})"
        return f"imagebind:{os.path.basename(self.checkpoint.split('?')[0])}"

    @property
    def dim(self) -> int:
        return int(self.config.out_embed_dim)

    @property
    def modalities(self) -> frozenset[Modality]:
        return _ALL_MODALITIES  # one set, not a new one per call: an indexing run asks once per file

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "model": self.kind,
            "arch": self.config.to_dict(),
            "checkpoint": (
                f"random:seed={self.seed}"
                if self.checkpoint is None
                else "file:" + checkpoint_identity(self.checkpoint_path())
            ),
            "dim": self.dim,
            # Loader settings change the vectors of their modality, so they are part of the identity.
            "preprocess": {key: asdict(value) for key, value in self.settings.items()},
        }

    @property
    def _custom_settings(self) -> dict[str, dict[str, Any]]:
        out = {}
        for key, value in self.settings.items():
            default = type(value)()
            out[key] = {k: v for k, v in asdict(value).items() if asdict(default)[k] != v}
        return out

    # -- weights ------------------------------------------------------------------

    def checkpoint_path(self) -> str:
        """The local checkpoint file, downloaded into the user cache first if the spec names a URL."""
        if self.checkpoint is None:
            raise SpaceError(f"space {self.name} has random weights and no checkpoint file")
        if not _is_url(self.checkpoint):
            if not os.path.isfile(self.checkpoint):
                raise SpaceError(
                    f"checkpoint file not found: {self.checkpoint} (the official one is {HUGE_URL}, about 4.5 GB)"
                )
            return self.checkpoint
        dest = cache_dir() / "imagebind" / os.path.basename(self.checkpoint.split("?")[0])
        if dest.is_file():
            return str(dest)
        hint = (
            f"download it on a machine with internet (about 4.5 GB for the huge model), then use a space file: "
            f'{{"model": "imagebind", "checkpoint": "/path/to/{dest.name}"}}'
        )
        if os.environ.get("BINDSEARCH_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise SpaceError(f"the ImageBind checkpoint is not in the cache and BINDSEARCH_OFFLINE is set; {hint}")
        from .download import download

        log.warning("downloading %s into %s; %s", self.checkpoint, dest.parent, LICENCE)
        return str(download(self.checkpoint, dest, what="the ImageBind checkpoint", offline_hint=hint))

    @property
    def device(self) -> str:
        return self._device or pick_device()

    @property
    def precision(self) -> str:
        return choose_precision(self.device, self._precision_given)

    def private_weight_bytes(self, modalities: Sequence[Modality]) -> int:
        """The trunks' bf16/fp16 copies of the towers of ``modalities``: 2 bytes a weight (float32 weights stay
        the checkpoint's memory-mapped pages). A block holds 12 d^2 weights: 4 d^2 in attention, 8 d^2 in its MLP."""
        if self.precision == "fp32":
            return 0
        towers = {_TOWER[m] for m in modalities}
        return sum(2 * 12 * self.config.embed_dim(t) ** 2 * self.config.num_blocks(t) for t in towers)

    def model_for(self, modality: Modality) -> Any:
        """The model with the tower of ``modality`` loaded (and no other tower it did not need)."""
        from ..models.imagebind import ImageBindModel

        tower = _TOWER[modality]
        with self._lock:
            if self._model is None:
                self._model = ImageBindModel(self.config)
            if not self._model.is_built(tower) and self.checkpoint is None:
                self._build_random(tower)
            elif not self._model.is_built(tower):
                path = self.checkpoint_path()
                try:
                    self._model.load_checkpoint(path, [tower], device=self.device, dtype=self.precision)
                except (ValueError, RuntimeError, OSError) as exc:
                    raise SpaceError(f"cannot load the {tower} tower from {path}: {first_line(exc)}") from None
            return self._model

    def logit_scale(self, modality: Modality | str) -> float:
        """The text tower's scale times ``modality``'s (vision has none): what the official outputs,
        each scaled by its postprocessor, give as the logit of a (modality, text) pair."""
        modality = Modality.parse(modality)
        text = _postprocessor_scale(self.model_for(Modality.TEXT), "text")
        if modality is Modality.TEXT:
            return text
        return text * _postprocessor_scale(self.model_for(modality), _TOWER[modality])

    def _build_random(self, tower: str) -> None:
        import torch

        from ..models.imagebind.config import MODALITIES

        if not self._model.built_modalities:
            log.warning(
                "space %s has RANDOM weights (checkpoint: null): its vectors mean nothing; "
                "use it for tests and demos only",
                self.name,
            )
        # One seed per tower, so a tower's weights do not depend on which towers were built before it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1000 + MODALITIES.index(tower))
            self._model.tower(tower)
        self._model.tower(tower).to(self.device)
        self._model.set_precision(self.precision, [tower])

    # -- encoders -------------------------------------------------------------------

    def _make_encoder(self, modality: Modality) -> Encoder:
        return ImageBindEncoder(self, modality, self._loader(modality))

    def _loader(self, modality: Modality) -> Callable[[Any], Any]:
        from .. import preprocess  # noqa: F401  (package import keeps the loaders lazy)

        if modality is Modality.IMAGE:
            return _load_image
        if modality is Modality.TEXT:
            return _load_text
        if modality is Modality.AUDIO:
            return _load_audio
        if modality is Modality.VIDEO:
            return _load_video
        if modality is Modality.DEPTH:
            settings = self.settings["depth"]
            return lambda source: _load_sensor("depth", source, settings)
        if modality is Modality.THERMAL:
            settings = self.settings["thermal"]
            return lambda source: _load_sensor("thermal", source, settings)
        settings = self.settings["imu"]
        return lambda source: _load_sensor("imu", source, settings)


class ImageBindEncoder(Encoder):
    """One modality of an ImageBind space: a loader for ``prepare`` and the modality's tower for ``embed_batch``."""

    def __init__(self, space: ImageBindSpace, modality: Modality, loader: Callable[[Any], Any]) -> None:
        self.space = space
        self.modality = modality
        self.dim = space.dim
        self._loader = loader
        self.embeds_clips = modality in (Modality.AUDIO, Modality.VIDEO)

    def prepare(self, source: Any) -> Any:
        return self._loader(source)

    def embed_batch(self, prepared: Sequence[Any]) -> np.ndarray:
        import torch

        from ..vectors import l2_normalize

        if len(prepared) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.space.model_for(self.modality)
        device = self.space.device
        if self.modality is Modality.IMU:
            # IMU items may hold several 2000-step windows: embed all, then average each item's windows.
            counts = [int(p.shape[0]) for p in prepared]
            out = model.embed("imu", torch.cat(list(prepared)).to(device))
            parts = torch.split(out, counts)
            vectors = torch.stack([part.mean(dim=0) for part in parts])
        else:
            vectors = model.embed(_KIND[self.modality], torch.stack(list(prepared)).to(device))
        return l2_normalize(vectors.float().cpu().numpy())

    # -- clips of long audio and video ------------------------------------------------

    def duration(self, source: Any) -> float | None:
        if self.modality is Modality.AUDIO:
            from ..loaders.audio import audio_duration

            return audio_duration(os.fspath(source))  # a video's soundtrack too
        if self.modality is Modality.VIDEO:
            from ..loaders.video import video_duration

            return video_duration(os.fspath(source))
        return super().duration(source)

    def prepare_clips(self, source: Any, clips: Sequence[tuple[float, float]]) -> Any:
        from ..preprocess.files import audio_file_clips_to_input, video_file_clips_to_input

        if self.modality is Modality.AUDIO:
            return audio_file_clips_to_input(os.fspath(source), list(clips))
        if self.modality is Modality.VIDEO:
            return video_file_clips_to_input(os.fspath(source), list(clips))
        return super().prepare_clips(source, clips)

    def embed_clips(self, prepared: Any) -> np.ndarray:
        import torch

        from ..vectors import l2_normalize

        if not self.embeds_clips:
            return super().embed_clips(prepared)
        model = self.space.model_for(self.modality)
        clips = torch.as_tensor(prepared).to(self.space.device)
        # Each clip is an item of one clip: (clips, 1, ...) gives one vector per clip.
        vectors = model.embed(_KIND[self.modality], clips.unsqueeze(1))
        return l2_normalize(vectors.float().cpu().numpy())


_KIND = {Modality.IMAGE: "image", Modality.VIDEO: "video", Modality.TEXT: "text", Modality.AUDIO: "audio",
         Modality.DEPTH: "depth", Modality.THERMAL: "thermal"}


def _load_image(source: Any) -> Any:
    from PIL import Image

    from ..loaders.image import to_rgb
    from ..preprocess.files import image_file_to_input
    from ..preprocess.image import image_to_tensor

    if isinstance(source, Image.Image):
        return image_to_tensor(to_rgb(source))
    return image_file_to_input(os.fspath(source))


def _load_text(source: Any) -> Any:
    from ..loaders.text import load_text
    from ..preprocess.text import tokenize

    text = load_text(os.fspath(source), 16 * 1024) if isinstance(source, Path) else str(source)
    return tokenize(text)[0]


def _load_audio(source: Any) -> Any:
    from ..errors import NothingToEmbed
    from ..loaders.audio import has_audio_stream
    from ..modality import modality_from_path
    from ..preprocess.files import audio_file_to_input

    path = os.fspath(source)
    # A video's soundtrack is indexed as audio; a silent video simply has none.
    if modality_from_path(path) is Modality.VIDEO and not has_audio_stream(path):
        raise NothingToEmbed(path, "no soundtrack")
    return audio_file_to_input(path)


def _load_video(source: Any) -> Any:
    from ..preprocess.files import video_file_to_input

    return video_file_to_input(os.fspath(source))


def _load_sensor(kind: str, source: Any, settings: Any) -> Any:
    import torch

    if kind == "depth":
        from ..loaders.depth import load_depth as load
    elif kind == "thermal":
        from ..loaders.thermal import load_thermal as load
    else:
        from ..loaders.imu import load_imu as load
    return torch.as_tensor(load(os.fspath(source), settings))


def _postprocessor_scale(model: Any, tower: str) -> float:
    """exp(log_logit_scale) of a tower's postprocessor (Normalize, then the scale), 1 where it has none."""
    post = model.tower(tower).postprocessor
    return float(post[1].log_logit_scale.exp()) if len(post) > 1 else 1.0


def _parse_settings(given: dict[str, Any]) -> dict[str, Any]:
    from ..loaders.sensor_settings import DepthSettings, ImuSettings, ThermalSettings

    classes = {"depth": DepthSettings, "thermal": ThermalSettings, "imu": ImuSettings}
    out = {}
    for key, cls in classes.items():
        value = given.get(key) or {}
        if not isinstance(value, dict):
            raise SpaceError(f'"{key}" must be an object of {key} loader settings')
        try:
            out[key] = cls.from_dict(value)
        except ValueError as exc:
            raise SpaceError(f"invalid {key} settings: {exc}") from None
    return out


def _non_default_config(config: Any) -> dict[str, Any]:
    from ..models.imagebind.config import ImageBindConfig

    default = ImageBindConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if default.get(k) != v}


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))

