"""The training loop: a tower learns to land where the frozen image tower put each pair's image.

Symmetric InfoNCE over in-batch negatives, a learnable temperature (or a
fixed one), AdamW with linear warm-up and cosine decay, the trunk's matrix
products in bf16 where the hardware has it (float32 master weights, autocast
as in ``models.imagebind.precision``). Each epoch's batches come from a
generator seeded by (seed, epoch) and the whole state (weights, optimiser,
temperature, random generators) is saved after each epoch, so a resumed run
continues exactly where the interrupted one would have gone.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .objective import INITIAL_TEMPERATURE, MAX_LOGIT_SCALE, info_nce, learning_rate, recall_at

STATE_FILE = "run.pt"
KS = (1, 5, 10)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    seed: int
    precision: str  # "fp32", "bf16" or "fp16": the trunk's matrix products
    temperature: float | None = None  # fixed; None: learned, from INITIAL_TEMPERATURE
    weight_decay: float = 0.05
    warmup_share: float = 0.1  # of all steps, at least one


@dataclass
class EpochResult:
    epoch: int
    loss: float
    recall_to_image: dict[int, float]
    recall_from_image: dict[int, float]
    logit_scale: float
    pairs_per_s: float


@dataclass
class Progress:
    """What the loop tells its observer: a step done, or an epoch done (with held-out recall)."""

    on_step: Callable[[int, int, float, float], None] = lambda step, total, loss, rate: None
    on_epoch: Callable[[EpochResult], None] = lambda result: None


@dataclass
class Batches:
    """The pairs' tower inputs and image vectors, by position; ``clipped``: inputs have a clip axis."""

    inputs: Sequence[Any]
    images: np.ndarray
    clipped: bool
    device: str = "cpu"
    _images: Any = field(default=None, repr=False)

    def take(self, positions: Sequence[int]) -> tuple[Any, list[int] | None, Any]:
        import torch

        if self._images is None:
            self._images = torch.from_numpy(np.ascontiguousarray(self.images, dtype=np.float32)).to(self.device)
        chosen = [self.inputs[i] for i in positions]
        if self.clipped:
            rows, counts = torch.cat(chosen), [int(t.shape[0]) for t in chosen]
        else:
            rows, counts = torch.stack(chosen), None
        index = torch.as_tensor(list(positions), device=self.device)
        return rows.to(self.device), counts, self._images[index]


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the training pairs in one epoch: the same for a seed and epoch, run after run."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches, plus the last partial one when it holds at least two pairs (InfoNCE needs a negative)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


def fit(tower: Any, batches: Batches, train_positions: np.ndarray, heldout_positions: np.ndarray,
        settings: TrainSettings, state: dict[str, Any] | None, progress: Progress,
        save: Callable[[dict[str, Any]], None]) -> list[EpochResult]:
    """Train ``tower`` for the epochs ``state`` has not done yet; ``save`` gets the state after each epoch."""
    import torch

    logit = torch.nn.Parameter(torch.tensor(math.log(1.0 / (settings.temperature or INITIAL_TEMPERATURE))))
    params = [p for p in tower.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if settings.temperature is None:
        groups.append({"params": [logit], "weight_decay": 0.0})
    optimiser = torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.95))
    per_epoch = steps_per_epoch(len(train_positions), settings.batch_size)
    total = per_epoch * settings.epochs
    warmup = max(1, round(settings.warmup_share * total))
    history: list[EpochResult] = []
    start = 0
    if state is not None:
        tower.load_state_dict(state["tower"])
        optimiser.load_state_dict(state["optimiser"])
        with torch.no_grad():
            logit.copy_(torch.as_tensor(state["logit"]))
        torch.set_rng_state(state["torch_rng"])
        start = int(state["epoch"])
        history = [EpochResult(**h) for h in state["history"]]
    else:
        torch.manual_seed(settings.seed)  # (dropout draws from it: a run is the same run after run)
    step = start * per_epoch
    for epoch in range(start, settings.epochs):
        tower.train()
        order = train_positions[epoch_order(len(train_positions), settings.seed, epoch)]
        losses, began, seen = [], time.monotonic(), 0
        for b in range(per_epoch):
            positions = order[b * settings.batch_size:(b + 1) * settings.batch_size]
            rows, counts, images = batches.take(positions.tolist())
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step, total, settings.lr, warmup)
            with autocast_for(rows.device, settings.precision):
                from ..models.imagebind.bound_tower import embed_items

                x = embed_items(tower, rows, counts)
            loss = info_nce(x, images, logit.exp().clamp(max=MAX_LOGIT_SCALE))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            with torch.no_grad():
                logit.clamp_(max=math.log(MAX_LOGIT_SCALE))
            step += 1
            seen += len(positions)
            losses.append(float(loss.detach()))
            progress.on_step(step, total, losses[-1], seen / max(1e-9, time.monotonic() - began))
        rate = seen / max(1e-9, time.monotonic() - began)
        to_image, from_image = evaluate(tower, batches, heldout_positions, settings.precision)
        result = EpochResult(epoch + 1, float(np.mean(losses)) if losses else math.nan, to_image, from_image,
                             float(logit.detach().exp()), rate)
        history.append(result)
        save({"epoch": epoch + 1, "tower": tower.state_dict(), "optimiser": optimiser.state_dict(),
              "logit": float(logit.detach()), "torch_rng": torch.get_rng_state(),
              "history": [h.__dict__ for h in history]})
        progress.on_epoch(result)
    return history


def embed_positions(tower: Any, batches: Batches, positions: np.ndarray, precision: str,
                    chunk: int = 256) -> np.ndarray:
    """(n, D) unit embeddings of the pairs at ``positions`` (eval mode, no gradients)."""
    import torch

    from ..models.imagebind.bound_tower import embed_items

    tower.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(positions), chunk):
            rows, counts, _ = batches.take(positions[i:i + chunk].tolist())
            with autocast_for(rows.device, precision):
                out.append(embed_items(tower, rows, counts).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, batches.images.shape[1]), np.float32)


def evaluate(tower: Any, batches: Batches, positions: np.ndarray, precision: str
             ) -> tuple[dict[int, float], dict[int, float]]:
    """Held-out recall@k, X->image and image->X, against the held-out pairs' images."""
    if len(positions) == 0:
        return {}, {}
    x = embed_positions(tower, batches, positions, precision)
    images = batches.images[positions]
    return recall_at(x, images, KS), recall_at(images, x, KS)


@contextlib.contextmanager
def autocast_for(device: Any, precision: str) -> Iterator[None]:
    """The forward pass's autocast: the trunk's matrix products in bf16/fp16 (the tower keeps its float32 parts)."""
    import torch

    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device.type, dtype=dtype):
        yield


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """The run's state, written whole: a temporary file renamed into place (a kill leaves the last one)."""
    import torch

    path = folder / STATE_FILE
    tmp = folder / (STATE_FILE + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
