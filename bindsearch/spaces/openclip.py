"""OpenCLIP spaces: image and text encoders of any OpenCLIP architecture and checkpoint.

Spec (a space file or the parsed built-in name ``openclip:ARCH/TAG``)::

    {"model": "openclip", "arch": "ViT-B-32" | {inline model config},
     "pretrained": "laion2b_s34b_b79k" | "path/to/checkpoint.bin" | null,
     "seed": 0, "precision": "auto"}

Under bf16 or fp16 (see ``spaces.precision``) the model runs in ``torch.autocast``: its
matrix products in the low dtype, its weights and LayerNorms in float32.

With ``pretrained: null`` the weights are random but fixed by ``seed``: such a
space is for tests and demos only.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MediaError, SpaceError, first_line
from ..modality import Modality
from ..paths import cache_dir
from .base import Encoder, Space, resolve_relative
from .checkpoint import checkpoint_identity
from .precision import check_space_precision, choose_precision
from .registry import register_space_kind
from .torch_runtime import pick_device

log = logging.getLogger("bindsearch")

PREFIX = "openclip:"
_TEXT_FILE_BYTES = 16 * 1024  # far more than a 77-token context needs
_MODALITIES = frozenset({Modality.IMAGE, Modality.TEXT})


@register_space_kind
class OpenClipSpace(Space):
    """Image and text encoders from one OpenCLIP model."""

    kind = "openclip"

    def __init__(
        self,
        arch: str | dict[str, Any],
        pretrained: str | None,
        seed: int = 0,
        device: str | None = None,
        *,
        precision: str | None = None,
    ) -> None:
        self.arch = arch
        self.pretrained = pretrained
        self.seed = int(seed)
        self._device = device
        self._precision_given = check_space_precision(precision)
        self._model: Any = None
        self._load_lock = threading.Lock()
        if isinstance(arch, dict):
            _check_inline_config(arch)
            if pretrained is not None and not _looks_like_path(pretrained):
                raise SpaceError(
                    f"pretrained tag '{pretrained}' needs a named architecture; "
                    "with an inline config give a checkpoint file path or null"
                )

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_name(cls, name: str) -> OpenClipSpace | None:
        if not name.startswith(PREFIX):
            return None
        arch, sep, tag = name[len(PREFIX) :].partition("/")
        if not arch or not sep or not tag:
            raise SpaceError(f"OpenCLIP space names look like {cls.name_help()} (got '{name}')")
        return cls(arch, tag)

    @classmethod
    def name_help(cls) -> str:
        return "openclip:ARCH/TAG, e.g. openclip:ViT-B-32/laion2b_s34b_b79k"

    @classmethod
    def from_spec(cls, spec: dict[str, Any], base_dir: Path | None = None) -> OpenClipSpace:
        unknown = set(spec) - {"model", "arch", "pretrained", "seed", "precision"}
        if unknown:
            raise SpaceError(f"unknown field(s) in openclip space: {', '.join(sorted(unknown))}")
        arch = spec.get("arch")
        if not isinstance(arch, (str, dict)) or not arch:
            raise SpaceError('openclip space needs "arch": an OpenCLIP architecture name or a model config object')
        if "pretrained" not in spec:
            raise SpaceError('openclip space needs "pretrained": a tag, a checkpoint path, or null for random weights')
        pretrained = spec["pretrained"]
        if pretrained is not None and not isinstance(pretrained, str):
            raise SpaceError('"pretrained" must be a string or null')
        if isinstance(pretrained, str) and isinstance(arch, dict) and not _looks_like_path(pretrained):
            if not (base_dir or Path.cwd()).joinpath(pretrained).is_file():
                raise SpaceError(
                    f"pretrained tag '{pretrained}' needs a named architecture; "
                    "with an inline config give a checkpoint file path or null"
                )
        if pretrained is not None and (isinstance(arch, dict) or _looks_like_path(pretrained)):
            pretrained = resolve_relative(pretrained, base_dir)
        elif isinstance(pretrained, str) and isinstance(arch, str) and base_dir is not None:
            candidate = base_dir / pretrained
            if candidate.is_file():
                pretrained = str(candidate.resolve())
        seed = spec.get("seed", 0)
        if not isinstance(seed, int):
            raise SpaceError('"seed" must be an integer')
        return cls(arch, pretrained, seed, precision=spec.get("precision"))

    # -- identity -------------------------------------------------------------

    @property
    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.kind, "arch": copy.deepcopy(self.arch), "pretrained": self.pretrained}
        if self.pretrained is None:
            out["seed"] = self.seed
        if self._precision_given is not None:
            out["precision"] = self._precision_given
        return out

    @property
    def name(self) -> str:
        arch = self.arch if isinstance(self.arch, str) else "inline-config"
        if self.pretrained is None:
            weights = f"random(seed={self.seed})"
        elif self._pretrained_is_file:
            weights = os.path.basename(self.pretrained)
        else:
            weights = self.pretrained
        return f"{PREFIX}{arch}/{weights}"

    @cached_property
    def model_config(self) -> dict[str, Any]:
        """The architecture as an OpenCLIP model config dict."""
        if isinstance(self.arch, dict):
            return copy.deepcopy(self.arch)
        import open_clip

        config = open_clip.get_model_config(self.arch)
        if config is None:
            close = [m for m in open_clip.list_models() if self.arch.lower() in m.lower()][:8]
            hint = f" (did you mean: {', '.join(close)}?)" if close else " (see open_clip.list_models())"
            raise SpaceError(f"unknown OpenCLIP architecture '{self.arch}'{hint}")
        return config

    @property
    def dim(self) -> int:
        return int(self.model_config["embed_dim"])

    @property
    def modalities(self) -> frozenset[Modality]:
        return _MODALITIES  # one set, not a new one per call: an indexing run asks once per file

    def fingerprint_parts(self) -> dict[str, Any]:
        if self.pretrained is None:
            checkpoint = f"random:seed={self.seed}"
        elif self._pretrained_is_file:
            checkpoint = "file:" + checkpoint_identity(self.pretrained)
        else:
            checkpoint = f"tag:{self.arch}/{self.pretrained}"
        return {"model": self.kind, "arch": self.model_config, "checkpoint": checkpoint, "dim": self.dim}

    def logit_scale(self, modality: Modality | str) -> float:
        """The model's learned temperature (``exp(logit_scale)``), shared by its image and text towers."""
        import torch

        with torch.no_grad():
            return float(self.model().logit_scale.exp())

    @property
    def _pretrained_is_file(self) -> bool:
        return self.pretrained is not None and (isinstance(self.arch, dict) or _looks_like_path(self.pretrained))

    # -- encoders -------------------------------------------------------------

    def _make_encoder(self, modality: Modality) -> Encoder:
        if modality is Modality.IMAGE:
            return OpenClipImageEncoder(self)
        return OpenClipTextEncoder(self)

    @property
    def device(self) -> str:
        return self._device or pick_device()

    @property
    def precision(self) -> str:
        return choose_precision(self.device, self._precision_given)

    @cached_property
    def preprocess_config(self) -> dict[str, Any]:
        """Image size, mean, std, interpolation and resize mode for this model."""
        from open_clip.transform import PreprocessCfg

        cfg = {
            "size": self.model_config["vision_cfg"].get("image_size", 224),
            "mean": PreprocessCfg().mean,
            "std": PreprocessCfg().std,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }
        if self.pretrained is not None and not self._pretrained_is_file:
            tag_cfg = self._tag_config()
            for key in ("mean", "std", "interpolation", "resize_mode"):
                if tag_cfg.get(key):
                    cfg[key] = tag_cfg[key]
        return cfg

    def _tag_config(self) -> dict[str, Any]:
        import open_clip

        tag_cfg = open_clip.get_pretrained_cfg(str(self.arch), self.pretrained)
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(str(self.arch))
            known = ", ".join(tags) if tags else "none; give a checkpoint file path instead"
            raise SpaceError(
                f"'{self.pretrained}' is neither a checkpoint file nor an OpenCLIP tag of {self.arch} (tags: {known})"
            )
        return tag_cfg

    def model(self) -> Any:
        """The loaded OpenCLIP model (built and loaded on first call, then shared)."""
        with self._load_lock:
            if self._model is None:
                self._model = self._load_model()
            return self._model

    def _load_model(self) -> Any:
        import open_clip
        import torch

        from ..models.state_file import code_in_pickle, load_error_message, load_failure

        checkpoint = self._checkpoint_path()
        config = copy.deepcopy(self.model_config)
        custom_text = config.pop("custom_text", False) or "hf_model_name" in config.get("text_cfg", {})
        if "hf_model_name" in config.get("text_cfg", {}):
            config["text_cfg"]["hf_model_pretrained"] = False
        model_class = open_clip.CLIP
        if custom_text:
            model_class = open_clip.CoCa if "multimodal_cfg" in config else open_clip.CustomTextCLIP
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            try:
                model = model_class(**config)
            except (TypeError, KeyError, ValueError, AssertionError) as exc:
                raise SpaceError(f"invalid OpenCLIP model config: {exc}") from None
        if checkpoint is None:
            log.warning(
                "space %s has RANDOM weights (pretrained: null): its vectors mean nothing; "
                "use it for tests and demos only",
                self.name,
            )
        else:
            try:
                with warnings.catch_warnings():  # torch's pickle-protocol warning precedes a refusal said below
                    warnings.simplefilter("ignore", UserWarning)
                    open_clip.load_checkpoint(model, checkpoint, strict=True, weights_only=True)
            except Exception as exc:  # torch raises a variety of types for bad checkpoints
                if code_in_pickle(exc):
                    raise SpaceError(load_error_message(checkpoint, exc)) from None
                raise SpaceError(f"cannot load checkpoint {checkpoint} into {self.name}: {load_failure(exc)}") from None
        model.eval()
        return model.to(self.device)

    def _checkpoint_path(self) -> str | None:
        if self.pretrained is None:
            return None
        if self._pretrained_is_file:
            if not os.path.isfile(self.pretrained):
                raise SpaceError(f"checkpoint file not found: {self.pretrained}")
            return self.pretrained
        return self._download()

    def _download(self) -> str:
        """The checkpoint of an OpenCLIP tag, from the user cache or downloaded into it."""
        sources = checkpoint_sources(self._tag_config())
        filename = os.path.basename(sources[0][1])
        hint = (
            f"download {sources[0][0]} on a machine with internet, then use a space file: "
            f'{{"model": "openclip", "arch": "{self.arch}", "pretrained": "/path/to/{filename}"}}'
        )
        for _, dest in sources:
            if os.path.isfile(dest):
                return dest
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise SpaceError(f"the weights of {self.name} are not in the cache and HF_HUB_OFFLINE is set; {hint}")
        from .download import DownloadNotFound, download  # urllib: imported only to download

        for index, (url, dest) in enumerate(sources):
            try:
                return str(download(url, Path(dest), what=f"the weights of {self.name}", offline_hint=hint))
            except DownloadNotFound:
                if index == len(sources) - 1:
                    raise
        raise AssertionError("unreachable")

    @cached_property
    def tokenizer(self) -> Any:
        import open_clip

        context = self.model_config.get("text_cfg", {}).get("context_length", 77)
        hf_name = self.model_config.get("text_cfg", {}).get("hf_tokenizer_name")
        try:
            if isinstance(self.arch, str):
                return open_clip.get_tokenizer(self.arch, cache_dir=str(cache_dir() / "openclip"))
            if hf_name:
                return open_clip.tokenizer.HFTokenizer(hf_name, context_length=context)
            return open_clip.SimpleTokenizer(context_length=context)
        except Exception as exc:
            raise SpaceError(f"cannot load the tokenizer of {self.name}: {first_line(exc)}") from None

    @cached_property
    def image_transform(self) -> Any:
        import open_clip

        cfg = self.preprocess_config
        return open_clip.image_transform(
            cfg["size"],
            is_train=False,
            mean=cfg["mean"],
            std=cfg["std"],
            interpolation=cfg["interpolation"],
            resize_mode=cfg["resize_mode"],
        )


class OpenClipImageEncoder(Encoder):
    """Image files (or PIL images) to vectors."""

    modality = Modality.IMAGE

    def __init__(self, space: OpenClipSpace) -> None:
        self.space = space
        self.dim = space.dim

    def prepare(self, source: Any) -> Any:
        from PIL import Image

        from ..loaders.image import load_image, to_rgb

        if isinstance(source, Image.Image):
            image = to_rgb(source)
        else:
            from ..preprocess.image import reduced_decode_side

            size = self.space.preprocess_config["size"]
            side = max(size) if isinstance(size, (list, tuple)) else int(size)
            image = load_image(os.fspath(source), shorter_side_at_least=reduced_decode_side(side))
        return self.space.image_transform(image)

    def embed_batch(self, prepared: Sequence[Any]) -> np.ndarray:
        return _run(self.space, "encode_image", prepared)


class OpenClipTextEncoder(Encoder):
    """Strings (or text files given as Path) to vectors."""

    modality = Modality.TEXT

    def __init__(self, space: OpenClipSpace) -> None:
        self.space = space
        self.dim = space.dim

    def prepare(self, source: Any) -> Any:
        from ..loaders.text import load_text

        text = load_text(os.fspath(source), _TEXT_FILE_BYTES) if isinstance(source, Path) else str(source)
        return self.space.tokenizer([text])[0]

    def embed_batch(self, prepared: Sequence[Any]) -> np.ndarray:
        return _run(self.space, "encode_text", prepared)


def _run(space: OpenClipSpace, method: str, prepared: Sequence[Any]) -> np.ndarray:
    import torch

    from ..vectors import l2_normalize

    if len(prepared) == 0:
        return np.zeros((0, space.dim), dtype=np.float32)
    model = space.model()
    batch = torch.stack(list(prepared)).to(space.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(space.precision)
    device_type = torch.device(space.device).type
    with torch.inference_mode(), torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
        out = getattr(model, method)(batch)
    vectors = l2_normalize(out.float().cpu().numpy())
    if vectors.shape != (len(prepared), space.dim):
        raise MediaError(None, f"model returned shape {vectors.shape}, expected {(len(prepared), space.dim)}")
    return vectors


def _check_inline_config(config: dict[str, Any]) -> None:
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise SpaceError(f"inline OpenCLIP config lacks: {', '.join(missing)} (see OpenCLIP's model_configs/*.json)")
    if not isinstance(config["embed_dim"], int) or config["embed_dim"] <= 0:
        raise SpaceError("inline OpenCLIP config: embed_dim must be a positive integer")


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value
        or value.startswith(".")
        or value.startswith("~")
        or os.path.splitext(value)[1]
        in {
            ".bin",
            ".pt",
            ".pth",
            ".safetensors",
            ".ckpt",
        }
    )



def checkpoint_sources(tag_cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """(url, cache path) pairs to try, in order, for an OpenCLIP pretrained tag.

    A Hugging Face entry ``org/repo/`` names the repository (its default
    weights file, safetensors first) and ``org/repo/file`` one file; other tags
    give a direct URL.
    """
    root = cache_dir() / "openclip"
    hub = tag_cfg.get("hf_hub") or ""
    if hub:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        repo, filename = os.path.split(hub)  # "org/repo/" -> ("org/repo", "")
        filenames = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        folder = root / repo.replace("/", "--")
        return [(f"{endpoint}/{repo}/resolve/main/{name}", str(folder / name)) for name in filenames]
    url = tag_cfg.get("url") or ""
    if not url:
        raise SpaceError("this OpenCLIP tag names no download location")
    return [(url, str(root / "urls" / os.path.basename(url.split("?")[0])))]
