"""Few-shot labels: a few example files per label instead of words (ImageBind, section 4.3).

A folder holds one sub-folder per label, each with a few example files of any
modality. The examples are embedded once with the space's frozen encoders and
a file is labelled by what its vector is closest to:

- ``prototype``: per label, the normalised mean of its examples' vectors (a
  nearest-class-mean classifier); probabilities are the softmax of the cosines
  times the space's logit scale, as for zero-shot labels.
- ``logistic``: a multinomial logistic-regression probe fitted on the
  examples' unit vectors (the linear probe of CLIP and ImageBind), in numpy.

Embeddings of different modalities sit apart in the shared space (the
modality gap), so a label that has examples of the queried file's modality is
represented by those alone; a label without any is represented by all its
examples, which still points the right way, only less sharply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .classify import Classification, LabelScore, inputs_to_label, label_each, label_probabilities
from .errors import MediaError, UnusableEmbedding, UsageError
from .loaders.common import os_reason
from .modality import Modality, Naming, modality_from_path
from .spaces import Space, load_space
from .vectors import l2_normalize

METHODS = ("prototype", "logistic")

# Examples are embedded in batches of this many per modality: a few labels of a few files each fit in one.
_EMBED_BATCH = 32


def read_examples(directory: str | os.PathLike[str], naming: Naming | None = None) -> dict[str, list[Path]]:
    """Label -> example files of a folder with one sub-folder per label (the sub-folder's name is the label).

    A file counts when its name tells a modality (``modality_from_path``, with a space's ``naming`` when
    given: the modalities it adds); other files, and hidden files and
    folders (a leading dot), are left out. UsageError for a folder that is missing or not a folder, fewer
    than two label folders, or a label folder with no example file.
    """
    root = Path(directory)
    name = os.fspath(directory)
    try:
        if not root.exists():
            raise UsageError(f"no such examples folder: {name} (give a folder with one sub-folder per label)")
        if not root.is_dir():
            raise UsageError(f"examples {name} is not a folder: give a folder with one sub-folder per label")
        folders = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
        examples = {}
        for folder in folders:
            files = sorted(f for f in folder.iterdir() if not f.name.startswith(".") and f.is_file()
                           and modality_from_path(str(f), naming) is not None)
            if not files:
                raise UsageError(f"label folder {folder} has no example file (images, sounds, texts... "
                                 "whose names tell their modality)")
            examples[folder.name] = files
    except OSError as exc:
        raise UsageError(f"cannot read examples folder {name}: {os_reason(exc)}") from None
    if len(examples) < 2:
        raise UsageError(f"examples folder {name} needs at least 2 label folders (one sub-folder of example "
                         f"files per label), found {len(examples)}")
    return examples


def class_prototypes(vectors: np.ndarray, targets: np.ndarray, classes: int) -> np.ndarray:
    """(classes, dim) unit rows: the normalised mean of the rows of ``vectors`` (n, dim) of each class.

    ``targets`` (n,) holds each row's class, 0 to ``classes - 1``; every class needs at least one row.
    """
    vectors, targets = _checked(vectors, targets, classes)
    sums = np.zeros((classes, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, targets, vectors)
    counts = np.bincount(targets, minlength=classes)
    return l2_normalize(sums / counts[:, None])


def logistic_loss(weights: np.ndarray, bias: np.ndarray, vectors: np.ndarray, targets: np.ndarray,
                  l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """The mean cross-entropy of a softmax over ``vectors @ weights + bias`` plus ``l2 / 2 * |weights|^2``,
    with its gradients: (loss, d loss / d weights (dim, classes), d loss / d bias (classes,))."""
    n = len(vectors)
    probabilities = predict_proba(weights, bias, vectors)
    picked = probabilities[np.arange(n), targets]
    loss = -np.log(np.maximum(picked, 1e-300)).mean() + 0.5 * l2 * float((weights**2).sum())
    residual = probabilities
    residual[np.arange(n), targets] -= 1.0
    residual /= n
    return float(loss), vectors.T @ residual + l2 * weights, residual.sum(axis=0)


def predict_proba(weights: np.ndarray, bias: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(n, classes) rows that sum to 1: the softmax of ``vectors @ weights + bias``."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or weights.shape != (vectors.shape[1], len(bias)):
        raise ValueError(f"expected (n, {weights.shape[0]}) vectors, got shape {vectors.shape}")
    return label_probabilities(vectors @ weights + bias, 1.0)


def fit_logistic(vectors: np.ndarray, targets: np.ndarray, classes: int, *, l2: float = 1e-3,
                 steps: int = 3000, tolerance: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression fitted on ``vectors`` (n, dim) and their ``targets`` (n,) in
    0..classes-1: (weights (dim, classes), bias (classes,)) minimising ``logistic_loss``.

    Full-batch gradient descent with Nesterov momentum, from zero: deterministic, and on unit rows the loss
    is smooth with a constant known in advance (the softmax's Hessian is at most 1/2, times the largest
    eigenvalue of the rows' second moment), so the step needs no search. The L2 term makes the loss
    strongly convex in the weights and bounds them when the examples are separable, as a few examples of
    each label always are in hundreds of dimensions. Stops when the gradient's norm falls under
    ``tolerance``, or after ``steps``.
    """
    vectors, targets = _checked(vectors, targets, classes)
    if l2 <= 0:
        raise ValueError(f"l2 must be positive (got {l2})")
    with_bias = np.hstack([vectors, np.ones((len(vectors), 1))])
    smooth = 0.5 * np.linalg.norm(with_bias, 2) ** 2 / len(vectors) + l2
    condition = smooth / l2
    momentum = (np.sqrt(condition) - 1) / (np.sqrt(condition) + 1)
    weights = np.zeros((vectors.shape[1], classes))
    bias = np.zeros(classes)
    ahead_w, ahead_b = weights, bias
    for _ in range(steps):
        _, grad_w, grad_b = logistic_loss(ahead_w, ahead_b, vectors, targets, l2)
        if np.sqrt((grad_w**2).sum() + (grad_b**2).sum()) < tolerance:
            weights, bias = ahead_w, ahead_b
            break
        new_w, new_b = ahead_w - grad_w / smooth, ahead_b - grad_b / smooth
        ahead_w, ahead_b = new_w + momentum * (new_w - weights), new_b + momentum * (new_b - bias)
        weights, bias = new_w, new_b
    return weights, bias


def _checked(vectors: np.ndarray, targets: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.asarray(vectors, dtype=np.float64)
    targets = np.asarray(targets)
    if vectors.ndim != 2 or targets.shape != (len(vectors),):
        raise ValueError(f"expected (n, dim) vectors and (n,) targets, got shapes {vectors.shape} and "
                         f"{targets.shape}")
    if not np.issubdtype(targets.dtype, np.integer) or (targets.size and (targets.min() < 0
                                                                          or targets.max() >= classes)):
        raise ValueError(f"targets must be whole numbers from 0 to {classes - 1}")
    if len(np.unique(targets)) != classes:
        raise ValueError(f"every one of the {classes} classes needs at least one row")
    return vectors, targets.astype(np.intp)


class ExampleLabels:
    """Labels learned from example files: the same interface as ``LabelSet`` (``labels``, ``scores``,
    ``best``), so that ``classify`` output and ``index --auto-tag`` work with either.

    ``LabelScore.score`` is the cosine between a file and its label's prototype for both methods, so that it
    means the same whichever method gave the probability.
    """

    def __init__(self, space: Space, directory: str | os.PathLike[str] | Mapping[str, Sequence[Path]],
                 method: str = "prototype") -> None:
        if method not in METHODS:
            raise UsageError(f"unknown few-shot method {method!r}: give one of {', '.join(METHODS)}")
        examples = read_examples(directory, space.naming) if not isinstance(directory, Mapping) else dict(directory)
        self.space = space
        self.method = method
        self.labels = list(examples)
        files = [(label_index, Path(path)) for label_index, paths in enumerate(examples.values())
                 for path in paths]
        self.targets = np.array([i for i, _ in files], dtype=np.intp)
        self.modalities = [_example_modality(space, path) for _, path in files]
        self.vectors = _embed_examples(space, [path for _, path in files], self.modalities)
        self._models: dict[Modality, tuple[np.ndarray, Any]] = {}

    def _rows(self, modality: Modality) -> np.ndarray:
        """The examples that stand for each label for files of ``modality`` (see the module docstring)."""
        same = np.array([m is modality for m in self.modalities], dtype=bool)
        keep = np.zeros(len(self.targets), dtype=bool)
        for label_index in range(len(self.labels)):
            of_label = self.targets == label_index
            keep |= of_label & same if (of_label & same).any() else of_label
        return np.flatnonzero(keep)

    def _model(self, modality: Modality) -> tuple[np.ndarray, Any]:
        """(prototypes, the fitted probe or None) for files of ``modality``, computed once."""
        if modality not in self._models:
            rows = self._rows(modality)
            vectors, targets = self.vectors[rows], self.targets[rows]
            prototypes = class_prototypes(vectors, targets, len(self.labels))
            probe = fit_logistic(vectors, targets, len(self.labels)) if self.method == "logistic" else None
            self._models[modality] = (prototypes, probe)
        return self._models[modality]

    def probabilities(self, modality: Modality, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cosines to the prototypes, probabilities), both (n, labels), of rows of ``vectors``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.space.dim:
            raise ValueError(f"expected (n, {self.space.dim}) vectors, got shape {vectors.shape}")
        prototypes, probe = self._model(modality)
        cosines = vectors @ prototypes.T
        if probe is None:
            return cosines, label_probabilities(cosines, self.space.logit_scale(modality))
        return cosines, predict_proba(probe[0], probe[1], vectors)

    def scores(self, modality: Modality, vectors: np.ndarray) -> list[list[LabelScore]]:
        """Per row of ``vectors`` (items of ``modality``), every label with its probability, most probable first."""
        cosines, probabilities = self.probabilities(modality, vectors)
        out = []
        for sims, probs in zip(cosines, probabilities):
            row = [LabelScore(label, float(p), float(s)) for label, p, s in zip(self.labels, probs, sims)]
            out.append(sorted(row, key=lambda x: (-x.probability, -x.score)))
        return out

    def best(self, modality: Modality, vectors: np.ndarray, min_probability: float | None = None) -> list[str | None]:
        """The most probable label of each row; None for a row whose best label's probability falls short of
        ``min_probability``."""
        if len(vectors) == 0:
            return []
        probabilities = self.probabilities(modality, np.asarray(vectors))[1]
        chosen, top = probabilities.argmax(axis=1), probabilities.max(axis=1)
        return [self.labels[int(i)] if min_probability is None or p >= min_probability else None
                for i, p in zip(chosen, top)]


def _example_modality(space: Space, path: Path) -> Modality:
    modality = modality_from_path(str(path), space.naming)
    assert modality is not None  # read_examples keeps only such files
    if modality not in space.modalities:
        have = ", ".join(sorted(m.value for m in space.modalities))
        raise UsageError(f"space {space.name} cannot embed the {modality.value} example {path} (it embeds: {have})")
    return modality


def _embed_examples(space: Space, paths: list[Path], modalities: list[Modality]) -> np.ndarray:
    """(examples, dim) unit rows; UsageError naming the first example that cannot be read, and why."""
    out = np.zeros((len(paths), space.dim), dtype=np.float32)
    for modality in dict.fromkeys(modalities):
        encoder = space.encoder(modality)
        positions = [i for i, m in enumerate(modalities) if m is modality]
        for start in range(0, len(positions), _EMBED_BATCH):
            chunk = positions[start:start + _EMBED_BATCH]
            prepared = []
            for i in chunk:
                try:
                    prepared.append(encoder.prepare(paths[i]))
                except MediaError as exc:
                    raise UsageError(f"cannot read example {paths[i]}: {exc.reason}") from None
            try:
                out[chunk] = encoder.embed_batch(prepared)
            except UnusableEmbedding as exc:  # name the first file of the batch the model gave nothing usable for
                first = paths[chunk[exc.bad[0] if exc.bad else 0]]
                raise UsageError(f"cannot use example {first}: {exc.reason}") from None
            except MediaError as exc:
                first = paths[chunk[0]]
                raise UsageError(f"cannot embed the {modality.value} examples from {first} on: {exc.reason}") from None
    return out


def classify_examples(
    files: Sequence[str | os.PathLike[str] | tuple[Modality | str, Any]],
    examples: str | os.PathLike[str] | ExampleLabels,
    *,
    space: str | os.PathLike[str] | dict[str, Any] | Space | None = None,
    modality: Modality | str | None = None,
    method: str = "prototype",
) -> list[Classification]:
    """Few-shot labels of each file, learned from a folder of examples (``read_examples``): the probability
    of every label, most probable first. Files are given as to ``classify``; one that cannot be read gets
    its reason in ``error`` and the others are still labelled.
    """
    if isinstance(examples, ExampleLabels):
        chosen, by_label = examples.space, {}
    else:
        chosen = space if isinstance(space, Space) else load_space(space)
        by_label = read_examples(examples, chosen.naming)  # a bad folder is said before any file is looked at
    inputs = inputs_to_label(chosen, files, modality)
    labels = examples if isinstance(examples, ExampleLabels) else ExampleLabels(chosen, by_label, method)
    return label_each(chosen, inputs, labels.scores)
