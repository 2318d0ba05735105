"""The encoder interface and the Space that groups a model family's encoders."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import MediaError, UnusableEmbedding, UsageError
from ..modality import DEFAULT_NAMING, Modality, Naming
from ..vectors import usable_rows

# CLIP's learned temperature saturates at 100; spaces that know their own say so.
DEFAULT_LOGIT_SCALE = 100.0


class Encoder(ABC):
    """Turns inputs of one modality into unit vectors of the space.

    Two steps, so that a pipeline can decode in worker processes while the model
    embeds the previous batch:

    - ``prepare(source)`` reads one input (a file path, or an in-memory value
      such as a string for text) into model input. Cheap to call, needs no
      weights, and its result can be pickled. Raises MediaError for bad input.
    - ``embed_batch(prepared)`` runs the model on a list of prepared inputs and
      returns a float32 array of shape (n, dim) whose rows have unit length.
      The model is loaded on first use.

    What ``embed_batch`` and ``embed_clips`` return is checked here for every
    encoder: a row that is not finite or is all zero (input far outside what the
    model knows overflowed, or the weights are damaged) raises UnusableEmbedding,
    which names the bad rows and carries the good ones.
    """

    modality: Modality
    dim: int
    # Encoders of long media (audio, video) can also embed fixed-length clips of a file, which
    # time windows are pooled from (see bindsearch.windows); for the others this stays False.
    embeds_clips: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Wrapped where each encoder defines them, so that no encoder and no caller can skip the
        # check: one NaN vector stored would turn every later score of its library into NaN.
        for name in ("embed_batch", "embed_clips"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_checks_output", False):
                setattr(cls, name, _checking_output(method))

    @abstractmethod
    def prepare(self, source: Any) -> Any:
        """Read one input into model input (see the class docstring)."""

    @abstractmethod
    def embed_batch(self, prepared: Sequence[Any]) -> np.ndarray:
        """Embed prepared inputs: returns (n, dim) float32 unit rows."""

    def embed(self, sources: Sequence[Any]) -> np.ndarray:
        """Prepare and embed several inputs at once."""
        return self.embed_batch([self.prepare(s) for s in sources])

    # -- clips of long media (only where ``embeds_clips``) ------------------------------

    def duration(self, source: Any) -> float | None:
        """Length of a file in seconds, from its headers; None when unknown."""
        raise NotImplementedError(f"the {self.modality.value} encoder does not embed clips")

    def prepare_clips(self, source: Any, clips: Sequence[tuple[float, float]]) -> Any:
        """Read consecutive clips ((start, end) seconds) of a file into model input; like ``prepare``."""
        raise NotImplementedError(f"the {self.modality.value} encoder does not embed clips")

    def embed_clips(self, prepared: Any) -> np.ndarray:
        """Embed the clips of one ``prepare_clips`` result: (clips, dim) float32 unit rows."""
        raise NotImplementedError(f"the {self.modality.value} encoder does not embed clips")


class Space(ABC):
    """A named set of encoders that share one vector space.

    A space is described by a JSON-able ``spec`` (what a library stores to
    rebuild it) and identified by a ``fingerprint`` over model kind,
    architecture, checkpoint identity and dimension. Building a space is cheap:
    weights load lazily, the first time an encoder embeds something.
    """

    kind: ClassVar[str]

    @property
    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """The resolved spec (absolute paths, inline configs) a library stores."""

    @property
    @abstractmethod
    def name(self) -> str:
        """A short human-readable name, e.g. ``openclip:ViT-B-32/laion2b_s34b_b79k``."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of every vector in this space."""

    @property
    @abstractmethod
    def modalities(self) -> frozenset[Modality]:
        """The modalities this space has encoders for."""

    @abstractmethod
    def fingerprint_parts(self) -> dict[str, Any]:
        """What identifies the vectors: model kind, architecture config, checkpoint identity, dim."""

    @abstractmethod
    def _make_encoder(self, modality: Modality) -> Encoder:
        """Build the encoder of one supported modality (weights still unloaded)."""

    @property
    def naming(self) -> Naming:
        """How this space tells a file's modality from its name (the modalities it adds included)."""
        return DEFAULT_NAMING

    def input_kind(self, modality: Modality | str) -> str:
        """What reads a modality's files and draws its thumbnails: a built-in modality's name, or for a
        modality a space adds, its input kind ("timeseries", "image1", "audio")."""
        return Modality.parse(modality).value

    def modality_fingerprint(self, modality: Modality | str) -> str:
        """What identifies the vectors of one modality. Two spaces (a base and a space bound from it) that
        agree on a modality's fingerprint give its files the same vectors: a library re-bound from the one
        to the other keeps them."""
        canonical = f"{self.fingerprint}:{Modality.parse(modality).value}"
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def root_fingerprint(self) -> str:
        """The fingerprint of the space this one was bound from (its own, for a space not bound)."""
        return self.fingerprint

    @property
    def precision(self) -> str:
        """What the encoders compute in ("fp32", "bf16", "fp16"); not part of the fingerprint."""
        return "fp32"

    def private_weight_bytes(self, modalities: Sequence[Modality]) -> int:
        """Bytes of weights that each process embedding ``modalities`` holds in memory of its own (beyond
        the memory-mapped checkpoint pages that processes share): what sizes a pool of model processes."""
        return 0

    @property
    def fingerprint(self) -> str:
        """A short stable hash of ``fingerprint_parts()``; equal fingerprints mean comparable vectors."""
        canonical = json.dumps(self.fingerprint_parts(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def encoder(self, modality: Modality | str) -> Encoder:
        """The encoder for ``modality``; raises UsageError if the space has none."""
        modality = Modality.parse(modality)
        if modality not in self.modalities:
            have = ", ".join(sorted(m.value for m in self.modalities))
            if not modality.builtin:
                raise UsageError(f"unknown modality '{modality.value}' (space {self.name} embeds: {have})")
            raise UsageError(f"space {self.name} cannot embed {modality.value} (it embeds: {have})")
        cache: dict[Modality, Encoder] = self.__dict__.setdefault("_encoders", {})
        if modality not in cache:
            cache[modality] = self._make_encoder(modality)
        return cache[modality]

    def embed(self, modality: Modality | str, value: Any) -> np.ndarray:
        """Embed one value (a path, or a string for text): returns a (dim,) unit vector."""
        try:
            return self.encoder(modality).embed([value])[0]
        except UnusableEmbedding as exc:
            raise MediaError(_value_name(value), exc.reason) from None

    def logit_scale(self, modality: Modality | str) -> float:
        """The factor the model multiplies cosine similarities between ``modality`` and text by before a
        softmax (CLIP's temperature): what turns similarities into zero-shot label probabilities."""
        return DEFAULT_LOGIT_SCALE

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.dim} fingerprint={self.fingerprint}>"




def unusable_reason(modality: Modality, rows: np.ndarray) -> str:
    """Why unusable output rows cannot be stored, as the one-line reason of a failed file."""
    if not np.isfinite(rows).all():
        # The loaders keep every input within the range its tower takes, so damaged weights come first.
        return "the model gave no finite embedding: are its weights damaged, or the input beyond what it takes?"
    return "the model gave an all-zero embedding"


def _checking_output(method: Any) -> Any:
    @functools.wraps(method)
    def checked(self: Encoder, prepared: Any) -> np.ndarray:
        vectors = method(self, prepared)
        good = usable_rows(vectors)
        if not good.all():
            bad = tuple(int(i) for i in np.flatnonzero(~good))
            raise UnusableEmbedding(unusable_reason(self.modality, vectors[~good]), vectors, bad)
        return vectors

    checked._checks_output = True  # type: ignore[attr-defined]
    return checked


def _value_name(value: Any) -> str | None:
    """How an error names an embedded value: a file by its path, a text by its first words."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    return None


def resolve_relative(value: str, base_dir: Path | None) -> str:
    """A path from a space file, made absolute against the file's folder."""
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path.resolve())
