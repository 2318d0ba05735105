"""The pieces of an import: row checks against simple references, and the readers against whole-file loads."""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np
import pyarrow as pa
import pytest

from bindsearch.bulk_import.npz_source import NpzSource
from bindsearch.bulk_import.parquet_source import list_vectors
from bindsearch.bulk_import.rows import ALL_ZERO, NOT_FINITE, absolute_paths, last_of_each, parse_modalities, unit_rows
from bindsearch.errors import UsageError
from bindsearch.modality import Modality


def reference_unit(row: list[float]) -> tuple[list[float] | None, str | None]:
    if not all(math.isfinite(x) for x in row):
        return None, NOT_FINITE
    norm = math.sqrt(sum(x * x for x in row))
    if norm == 0:
        return None, ALL_ZERO
    if abs(norm - 1) <= 1e-6:
        return row, None  # unit already: kept bit for bit
    return [x / norm for x in row], None


def test_unit_rows_match_a_row_by_row_reference():
    rng = np.random.default_rng(3)
    scales = rng.choice([1e-30, 1.0, 1e30], size=(40, 1))
    vectors = (rng.normal(size=(40, 7)) * scales).astype(np.float32)
    vectors[3, 2] = np.nan
    vectors[5] = 0
    vectors[8, 0] = -np.inf
    vectors[10] /= np.linalg.norm(vectors[10].astype(np.float64))
    unit, reasons = unit_rows(vectors)
    assert unit.dtype == np.float32 and unit.shape == (40, 7)
    for i, row in enumerate(vectors.astype(np.float64).tolist()):
        expected, reason = reference_unit(row)
        assert reasons.get(i) == reason
        if expected is None:
            assert not unit[i].any()
        else:
            np.testing.assert_allclose(unit[i], expected, rtol=1e-6, atol=1e-7)
    assert set(reasons) == {3, 5, 8}
    assert unit[10].tobytes() == vectors[10].tobytes()
    with pytest.raises(ValueError, match="expected"):
        unit_rows(np.zeros(4))


def test_paths_modalities_and_repeats_are_checked_row_by_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths, reasons = absolute_paths(["a.png", "", None, "/x/../y/b.png", "bad\0name"])
    assert paths[0] == str(tmp_path / "a.png") and paths[3] == "/y/b.png"
    assert sorted(reasons) == [1, 2, 4] and "NUL" in reasons[4]
    modalities, reasons = parse_modalities(["Image", "audio", "smell", None], frozenset({Modality.IMAGE}), "tiny")
    assert modalities == [Modality.IMAGE, None, None, None]
    assert reasons == {1: "space tiny does not embed audio",
                       2: reasons[2], 3: "it has no modality"} and reasons[2].startswith("unknown modality 'smell'")
    keys = [("a", Modality.IMAGE), ("b", Modality.IMAGE), ("a", Modality.IMAGE), ("a", Modality.TEXT),
            ("a", Modality.IMAGE)]
    kept, dropped = last_of_each(keys, [0, 1, 2, 3])  # row 4 is not among the rows to import
    assert kept == [1, 2, 3] and dropped == {0: 2}


def test_absolute_paths_are_those_abspath_gives(tmp_path, monkeypatch):
    # Paths already absolute and normal are passed through without abspath: every odd spelling must still
    # come out as abspath makes it.
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    parts = ["a", "b.jpg", ".", "..", "", "x.y", "..z", ".q", "z.", "..."]
    paths = []
    for _ in range(5000):
        body = "/".join(parts[i] for i in rng.integers(0, len(parts), size=rng.integers(0, 6)))
        paths.append("/" * int(rng.integers(0, 4)) + body + ("/" if rng.random() < 0.3 else ""))
    paths = [p for p in paths if p]
    got, reasons = absolute_paths(paths)
    assert not reasons
    assert got == [os.path.abspath(p) for p in paths]


def test_rows_of_unit_length_already_are_the_same_bits():
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(50, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    unit, reasons = unit_rows(vectors)
    assert not reasons and unit.tobytes() == vectors.tobytes()
    vectors[7] *= 2  # one row not of unit length: it alone is scaled
    unit, _ = unit_rows(vectors)
    assert np.delete(unit, 7, axis=0).tobytes() == np.delete(vectors, 7, axis=0).tobytes()
    np.testing.assert_allclose(unit[7], vectors[7] / 2, rtol=1e-6)


def reference_lists(rows: list[list[float] | None], dim: int) -> tuple[np.ndarray, dict[int, str]]:
    out = np.zeros((len(rows), dim), np.float32)
    problems = {}
    for i, row in enumerate(rows):
        if row is None:
            problems[i] = "it has no vector"
        elif len(row) != dim:
            problems[i] = f"its vector has {len(row)} values, not {dim}"
        else:
            out[i] = [np.nan if x is None else x for x in row]
    return out, problems


@pytest.mark.parametrize("sliced", [False, True])
def test_list_vectors_match_a_reference_for_every_list_type(sliced):
    rng = np.random.default_rng(5)
    rows: list = [rng.normal(size=4).tolist() for _ in range(12)]
    rows[2], rows[6] = None, rows[6][:3]
    rows[9] = [1.0, None, 2.0, 3.0]
    for arrow_type in (pa.list_(pa.float64()), pa.large_list(pa.float32())):
        column = pa.array(rows, type=arrow_type)
        column, expected_rows = (column.slice(1, 10), rows[1:11]) if sliced else (column, rows)
        out, problems = list_vectors(column, 4, fixed=False)
        expected, expected_problems = reference_lists(expected_rows, 4)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
        assert problems == expected_problems
    fixed_rows = [r if r is None or len(r) == 4 else [*r, 0.0] for r in rows]
    column = pa.array(fixed_rows, type=pa.list_(pa.float32(), 4))
    column, expected_rows = (column.slice(1, 10), fixed_rows[1:11]) if sliced else (column, fixed_rows)
    out, problems = list_vectors(column, 4, fixed=True)
    expected, expected_problems = reference_lists(expected_rows, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert problems == expected_problems


@pytest.mark.parametrize("layout", ["plain", "compressed", "fortran"])
def test_npz_rows_stream_as_np_load_reads_them(tmp_path, layout):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(23, 5)).astype(np.float16)
    if layout == "fortran":
        vectors = np.asfortranarray(vectors)
    arrays = {"paths": np.array([f"/p/{i}.png" for i in range(23)]), "vectors": vectors,
              "modality": np.array("image"), "tags": np.array([["a", ""], ["", ""]] * 11 + [["b", "c"]])}
    save = np.savez_compressed if layout == "compressed" else np.savez
    save(tmp_path / "v.npz", **arrays)
    source = NpzSource(str(tmp_path / "v.npz"))
    try:
        assert (source.header.rows, source.header.dim, source.header.space) == (23, 5, None)
        chunks = list(source.chunks(7))
    finally:
        source.close()
    assert [c.first for c in chunks] == [0, 7, 14, 21]
    np.testing.assert_array_equal(np.concatenate([c.vectors for c in chunks]), vectors.astype(np.float32))
    assert [p for c in chunks for p in c.paths] == arrays["paths"].tolist()
    assert [m for c in chunks for m in c.modalities] == ["image"] * 23
    assert [t for c in chunks for t in c.tags] == [["a"], []] * 11 + [["b", "c"]]


def test_a_damaged_npz_is_one_usage_error(tmp_path):
    np.savez(tmp_path / "v.npz", path=np.array(["/a.png"] * 1000), modality=np.array("image"),
             vector=np.ones((1000, 64), np.float32))
    data = (tmp_path / "v.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="cut.npz"):
        source = NpzSource(str(tmp_path / "cut.npz"))
        list(source.chunks(100))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UsageError, match="not a readable .npz file"):
        NpzSource(str(tmp_path / "text.npz"))
    with zipfile.ZipFile(tmp_path / "few.npz", "w") as archive:
        archive.writestr("vector.npy", data[:0])
    with pytest.raises(UsageError, match="has no 'path' array"):
        NpzSource(str(tmp_path / "few.npz"))
