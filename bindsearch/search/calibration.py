"""Scores that can be compared across modalities.

Cosine similarities between modalities live on different scales: in
ImageBind's space an audio-to-image match scores far lower than an
image-to-image one. So each target modality's raw scores are standardised
against how the same query scores on a reference sample of that modality's
vectors: ``calibrated = (raw - mean) / std``. A calibrated score says how many
standard deviations a hit stands above a typical item of its own modality, for
this query; a merged list ranks by it. The sample is taken per index and
refreshed whenever the index changes (see ``IndexManager.reference_sample``). A modality
with too few vectors for a spread of its own (under ``MIN_OWN_REFERENCE``) is
measured against the samples of every modality of the library pooled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A reference sample smaller than this gives no usable spread: scores stay raw (mean 0, std 1).
MIN_REFERENCE = 2
# A modality with fewer vectors than this is calibrated against all modalities' samples pooled.
MIN_OWN_REFERENCE = 8
# Below this spread the reference is degenerate (all its vectors alike).
MIN_STD = 1e-6
# A raw score this close to 1 is the query's own content, stored: the best possible answer in any modality.
EXACT_MATCH = 0.9999
# Cosines of unit float32 vectors stray this far past [-1, 1] by rounding; farther means a damaged vector.
SCORE_SLACK = 1e-3


@dataclass(frozen=True)
class ScoreScale:
    """How one query's raw scores on one target modality are standardised."""

    mean: float = 0.0
    std: float = 1.0

    def calibrate(self, raw: float) -> float:
        return (raw - self.mean) / self.std


def score_scale(query: np.ndarray, reference: np.ndarray) -> ScoreScale:
    """Mean and standard deviation of the query's scores on a reference sample (n, d) of unit vectors."""
    query = np.asarray(query, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if query.ndim != 1 or reference.ndim != 2 or reference.shape[1] != query.shape[0]:
        raise ValueError(f"expected a (d,) query and an (n, d) reference, got {query.shape} and {reference.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        scores = dot_rows(reference, query)
    # A vector that is not finite (none should be stored, but one may be) says nothing about the spread.
    scores = scores[np.isfinite(scores)]
    if scores.shape[0] < MIN_REFERENCE:
        return ScoreScale()
    std = float(scores.std())
    if std < MIN_STD:
        return ScoreScale()
    return ScoreScale(float(scores.mean()), std)


def usable_scores(scores: np.ndarray, ids: np.ndarray) -> tuple[list[tuple[float, int]], int]:
    """(score, id) pairs of one row of search results that can be shown, and how many could not.

    Empty slots (id -1), scores that are not finite and cosines outside [-1, 1]
    (beyond rounding, which is clamped) come only from a damaged vector: they go.
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if scores.shape != ids.shape:
        raise ValueError(f"{scores.shape[0]} scores but {ids.shape[0]} ids")
    present = ids >= 0
    sound = present & np.isfinite(scores) & (np.abs(scores) <= 1.0 + SCORE_SLACK)
    kept = [(min(1.0, max(-1.0, float(s))), int(i)) for s, i in zip(scores[sound], ids[sound])]
    return kept, int(present.sum() - sound.sum())


def dot_rows(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` without BLAS threads.

    A query is a few small products between FAISS searches; a threaded BLAS
    leaves its threads spinning after each one, and they halve the speed of the
    next FAISS search (measured: 26 ms against 64 ms over 100 000 vectors).
    """
    return np.einsum("ij,j->i", matrix, vector)


def rank_key(raw: float, calibrated: float) -> tuple[bool, float, float]:
    """Sort key of a merged list (ascending): exact matches first, then by calibrated score, then raw."""
    return (raw < EXACT_MATCH, -calibrated, -raw)

