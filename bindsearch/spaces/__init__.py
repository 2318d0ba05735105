"""Spaces: model families whose encoders share one vector space."""

from .base import Encoder, Space
from .registry import DEFAULT_SPACE, SPACE_KINDS, load_space, register_space_kind

__all__ = ["DEFAULT_SPACE", "SPACE_KINDS", "Encoder", "Space", "load_space", "register_space_kind"]
