"""CLIP's byte-level byte-pair encoding, read from the vocabulary file OpenCLIP ships.

The definition (Radford et al., CLIP, 2021):

* clean the text: repair mojibake and odd code points with ftfy, unescape
  HTML entities twice, collapse runs of whitespace to one space, strip, and
  lower-case;
* split it into pieces: the special tokens ``<start_of_text>`` and
  ``<end_of_text>``, the contractions ``'s 't 're 've 'm 'll 'd``, runs of
  letters, single digits, and runs of anything else but whitespace;
* write each piece's UTF-8 bytes as printable characters (one fixed
  character per byte value), mark its last character as ending a word
  (``</w>``), then merge adjacent symbols, always the pair that comes first in
  the merge list, until no listed pair is left;
* the ids: 256 byte characters, the same 256 ending a word, one per merge (the
  first 48 894 lines of the merge list), then the two special tokens.

Only the vocabulary file is taken from the installed OpenCLIP package, found
without importing it: importing OpenCLIP costs seconds, every text query.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import itertools
from pathlib import Path

START_OF_TEXT = "<start_of_text>"
END_OF_TEXT = "<end_of_text>"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # CLIP's vocabulary is 49 152 entries before the special tokens
END_OF_WORD = "</w>"

# The pieces a cleaned text is cut into (CLIP's pattern; the `regex` module knows the \p classes).
_PIECES = (
    rf"{START_OF_TEXT}|{END_OF_TEXT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+"
)
# Printable ASCII but '&' (whose entities the cleaning would unescape), and the whitespace ftfy leaves alone:
# on such text ftfy changes nothing, so it need not be imported for it.
_ASCII_FTFY_KEEPS = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"&"} | {"\t", "\n"}


def vocabulary_path() -> Path:
    """The BPE merge list inside the installed OpenCLIP package, located without running its code."""
    spec = importlib.util.find_spec("open_clip")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"CLIP tokenizer vocabulary {VOCAB_FILE} not found in the open_clip package; "
        "reinstall it with `pip install open_clip_torch`"
    )


@functools.lru_cache(maxsize=1)
def byte_characters() -> tuple[str, ...]:
    """The character standing for each byte value 0..255.

    Printable Latin-1 bytes stand for themselves; the others (controls, space,
    soft hyphen...) take the code points from 256 on, in byte order, so that
    no symbol is whitespace or a control character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    kept = set(printable)
    chars = {}
    extra = 0
    for byte in range(256):
        if byte in kept:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return tuple(chars[b] for b in range(256))


class ClipBPE:
    """CLIP's tokenizer: ``encode(text)`` gives the token ids of a text, without start and end tokens."""

    def __init__(self, vocabulary: Path | None = None) -> None:
        import regex  # the \p{L} and \p{N} classes; a small C extension, quick to import

        with gzip.open(vocabulary or vocabulary_path()) as f:
            lines = f.read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]  # line 0 is a version header
        if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"CLIP vocabulary {vocabulary}: expected {NUM_MERGES} merges of two symbols")
        # Byte characters in code point order: the printable bytes (themselves), then the remapped ones.
        symbols = sorted(byte_characters(), key=ord)
        symbols += [s + END_OF_WORD for s in symbols]
        symbols += ["".join(m) for m in merges]
        symbols += [START_OF_TEXT, END_OF_TEXT]
        self.ids = {symbol: i for i, symbol in enumerate(symbols)}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.start_id, self.end_id = self.ids[START_OF_TEXT], self.ids[END_OF_TEXT]
        self._pieces = regex.compile(_PIECES, regex.IGNORECASE)
        self._bytes = byte_characters()

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self._pieces.findall(clean(text)):
            if piece in (START_OF_TEXT, END_OF_TEXT):
                out.append(self.ids[piece])
                continue
            word = "".join(self._bytes[b] for b in piece.encode("utf-8"))
            out.extend(self.ids[symbol] for symbol in self._merge(word))
        return out

    @functools.lru_cache(maxsize=65536)  # noqa: B019  (one tokenizer lives for the process)
    def _merge(self, word: str) -> tuple[str, ...]:
        """The symbols of one piece after every merge it allows."""
        symbols = [*word[:-1], word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            ranked = [(self.ranks[pair], pair) for pair in itertools.pairwise(symbols) if pair in self.ranks]
            if not ranked:
                break
            _, (first, second) = min(ranked)
            merged, i = [], 0
            while i < len(symbols):  # every occurrence of the pair, left to right, without overlaps
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(symbols)


def clean(text: str) -> str:
    """CLIP's text cleaning: ftfy, HTML entities unescaped twice, whitespace collapsed, lower case."""
    if not set(text) <= _ASCII_FTFY_KEEPS:
        import ftfy  # imported only for text it may change: it takes a good part of a second to load

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()

