"""``bindsearch bind``: ImageBind's method as a command. A tower for a new modality (or a better one for a
modality the space has) learns from (image, X) pairs to match the space's frozen image embeddings; the
modality then lines up with every other through the images."""

from .pairs import BadRow, Pair, read_pairs
from .run import BindObserver, BindReport, bind
from .trainer import EpochResult

__all__ = ["BadRow", "BindObserver", "BindReport", "EpochResult", "Pair", "bind", "read_pairs"]
