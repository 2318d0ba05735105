"""Text files in UTF-16/32 (with a byte-order mark), Windows-1252 and Latin-1 are read; empty text is one rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from bindsearch.errors import MediaError, NothingToEmbed
from bindsearch.loaders.imu import read_imu
from bindsearch.loaders.text import load_text
from bindsearch.text_encoding import decode_text

TINY_IMAGEBIND = REPO / "examples" / "tiny-imagebind.json"
SENTENCE = "Café au lait, naïve façade — a dog’s “bark”\n"


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                           ("utf-16-be", b"\xfe\xff"), ("utf-32-le", b"\xff\xfe\x00\x00"),
                                           ("utf-32-be", b"\x00\x00\xfe\xff"), ("cp1252", b"")])
def test_text_files_in_common_encodings_read_the_same(tmp_path: Path, encoding: str, bom: bytes) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(bom + SENTENCE.encode(encoding))
    assert load_text(str(path), 4096) == SENTENCE


def test_latin1_bytes_that_windows_1252_leaves_undefined_still_read() -> None:
    assert decode_text("caf\u00e9 \x81".encode("latin-1")) == ("caf\u00e9 \x81", "latin-1")


def test_a_cut_multibyte_character_at_the_end_of_a_prefix_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_bytes(b"\xff\xfe" + ("\u00e9" * 3000).encode("utf-16-le"))
    assert load_text(str(path), 2001) == "\u00e9" * 999  # 2 BOM bytes, 999 characters, half of the next


@pytest.mark.parametrize("content", [b"\x00\x01\x02binary\x00", b"\xff\xfe\x00\xd8\x00\xd8", b"ab\x07cd"])
def test_binary_content_named_txt_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(content)
    with pytest.raises(MediaError) as caught:
        load_text(str(path), 4096)
    assert caught.value.reason == "not a text file (binary content)"


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n", b"\xef\xbb\xbf \n", b"\xff\xfe \x00\n\x00"])
def test_empty_and_whitespace_only_text_are_both_nothing_to_embed(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blank.txt"
    path.write_bytes(content)
    with pytest.raises(NothingToEmbed) as caught:
        load_text(str(path), 4096)
    assert caught.value.reason == "holds no text (empty, or only whitespace)"


def test_index_skips_empty_and_blank_text_alike(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "empty.txt").write_bytes(b"")
    (media / "blank.txt").write_bytes(b"  \n\n")
    (media / "utf16.txt").write_bytes(b"\xff\xfe" + "a dog barking".encode("utf-16-le"))
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(media), "--space", str(TINY_IMAGEBIND),
                           "--library", str(tmp_path / "lib"), "--json"], capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout)
    assert (report["added"], report["skipped"], report["failed"]) == (1, 2, 0), report
    assert done.returncode == 0


@pytest.mark.parametrize("encoding, bom", [("latin-1", b""), ("cp1252", b""), ("utf-16-le", b"\xff\xfe")])
def test_imu_csv_with_a_non_utf8_header_reads(tmp_path: Path, encoding: str, bom: bytes) -> None:
    rows = np.arange(60, dtype=np.float64).reshape(10, 6) / 10
    header = "accél_x;accél_y;accél_z;gyro_x °/s;gyro_y;gyro_z\n"
    body = "".join(";".join(f"{v:.1f}" for v in row) + "\n" for row in rows)
    path = tmp_path / "walk.imu.csv"
    path.write_bytes(bom + (header + body).encode(encoding))
    signal = read_imu(str(path))
    np.testing.assert_allclose(signal.values, rows)
