"""Reading the official checkpoint and handing each tower exactly its own tensors.

The released ``imagebind_huge.pth`` is a plain state_dict whose keys read
``modality_{preprocessors,trunks,heads,postprocessors}.<modality>.<rest>``.
It is opened memory-mapped, so selecting one tower's tensors reads only
those bytes from disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from ..state_file import load_tensors_only
from .towers import PART_GROUPS, Tower

_SHOW = 5  # keys listed in an error message before "and N more"


def read_checkpoint(path: str | os.PathLike[str]) -> Mapping[str, torch.Tensor]:
    """Opens a state_dict memory-mapped (weights only: no code from the file runs).

    Raises FileNotFoundError if there is no such file and ValueError if it is
    not a state_dict in the ImageBind layout.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ImageBind checkpoint not found: {path}")
    try:
        state = load_tensors_only(path)  # an older, non-zip file loads too, into memory instead of mapped
    except ValueError as exc:
        raise ValueError(f"{exc}; expected the official ImageBind checkpoint, e.g. imagebind_huge.pth") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"{path} is not a plain state_dict (a mapping of parameter names to tensors) "
            f"but a {type(state).__name__}; expected the official ImageBind checkpoint format"
        )
    groups = tuple(f"{g}." for g in PART_GROUPS.values())
    if not any(k.startswith(groups) for k in state):
        raise ValueError(
            f"{path} does not look like an ImageBind checkpoint: none of its {len(state)} keys start with "
            f"{', '.join(PART_GROUPS.values())} (first keys: {_listing(list(state))})"
        )
    return state


def tower_state(state: Mapping[str, torch.Tensor], tower: Tower, source: str) -> dict[str, torch.Tensor]:
    """The tensors of ``tower`` from ``state``, keyed as the tower names them.

    Strict: every tensor the tower needs must be present with its shape, and
    no other key may claim to belong to this tower (a checkpoint with more
    blocks than the config, say). Raises ValueError naming ``source``.
    """
    modality = tower.modality
    prefixes = tuple(f"{group}.{modality}." for group in PART_GROUPS.values())
    expected = {tower.official_key(k): (k, t) for k, t in tower.state_dict(keep_vars=True).items()}
    problems: list[str] = []

    missing = [k for k in expected if k not in state]
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    unexpected = [k for k in state if k.startswith(prefixes) and k not in expected]
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    wrong = []
    for key, (_, want) in expected.items():
        have = state.get(key)
        if have is None:
            continue
        if tuple(have.shape) != tuple(want.shape):
            wrong.append(f"{key} is {tuple(have.shape)}, the config needs {tuple(want.shape)}")
        elif not have.is_floating_point():
            wrong.append(f"{key} has dtype {have.dtype}, expected a floating-point tensor")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) of the wrong shape or type: {_listing(wrong)}")
    if problems:
        raise ValueError(
            f"checkpoint {source} does not match the ImageBind {modality} tower of this config: "
            + "; ".join(problems)
            + ". Check that the file is an official ImageBind checkpoint and that the config "
            "(embed_dim / num_blocks / num_heads of this modality) describes it."
        )
    return {local: state[key] for key, (local, _) in expected.items()}


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown if len(items) <= _SHOW else f"{shown}, and {len(items) - _SHOW} more"

