"""Zero-shot labels: how probable each of a few words is for a file, in any modality.

Each label is written into a prompt of the file's modality ("a photo of a
dog.", "the sound of a dog."), the prompts are embedded as text, and the
file's vector is compared with them: probabilities are the softmax of the
cosine similarities times the space's logit scale, as CLIP and ImageBind
compute their zero-shot predictions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MediaError, UsageError
from .loaders.common import os_reason
from .modality import Modality, modality_from_path
from .regular_files import read_small_file
from .spaces import Space, load_space
from .text_encoding import decode_text
from .vectors import l2_normalize

# One prompt per modality; "{}" stands for the label. A list of prompts is an ensemble (their mean).
DEFAULT_TEMPLATES: dict[Modality, str] = {
    Modality.IMAGE: "a photo of a {}.",
    Modality.VIDEO: "a video of a {}.",
    Modality.TEXT: "{}",
    Modality.AUDIO: "the sound of a {}.",
    Modality.DEPTH: "a depth map of a {}.",
    Modality.THERMAL: "a thermal image of a {}.",
    Modality.IMU: "a person {}.",
}


@dataclass(frozen=True)
class LabelScore:
    """One label for one file: its probability and the cosine similarity behind it."""

    label: str
    probability: float
    score: float


@dataclass(frozen=True)
class Classification:
    """The labels of one file, most probable first; ``label`` is the first of them.

    A file that cannot be read has no labels and the one-line reason in ``error``.
    """

    path: str
    modality: Modality
    label: str
    labels: list[LabelScore]
    error: str | None = None


def label_probabilities(similarities: np.ndarray, scale: float) -> np.ndarray:
    """Softmax over the last axis of ``similarities * scale`` (cosines (n, labels)): rows that sum to 1."""
    similarities = np.asarray(similarities, dtype=np.float64)
    if similarities.ndim != 2 or similarities.shape[1] == 0:
        raise ValueError(f"expected an (n, labels) matrix with at least one label, got shape {similarities.shape}")
    logits = similarities * float(scale)
    logits -= logits.max(axis=1, keepdims=True)  # exp never overflows
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def parse_labels(text: str) -> list[str]:
    """``"dog, car,bird"`` -> ["dog", "car", "bird"]: labels separated by commas (or one per line)."""
    labels: list[str] = []
    for part in text.replace("\n", ",").split(","):
        label = part.strip()
        if label and label not in labels:
            labels.append(label)
    if not labels:
        raise UsageError("give at least one label (labels are separated by commas)")
    return labels


# A labels file is a list of words: a few thousand labels are well under a megabyte.
MAX_LABELS_FILE_BYTES = 4 << 20


def read_labels_file(path: str | os.PathLike) -> list[str]:
    """The labels of a file (one per line, or separated by commas), in any encoding ``text_encoding`` reads.

    A FIFO, a device or a file over MAX_LABELS_FILE_BYTES is refused, never read without end.
    """
    try:
        data = read_small_file(path, MAX_LABELS_FILE_BYTES)
    except OSError as exc:
        raise UsageError(f"cannot read labels file {os.fspath(path)}: {os_reason(exc)}") from None
    decoded = decode_text(data)
    if decoded is None:
        raise UsageError(f"labels file {os.fspath(path)} is not a text file (binary content)")
    return parse_labels(decoded[0].lstrip("\ufeff"))


class LabelSet:
    """Labels as prompt vectors of each modality, embedded once and kept."""

    def __init__(self, space: Space, labels: Sequence[str],
                 templates: Mapping[Modality | str, str | Sequence[str]] | None = None) -> None:
        if not labels:
            raise UsageError("give at least one label")
        if Modality.TEXT not in space.modalities:
            raise UsageError(f"space {space.name} has no text encoder: it cannot embed labels")
        self.space = space
        self.labels = list(labels)
        self.templates: dict[Modality, list[str]] = {m: [t] for m, t in DEFAULT_TEMPLATES.items()}
        for modality, given in (templates or {}).items():
            chosen = [given] if isinstance(given, str) else list(given)
            for template in chosen:
                if "{}" not in template:
                    raise UsageError(f"a prompt template needs {{}} where the label goes: {template!r}")
            self.templates[Modality.parse(modality)] = chosen
        self._vectors: dict[Modality, np.ndarray] = {}

    def prompts(self, modality: Modality) -> list[list[str]]:
        """Per label, its prompts for ``modality``. A modality a space adds was bound to images: it takes
        the image prompts unless given its own."""
        templates = self.templates.get(modality) or self.templates[Modality.IMAGE]
        return [[template.format(label) for template in templates] for label in self.labels]

    def vectors(self, modality: Modality) -> np.ndarray:
        """(labels, dim) unit rows: each label's prompts embedded as text and averaged."""
        if modality not in self._vectors:
            prompts = self.prompts(modality)
            flat = [p for per_label in prompts for p in per_label]
            embedded = self.space.encoder(Modality.TEXT).embed(flat)
            per = len(prompts[0])
            self._vectors[modality] = l2_normalize(embedded.reshape(len(self.labels), per, -1).mean(axis=1))
        return self._vectors[modality]

    def scores(self, modality: Modality, vectors: np.ndarray) -> list[list[LabelScore]]:
        """Per row of ``vectors`` (items of ``modality``), every label with its probability, most probable first."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.space.dim:
            raise ValueError(f"expected (n, {self.space.dim}) vectors, got shape {vectors.shape}")
        similarities = vectors @ self.vectors(modality).T
        probabilities = label_probabilities(similarities, self.space.logit_scale(modality))
        out = []
        for sims, probs in zip(similarities, probabilities):
            row = [LabelScore(label, float(p), float(s)) for label, p, s in zip(self.labels, probs, sims)]
            out.append(sorted(row, key=lambda x: (-x.probability, -x.score)))
        return out

    def best(self, modality: Modality, vectors: np.ndarray, min_probability: float | None = None) -> list[str | None]:
        """The most probable label of each row (the highest cosine: the softmax keeps the order); None for a
        row whose best label's probability falls short of ``min_probability``."""
        if len(vectors) == 0:
            return []
        similarities = np.asarray(vectors, dtype=np.float32) @ self.vectors(modality).T
        chosen = similarities.argmax(axis=1)
        if min_probability is None:
            return [self.labels[int(i)] for i in chosen]
        top = label_probabilities(similarities, self.space.logit_scale(modality)).max(axis=1)
        return [self.labels[int(i)] if p >= min_probability else None for i, p in zip(chosen, top)]


def classify(
    files: Sequence[str | os.PathLike[str] | tuple[Modality | str, Any]],
    labels: Sequence[str],
    *,
    space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
    modality: Modality | str | None = None,
    templates: Mapping[Modality | str, str | Sequence[str]] | None = None,
) -> list[Classification]:
    """Zero-shot labels of each file: the probability of every label, most probable first.

    A file's modality is told by its name unless ``modality`` is given; an
    item may also be a (modality, value) pair (a text to label, say).
    """
    chosen = space if isinstance(space, Space) else load_space(space)
    label_set = LabelSet(chosen, labels, templates)
    return label_each(chosen, inputs_to_label(chosen, files, modality), label_set.scores)


def inputs_to_label(
    space: Space,
    files: Sequence[str | os.PathLike[str] | tuple[Modality | str, Any]],
    modality: Modality | str | None = None,
) -> list[tuple[Modality, Any, str]]:
    """(modality, value, name) of each file to label: told by its name (the space's naming) unless
    ``modality`` is given, or given as a (modality, value) pair. UsageError, before anything is embedded,
    for a file whose modality cannot be told or that the space cannot embed."""
    forced = Modality.parse(modality) if modality is not None else None
    inputs: list[tuple[Modality, Any, str]] = []
    for item in files:
        if isinstance(item, tuple):
            kind, value = Modality.parse(item[0]), item[1]
            inputs.append((kind, value, os.fspath(value) if not isinstance(value, str) else value))
            continue
        path = os.fspath(item)
        kind = forced or modality_from_path(path, space.naming)
        if kind is None:
            raise UsageError(f"cannot tell the modality of {path} from its name: give one with --modality")
        if kind not in space.modalities:
            raise UsageError(f"space {space.name} cannot embed {kind.value} ({path})")
        inputs.append((kind, Path(path), path))
    return inputs


def label_each(
    space: Space,
    inputs: Sequence[tuple[Modality, Any, str]],
    scores: Callable[[Modality, np.ndarray], list[list[LabelScore]]],
) -> list[Classification]:
    """Embed each input and rank the labels for it with ``scores(modality, vectors)``. A file that cannot
    be read gets its reason in ``error``, and the others are still labelled."""
    out: list[Classification] = []
    for kind, value, name in inputs:
        try:
            vector = space.embed(kind, value)
        except MediaError as exc:
            out.append(Classification(name, kind, "", [], exc.reason))
            continue
        ranked = scores(kind, vector[None, :])[0]
        out.append(Classification(name, kind, ranked[0].label, ranked))
    return out
