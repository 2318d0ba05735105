"""``bind``: teach a space a new modality, or a better tower for one it has, from pairs with images.

The steps, each resumable: read the pairs; embed their images with the base's
frozen image tower (cached in the run folder); read the other files into
tower input (measuring the loader settings of a new modality on them); train
(``trainer``); write the tower and a ``space.json`` that extends the base
after every epoch, so that even an interrupted run leaves a usable space.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from ..modality import INPUT_EXTENSIONS, Modality, is_modality_name
from ..spaces import Space, load_space
from .image_cache import image_embeddings
from .inputs import read_other_inputs
from .objective import chance_at
from .pairs import BadRow, Pair, check_bad_share, read_pairs, unreadable
from .sizing import auto_batch_size
from .trainer import KS, STATE_FILE, Batches, EpochResult, Progress, TrainSettings, fit, save_state

SETTINGS_FILE = "run.json"
SPACE_FILE = "space.json"
DEFAULT_LR = {"new": 5e-4, "tune": 2e-5}


@dataclass
class BindObserver:
    """What a bind run tells as it goes (the CLI draws it); every method may be left as it is."""

    def phase(self, name: str, total: int) -> None: ...
    def advance(self, done: int, total: int) -> None: ...
    def step(self, step: int, total: int, loss: float, pairs_per_s: float) -> None: ...
    def epoch(self, result: EpochResult) -> None: ...
    def bad_row(self, bad: BadRow) -> None: ...


@dataclass
class BindReport:
    """The outcome of a bind run: held-out recall both ways, chance, and the space it wrote."""

    modality: str
    pairs: int
    heldout: int
    recall_to_image: dict[int, float]
    recall_from_image: dict[int, float]
    chance: dict[int, float]
    epochs: int
    seconds: float
    space: str
    batch_size: int
    precision: str
    logit_scale: float
    skipped: list[BadRow] = field(default_factory=list)
    resumed_at: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"modality": self.modality, "pairs": self.pairs, "heldout": self.heldout}
        for k in KS:
            out[f"recall@{k}"] = {"to_image": self.recall_to_image.get(k), "from_image": self.recall_from_image.get(k)}
        out["chance@1"] = self.chance.get(1)
        out.update({"epochs": self.epochs, "seconds": round(self.seconds, 3), "space": self.space,
                    "batch_size": self.batch_size, "precision": self.precision,
                    "skipped": [{"row": b.row, "path": b.path, "reason": b.reason} for b in self.skipped]})
        return out


def bind(pairs_file: str | os.PathLike[str], modality: str, out: str | os.PathLike[str], *,
         input: str | None = None, space: Any = None, epochs: int | None = None, batch_size: int | None = None,
         lr: float | None = None, holdout: float | None = None, seed: int | None = None,
         temperature: float | None = None, size: str | None = None, resume: bool = False,
         observer: BindObserver | None = None) -> BindReport:
    """Train a tower for ``modality`` on the (image, other) pairs of ``pairs_file`` into the folder ``out``.

    With ``resume``, settings left out are the interrupted run's; any given must match them.
    """
    observer = observer or BindObserver()
    started = time.monotonic()
    folder = Path(out).absolute()
    given = {"pairs": str(Path(pairs_file).absolute()), "modality": modality, "input": input,
             "epochs": epochs, "batch_size": batch_size, "lr": lr, "holdout": holdout, "seed": seed,
             "temperature": temperature, "size": size,
             "space": None if space is None or isinstance(space, (Space, dict)) else str(space)}
    settings = _settings(folder, given, resume)
    base = space if isinstance(space, Space) else load_space(settings["space"] if space is None else space)
    name, kind, tuning = _check_modality(base, settings["modality"], settings["input"])
    settings["input"] = kind
    _check_numbers(settings)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / SETTINGS_FILE, settings)

    pairs = read_pairs(settings["pairs"])
    bad: list[BadRow] = []
    usable: list[Pair] = []
    for pair in pairs:
        problem = unreadable(pair)
        (bad.append(problem) if problem else usable.append(pair))
    check_bad_share(bad, len(pairs), settings["pairs"], observer.bad_row)  # before any image is embedded
    observer.phase("embedding images", len({p.image for p in usable}))
    vectors, image_failed = image_embeddings(base, [p.image for p in usable], folder, observer.advance)
    bad += [BadRow(p.row, p.image, image_failed[p.image]) for p in usable if p.image in image_failed]
    usable = [p for p in usable if p.image in vectors]
    observer.phase(f"reading {name} files", len(usable))
    from ..models.imagebind.bound_tower import NewTowerArch

    kernel = NewTowerArch.sized(kind, "tiny", base.dim, steps=8).kernel_size if not tuning else 0
    prepare = base.encoder(name).prepare if tuning else None
    others = read_other_inputs(usable, kind, kernel, prepare, observer.advance)
    bad += others.bad
    usable = [p for p in usable if p.row in others.inputs]
    bad.sort(key=lambda b: b.row)
    for b in bad:
        observer.bad_row(b)
    check_bad_share(len(bad), len(pairs), settings["pairs"])

    n = len(usable)
    order = np.random.default_rng(int(settings["seed"])).permutation(n)
    held_n = min(n - 4, max(1, round(float(settings["holdout"]) * n))) if settings["holdout"] > 0 and n > 4 else 0
    held, train = np.sort(order[:held_n]), np.sort(order[held_n:])
    tower, arch, tower_settings = _make_tower(base, name, kind, tuning, settings, others)
    precision = "bf16" if base.precision == "bf16" else "fp32"
    device = getattr(base, "device", "cpu")
    batch = settings["batch_size"] or auto_batch_size(tower, len(train), device)
    if len(train) < 2 * batch or batch < 2:
        raise UsageError(f"only {len(train)} pairs to train on (of {len(pairs)}, {held_n} held out): that is fewer "
                         f"than two batches of {batch}; lower --batch-size or add pairs")
    tower.to(device)
    batches = Batches([others.inputs[p.row] for p in usable], np.stack([vectors[p.image] for p in usable]),
                      clipped=kind in ("timeseries", "audio", "imu"), device=device)
    train_settings = TrainSettings(int(settings["epochs"]), batch, float(settings["lr"]), int(settings["seed"]),
                                   precision, settings["temperature"])
    state = _load_state(folder) if resume else None
    resumed_at = int(state["epoch"]) if state else 0
    tower_file = folder / f"{name}.pt"

    def save(new_state: dict[str, Any]) -> None:
        import torch

        save_state(folder, new_state)
        tmp = tower_file.with_suffix(".tmp")
        torch.save({"state_dict": new_state["tower"]}, tmp)
        os.replace(tmp, tower_file)
        scale = float(np.exp(new_state["logit"]))
        _write_space(folder, base, name, kind, arch, tower_settings, tower_file, scale)

    observer.phase("training", train_settings.epochs)
    history = fit(tower, batches, train, held, train_settings, state,
                  Progress(observer.step, observer.epoch), save)
    last = history[-1] if history else None
    return BindReport(
        modality=name, pairs=n, heldout=held_n,
        recall_to_image=last.recall_to_image if last else {}, recall_from_image=last.recall_from_image if last else {},
        chance=chance_at(held_n, KS) if held_n else {}, epochs=len(history), seconds=time.monotonic() - started,
        space=str(folder / SPACE_FILE), batch_size=batch, precision=precision,
        logit_scale=last.logit_scale if last else 0.0, skipped=bad, resumed_at=resumed_at)


# -- checks -----------------------------------------------------------------------------------------


def _settings(folder: Path, given: dict[str, Any], resume: bool) -> dict[str, Any]:
    """The run's settings: given ones over the interrupted run's (with ``resume``) over the defaults."""
    defaults = {"input": None, "epochs": 10, "batch_size": None, "lr": None, "holdout": 0.1, "seed": 0,
                "temperature": None, "size": "base", "space": None}
    has_state = (folder / STATE_FILE).is_file()
    if not resume:
        if has_state:
            raise UsageError(f"{folder} holds a bind run already: add --resume to continue it, or choose another --out")
        return {**defaults, **{k: v for k, v in given.items() if v is not None}}
    if not has_state:
        raise UsageError(f"nothing to resume in {folder} (no finished epoch there): leave out --resume")
    try:
        stored = json.loads((folder / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        raise UsageError(f"{folder / SETTINGS_FILE} is missing or damaged: the run cannot be resumed") from None
    for key, value in given.items():
        if value is not None and key in stored and stored[key] is not None and stored[key] != value:
            raise UsageError(f"--resume: {key} was {stored[key]!r} in the interrupted run, not {value!r}; "
                             "leave it out, or start another run in another --out")
    return {**defaults, **stored, **{k: v for k, v in given.items() if v is not None}}


def _check_modality(base: Space, name: str, kind: str | None) -> tuple[Modality, str, bool]:
    """The modality, its input kind, and whether it fine-tunes one of the base's towers."""
    from ..spaces.bound import TUNABLE, BoundSpace

    if Modality.IMAGE not in base.modalities:
        raise UsageError(f"space {base.name} has no image tower: a modality is bound to a space's image embeddings")
    text = str(name).strip().lower()
    if not is_modality_name(text):
        raise UsageError(f"--modality {name!r} is not a modality name (lower-case letters, digits and _, starting "
                         "with a letter, at most 16 characters)")
    modality = Modality(text)
    if modality is Modality.IMAGE:
        raise UsageError("the image tower is what every other tower is bound to: it cannot be bound itself")
    root = base.base if isinstance(base, BoundSpace) else base
    if modality.builtin:
        if modality not in TUNABLE or modality not in base.modalities or root.kind != "imagebind":
            raise UsageError(f"--modality {modality} collides with a built-in modality; only the "
                             f"{', '.join(TUNABLE)} towers of an ImageBind space can be fine-tuned: "
                             "give a new modality another name")
        if kind not in (None, modality.value):
            raise UsageError(f"fine-tuning the {modality} tower reads {modality} files: leave out --input")
        return modality, modality.value, True
    if modality in base.modalities:
        raise UsageError(f"space {base.name} has a {modality} modality already: bind under another name, "
                         f"or bind on the space it was bound from")
    if kind is None:
        raise UsageError(f"--input is needed for a new modality: one of {', '.join(INPUT_EXTENSIONS)}")
    if kind not in INPUT_EXTENSIONS:
        raise UsageError(f"--input must be one of {', '.join(INPUT_EXTENSIONS)}, got {kind!r}")
    return modality, kind, False


def _check_numbers(s: dict[str, Any]) -> None:
    from ..models.imagebind.bound_tower import SIZES

    if not isinstance(s["epochs"], int) or s["epochs"] < 1:
        raise UsageError(f"--epochs must be at least 1, got {s['epochs']}")
    if s["batch_size"] is not None and (not isinstance(s["batch_size"], int) or s["batch_size"] < 2):
        raise UsageError(f"--batch-size must be at least 2 (a contrastive loss needs negatives), got {s['batch_size']}")
    if s["lr"] is not None and not 0 < float(s["lr"]) < 1:
        raise UsageError(f"--lr must be between 0 and 1, got {s['lr']}")
    if not 0 <= float(s["holdout"]) < 1:
        raise UsageError(f"--holdout is a share of the pairs, from 0 to below 1, got {s['holdout']}")
    if s["temperature"] is not None and not 0 < float(s["temperature"]) <= 1:
        raise UsageError(f"--temperature must be above 0 and at most 1, got {s['temperature']}")
    if s["size"] not in SIZES:
        raise UsageError(f"--tower-size must be one of {', '.join(SIZES)}, got {s['size']!r}")


# -- the tower and its files ------------------------------------------------------------------------


def _make_tower(base: Space, name: Modality, kind: str, tuning: bool, settings: dict[str, Any],
                others: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A new tower (random, seeded) or a copy of the base's in float32; its arch and loader settings."""
    import torch

    from ..models.imagebind.bound_tower import NewTowerArch, build_base_tower, build_new_tower
    from ..spaces.bound import TUNABLE

    if settings["lr"] is None:
        settings["lr"] = DEFAULT_LR["tune" if tuning else "new"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(settings["seed"]))
        if tuning:
            config = base.config.to_dict() if hasattr(base, "config") else base.base.config.to_dict()
            tower = build_base_tower(TUNABLE[name], config)
            tower.load_state_dict(_base_tower_state(base, name))
            return tower, {"design": "imagebind", "tower": TUNABLE[name], "config": config}, {}
        arch = NewTowerArch.sized(kind, settings["size"], base.dim, **others.arch_data)
        return build_new_tower(name.value, arch), {"design": "new", **arch.to_dict()}, others.settings


def _base_tower_state(base: Space, name: Modality) -> dict[str, Any]:
    """The base's own weights of a tower, in float32 (a space may hold its trunk in bf16)."""
    from ..spaces.bound import TUNABLE, BoundSpace
    from ..spaces.imagebind import ImageBindSpace

    if isinstance(base, BoundSpace) and name in base.towers:
        return {k: v.float() for k, v in base.tower_module(name).state_dict().items()}
    root = base.base if isinstance(base, BoundSpace) else base
    fp32 = ImageBindSpace.from_spec({**root.spec, "precision": "fp32"})
    return {k: v.float() for k, v in fp32.model_for(name).tower(TUNABLE[name]).state_dict().items()}


def _write_space(folder: Path, base: Space, name: Modality, kind: str, arch: dict[str, Any],
                 settings: dict[str, Any], tower_file: Path, logit_scale: float) -> None:
    from ..spaces.bound import BoundSpace, TowerSpec

    tower = TowerSpec(name, kind, arch, settings, str(tower_file), logit_scale)
    _write_json(folder / SPACE_FILE, BoundSpace(base, [tower]).spec_relative_to(folder))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _load_state(folder: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise UsageError(f"cannot resume from {folder / STATE_FILE}: {exc}") from None
