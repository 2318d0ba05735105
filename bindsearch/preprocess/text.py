"""Strings to the (n, 77) int64 token ids the ImageBind text encoder takes.

The tokenizer is CLIP's byte-pair encoding (``clip_bpe.py``, on the vocabulary
open_clip ships), with CLIP's text cleaning (ftfy fix, HTML unescape,
whitespace collapse, lower case). Each row is: start token, the text's tokens,
end token, zeros.
A text too long for the context keeps its first tokens and ends with the end
token, because the encoder reads its summary at the end token's position.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from .clip_bpe import ClipBPE

CONTEXT_LENGTH = 77
START_TOKEN = 49406  # <start_of_text>
END_TOKEN = 49407  # <end_of_text>
VOCAB_SIZE = 49408


@functools.lru_cache(maxsize=1)
def _tokenizer() -> ClipBPE:
    """CLIP's BPE tokenizer, built once (reading its vocabulary takes a fraction of a second)."""
    tok = ClipBPE()
    # Guard against a vocabulary whose special tokens moved: the model's embedding table expects these ids.
    if (tok.start_id, tok.end_id) != (START_TOKEN, END_TOKEN):
        raise RuntimeError(
            f"unexpected CLIP tokenizer special ids {tok.start_id}, {tok.end_id}"
            f" (expected {START_TOKEN}, {END_TOKEN})"
        )
    return tok


def token_ids(text: str, context_length: int = CONTEXT_LENGTH) -> list[int]:
    """The unpadded token ids of one text: start, BPE tokens, end; at most ``context_length`` long."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    if context_length < 2:
        raise ValueError("context_length must leave room for the start and end tokens")
    body = _tokenizer().encode(text)
    # Keep the first tokens; the end token always closes the row, as the encoder pools at its position.
    body = body[: context_length - 2]
    return [START_TOKEN, *body, END_TOKEN]


def tokenize(texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """One text or several to an int64 tensor (n, context_length), zero-padded on the right."""
    if isinstance(texts, str):
        texts = [texts]
    out = torch.zeros((len(texts), context_length), dtype=torch.int64)
    for row, text in enumerate(texts):
        ids = token_ids(text, context_length)
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out
