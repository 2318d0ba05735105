"""Depth, thermal and IMU loaders: unit conventions, geometry, resampling, windows, and a MediaError for every bad file.

Every file here is written with NumPy or Pillow into tmp_path; nothing needs
the network or model weights.
"""

from __future__ import annotations

import dataclasses
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bindsearch.errors import MediaError
from bindsearch.loaders.depth import DepthSettings, load_depth, normalized_disparity, read_depth
from bindsearch.loaders.imu import (
    ImuSettings,
    load_imu,
    orient,
    parse_table,
    timestamp_unit_seconds,
    window_starts,
)
from bindsearch.loaders.thermal import ThermalSettings, load_thermal
from bindsearch.preprocess.image import center_crop_box, resized_size
from bindsearch.preprocess.sensors import masked_resize_crop, resize_crop, resize_weights

FOCAL, BASELINE, MAX_DISP, D_MEAN, D_STD = 518.857901, 0.075, 75.0, 0.0418, 0.0295
NEEDS_6 = "needs 6 channels (accelerometer x, y, z and gyroscope x, y, z)"


def expected_depth_value(depth_m: float) -> float:
    """The documented formula, written out independently of the loader."""
    disparity = FOCAL * BASELINE / depth_m if depth_m > 0 else 0.0
    return (min(disparity, MAX_DISP) / MAX_DISP - D_MEAN) / D_STD


def save_u16(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(np.asarray(array, dtype=np.uint16)).save(path)
    return path


def media_error(fn, *args, **kwargs) -> str:
    """Call ``fn`` expecting MediaError (and nothing else); return its reason."""
    with pytest.raises(MediaError) as info:
        fn(*args, **kwargs)
    assert info.value.path == str(args[0])
    assert "\n" not in info.value.reason
    return info.value.reason


def claim_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims another size (with a valid CRC), the data left as is."""
    assert png[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [DepthSettings, ThermalSettings, ImuSettings])
def test_settings_from_dict_rejects_unknown_keys(cls) -> None:
    assert cls.from_dict({}) == cls() == cls.from_dict(None)
    with pytest.raises(ValueError, match="unknown settings bogus, other"):
        cls.from_dict({"other": 1, "bogus": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cls().mean = 3  # type: ignore[misc]


def test_settings_defaults_and_values() -> None:
    d = DepthSettings()
    assert (d.focal_length_px, d.baseline_m, d.max_disparity) == (FOCAL, BASELINE, MAX_DISP)
    assert (d.mean, d.std) == (D_MEAN, D_STD)
    assert (ThermalSettings().mean, ThermalSettings().std) == (0.0, 1.0)
    i = ImuSettings()
    assert (i.sample_rate_hz, i.target_rate_hz, i.num_clips, i.timestamp_unit) == (200.0, 200.0, 3, "auto")
    assert DepthSettings.from_dict({"baseline_m": 0.1}).baseline_m == 0.1
    assert ImuSettings.from_dict({"timestamp_unit": "ms", "num_clips": 5}).num_clips == 5
    for bad in ({"std": 0}, {"max_disparity": -1}, {"focal_length_px": "518"}, {"mean": float("nan")}):
        with pytest.raises(ValueError):
            DepthSettings.from_dict(bad)
    for bad in ({"num_clips": 0}, {"num_clips": 2.5}, {"timestamp_unit": "min"}, {"sample_rate_hz": True}):
        with pytest.raises(ValueError):
            ImuSettings.from_dict(bad)
    with pytest.raises(ValueError):
        ThermalSettings.from_dict({"std": -1.0})


# --- shared resize / crop -----------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape", [(48, 64), (64, 48), (300, 250), (3, 7), (1, 1), (2, 500)])
def test_resize_crop_equals_torch_antialiased_interpolate(kernel: str, shape: tuple[int, int]) -> None:
    x = np.random.default_rng(0).random(shape)
    h, w = shape
    new_w, new_h = resized_size(w, h)
    left, top, right, bottom = center_crop_box(new_w, new_h)
    ref = F.interpolate(torch.from_numpy(x)[None, None], size=(new_h, new_w), mode=kernel, antialias=True)
    out = resize_crop(x, 224, kernel)
    assert out.shape == (224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref[0, 0, top:bottom, left:right].float(), atol=1e-6, rtol=0)


def test_resize_weights_rows_sum_to_one() -> None:
    for n, m in [(1, 224), (640, 224), (224, 224), (5, 3)]:
        w = resize_weights(n, m, "bicubic")
        torch.testing.assert_close(w.sum(1), torch.ones(m, dtype=torch.float64))
    assert resize_weights(640, 298, "bilinear", start=37, count=224).shape == (224, 640)


def test_masked_resize_ignores_missing_values() -> None:
    x = np.full((40, 60), 0.3)
    valid = np.ones_like(x, dtype=bool)
    torch.testing.assert_close(masked_resize_crop(x, valid), resize_crop(x))
    x[10:12, 20:23] = np.nan  # upsampled, a hole stays a hole (fill), its border keeps the true value
    out = masked_resize_crop(x, np.isfinite(x), fill=-1.0)
    assert bool(((out == -1.0) | ((out - 0.3).abs() < 1e-6)).all())
    assert 0 < int((out == -1.0).sum()) < 2 * 3 * 5.6**2
    big = np.full((480, 640), 0.3)
    big[3::7, 2::5] = np.nan  # shrunk, isolated holes are filled from their neighbours
    filled = masked_resize_crop(big, np.isfinite(big))
    torch.testing.assert_close(filled, torch.full((224, 224), 0.3), atol=1e-6, rtol=0)


# --- depth --------------------------------------------------------------------------------------


def test_depth_png_millimetres_match_formula(tmp_path: Path) -> None:
    out = load_depth(str(save_u16(tmp_path / "wall.depth.png", np.full((48, 64), 2000))))
    assert out.shape == (1, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.full((1, 224, 224), expected_depth_value(2.0)), atol=1e-4, rtol=0)
    assert abs(expected_depth_value(2.0) - 7.3773) < 1e-3  # the worked example of the module docstring


def test_depth_same_scene_in_every_format_gives_the_same_tensor(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    mm = rng.integers(500, 8000, size=(30, 40)).astype(np.uint16)
    mm[5:9, 10:20] = 0  # unmeasured
    metres = np.where(mm > 0, mm / 1000.0, np.nan)
    ref = load_depth(str(save_u16(tmp_path / "a.png", mm)))
    Image.fromarray(mm).save(tmp_path / "a.tif")
    np.save(tmp_path / "a.npy", metres)
    np.save(tmp_path / "b.npy", metres.astype(np.float32)[None])  # (1, H, W)
    np.save(tmp_path / "c.npy", np.where(mm > 0, mm / 1000.0, -1.0)[:, :, None])  # (H, W, 1), <= 0 = missing
    np.savez(tmp_path / "d.npz", metres)
    np.savez(tmp_path / "e.npz", depth=metres, rgb=np.zeros((30, 40, 3)))
    Image.fromarray(metres.astype(np.float32), "F").save(tmp_path / "f.tif")
    for name in ["a.tif", "a.npy", "b.npy", "c.npy", "d.npz", "e.npz", "f.tif"]:
        torch.testing.assert_close(load_depth(str(tmp_path / name)), ref, atol=1e-4, rtol=0, msg=name)


def test_missing_depth_is_zero_disparity_without_bleeding(tmp_path: Path) -> None:
    mm = np.full((40, 80), 2000, dtype=np.uint16)
    mm[:, :40] = 0  # left half unmeasured
    disparity, valid = normalized_disparity(np.where(mm > 0, mm / 1000.0, np.nan))
    assert (disparity[:, :40] == 0).all() and not valid[:, :40].any()
    out = load_depth(str(save_u16(tmp_path / "half.png", mm)))[0]
    far, wall = expected_depth_value(0.0), expected_depth_value(2.0)
    assert abs(far - (0 - D_MEAN) / D_STD) < 1e-9
    # Each pixel is either unmeasured or the wall: the hole does not drag the wall's disparity down.
    is_far = (out - far).abs() < 1e-4
    is_wall = (out - wall).abs() < 1e-4
    assert bool((is_far | is_wall).all())
    assert is_far[:, :100].all() and is_wall[:, 124:].all()


def test_depth_disparity_is_clamped_and_scales_with_settings(tmp_path: Path) -> None:
    near = str(save_u16(tmp_path / "near.png", np.full((8, 8), 100)))  # 0.1 m: 389 px, clamped to 75
    torch.testing.assert_close(load_depth(near), torch.full((1, 224, 224), (1 - D_MEAN) / D_STD), atol=1e-4, rtol=0)
    wall = str(save_u16(tmp_path / "wall.png", np.full((8, 8), 4000)))
    settings = DepthSettings(baseline_m=0.15, mean=0.0, std=1.0)
    want = 518.857901 * 0.15 / 4.0 / 75.0
    torch.testing.assert_close(load_depth(wall, settings), torch.full((1, 224, 224), want), atol=1e-6, rtol=0)


def test_depth_8bit_png_is_relative_disparity(tmp_path: Path) -> None:
    img = np.zeros((20, 30), dtype=np.uint8)
    img[:, 15:] = 255
    Image.fromarray(img).save(tmp_path / "rel.png")
    data = read_depth(str(tmp_path / "rel.png"))
    assert data.relative and data.values.min() == 0.0 and data.values.max() == 1.0
    out = load_depth(str(tmp_path / "rel.png"))[0]
    assert abs(out[0, 0].item() - (0 - D_MEAN) / D_STD) < 1e-4  # black: far
    assert abs(out[0, -1].item() - (1 - D_MEAN) / D_STD) < 1e-4  # white: max_disparity
    Image.fromarray(np.full((5, 5), 51, dtype=np.uint8)).save(tmp_path / "grey.png")
    grey = load_depth(str(tmp_path / "grey.png"))
    torch.testing.assert_close(grey, torch.full((1, 224, 224), (0.2 - D_MEAN) / D_STD))


@pytest.mark.parametrize("shape", [(300, 100), (100, 300), (1, 1), (2, 3), (7, 1), (1, 400), (224, 224)])
def test_depth_shapes(tmp_path: Path, shape: tuple[int, int]) -> None:
    # A left-to-right ramp: the centre crop keeps the middle of the ramp.
    ramp = np.tile(np.linspace(1000, 3000, shape[1]), (shape[0], 1)).astype(np.uint16)
    out = load_depth(str(save_u16(tmp_path / "m.png", ramp)))
    assert out.shape == (1, 224, 224) and out.dtype == torch.float32 and torch.isfinite(out).all()
    middle = expected_depth_value(float(ramp[0, (shape[1] - 1) // 2]) / 1000.0)
    if shape[1] > 2:
        assert abs(out[0, 112, 112].item() - middle) < 0.15 * abs(middle)


def test_depth_1x1_png_is_just_resized(tmp_path: Path) -> None:
    out = load_depth(str(save_u16(tmp_path / "dot.png", [[2000]])))
    torch.testing.assert_close(out, torch.full((1, 224, 224), expected_depth_value(2.0)), atol=1e-4, rtol=0)


def test_depth_refuses_decompression_bomb(tmp_path: Path) -> None:
    small = save_u16(tmp_path / "small.png", np.full((8, 8), 1000)).read_bytes()
    (tmp_path / "bomb.png").write_bytes(claim_size(small, 100_000, 100_000))
    assert "too large" in media_error(load_depth, str(tmp_path / "bomb.png"))
    assert "too large" in media_error(load_thermal, str(tmp_path / "bomb.png"))
    # The limit is a parameter; a map over it is refused before decoding.
    small_map = str(save_u16(tmp_path / "m.png", np.ones((20, 20))))
    assert "20 x 20 pixels" in media_error(load_depth, small_map, max_pixels=100)
    # The same check applies to arrays, from the header alone.
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 2)))
    header["shape"] = (100_000, 100_000)
    with open(tmp_path / "bomb.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    assert "too large" in media_error(load_depth, str(tmp_path / "bomb.npy"))


def test_depth_bad_files(tmp_path: Path) -> None:
    p = tmp_path
    save_u16(p / "zeros.png", np.zeros((8, 8)))
    np.save(p / "nan.npy", np.full((8, 8), np.nan))
    Image.new("RGB", (8, 8), (10, 20, 30)).save(p / "colour.png")
    Image.new("P", (8, 8)).save(p / "palette.png")
    np.save(p / "int.npy", np.full((8, 8), 2000, dtype=np.uint16))
    np.save(p / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(p / "rgb.npy", np.ones((3, 8, 8)))
    np.save(p / "flat.npy", np.ones(8))
    np.save(p / "empty.npy", np.ones((0, 8)))
    np.savez(p / "two.npz", a=np.ones((4, 4)), b=np.ones((4, 4)))
    np.save(p / "ok.npy", np.ones((8, 8)))
    (p / "trunc.npy").write_bytes((p / "ok.npy").read_bytes()[:-40])
    save_u16(p / "ok.png", np.arange(4096).reshape(64, 64) * 7)
    (p / "trunc.png").write_bytes((p / "ok.png").read_bytes()[:-60])
    (p / "blank.png").write_bytes(b"")
    (p / "notes.png").write_text("not an image at all\n")
    (p / "image.npy").write_bytes((p / "ok.png").read_bytes())
    (p / "corrupt.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    (p / "sound.tif").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40)
    (p / "folder.png").mkdir()
    cases = {
        "zeros.png": "no depth measurement",
        "nan.npy": "no depth measurement",
        "colour.png": "colour (RGB) image",
        "palette.png": "palette",
        "int.npy": "floating-point metres",
        "pickle.npy": "Python objects",
        "rgb.npy": "must be (H, W), (1, H, W) or (H, W, 1)",
        "flat.npy": "must be (H, W)",
        "empty.npy": "empty",
        "two.npz": "none is named 'depth'",
        "trunc.npy": "truncated",
        "trunc.png": "truncated",
        "blank.png": "empty file",
        "notes.png": "plain text",
        "image.npy": "content is PNG (image), not a NumPy .npy array",
        "corrupt.npz": "corrupt .npz",
        "sound.tif": "WAV (audio)",
        "folder.png": "directory",
        "missing.png": "no such file",
    }
    for name, reason in cases.items():
        assert reason in media_error(load_depth, str(p / name)), name


def test_depth_applies_exif_orientation(tmp_path: Path) -> None:
    mm = np.tile(np.linspace(1000, 3000, 40), (20, 1)).astype(np.uint16)
    img = Image.fromarray(mm)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "tagged.png", exif=exif)
    img.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "upright.png")
    assert Image.open(tmp_path / "upright.png").size == (20, 40)
    torch.testing.assert_close(load_depth(str(tmp_path / "tagged.png")), load_depth(str(tmp_path / "upright.png")))


# --- thermal ------------------------------------------------------------------------------------


def test_thermal_8bit_is_value_over_255(tmp_path: Path) -> None:
    Image.fromarray(np.full((30, 40), 128, dtype=np.uint8)).save(tmp_path / "t.png")
    Image.fromarray(np.full((30, 40), 128, dtype=np.uint8)).save(tmp_path / "t.bmp")
    for name in ["t.png", "t.bmp"]:
        out = load_thermal(str(tmp_path / name))
        assert out.shape == (1, 224, 224) and out.dtype == torch.float32
        torch.testing.assert_close(out, torch.full((1, 224, 224), 128 / 255), atol=1e-6, rtol=0)
    Image.fromarray(np.full((30, 40), 128, dtype=np.uint8)).save(tmp_path / "t.jpg", quality=100)
    assert abs(load_thermal(str(tmp_path / "t.jpg")).mean().item() - 128 / 255) < 2 / 255
    settings = ThermalSettings(mean=0.5, std=0.25)
    torch.testing.assert_close(
        load_thermal(str(tmp_path / "t.png"), settings), torch.full((1, 224, 224), (128 / 255 - 0.5) / 0.25)
    )


def test_thermal_16bit_is_min_max_stretched(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    scene = rng.random((60, 80))
    a = save_u16(tmp_path / "a.png", 7000 + np.round(scene * 1000))
    b = save_u16(tmp_path / "b.tif", 20000 + np.round(scene * 1000))  # another camera: other offset
    ta, tb = load_thermal(str(a)), load_thermal(str(b))
    torch.testing.assert_close(ta, tb)
    assert ta.min() >= 0 and ta.max() <= 1
    # The stretched extremes are exactly 0 and 1 before resizing.
    ramp = save_u16(tmp_path / "ramp.png", np.tile(np.arange(224) * 10 + 3000, (224, 1)))
    out = load_thermal(str(ramp))[0]
    assert out[0, 0].item() == pytest.approx(0.0, abs=1e-6) and out[0, -1].item() == pytest.approx(1.0, abs=1e-6)
    # A constant 16-bit image carries no contrast: all 0.
    assert load_thermal(str(save_u16(tmp_path / "flat.png", np.full((9, 9), 5000)))).abs().max() == 0


def test_thermal_rgb_and_rgba_use_luma(tmp_path: Path) -> None:
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    Image.new("RGB", (50, 30), (200, 100, 50)).save(tmp_path / "rgb.png")
    Image.new("RGBA", (50, 30), (200, 100, 50, 128)).save(tmp_path / "rgba.png")
    for name in ["rgb.png", "rgba.png"]:
        out = load_thermal(str(tmp_path / name))
        assert out.shape == (1, 224, 224)
        assert abs(out.mean().item() - luma) < 1 / 255 and out.std().item() < 1e-6


def test_thermal_shapes_and_exif(tmp_path: Path) -> None:
    for size in [(300, 100), (100, 300), (1, 1), (3, 2)]:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, size[::-1], dtype=np.uint8)).save(tmp_path / "x.png")
        assert load_thermal(str(tmp_path / "x.png")).shape == (1, 224, 224)
    img = Image.fromarray(np.tile(np.arange(0, 240, 6, dtype=np.uint8), (20, 1)))
    exif = Image.Exif()
    exif[0x0112] = 8
    img.save(tmp_path / "tagged.png", exif=exif)
    img.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "upright.png")
    torch.testing.assert_close(load_thermal(str(tmp_path / "tagged.png")), load_thermal(str(tmp_path / "upright.png")))


def test_thermal_bad_files(tmp_path: Path) -> None:
    p = tmp_path
    Image.fromarray(np.full((8, 8), np.nan, dtype=np.float32), "F").save(p / "nan.tif")
    np.save(p / "array.npy", np.ones((8, 8)))
    (p / "array.png").write_bytes((p / "array.npy").read_bytes())
    (p / "blank.png").write_bytes(b"")
    (p / "text.jpg").write_text("hello\n")
    (p / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    cases = {
        "nan.tif": "no finite value",
        "array.png": "content is a NumPy .npy array, not an image",
        "blank.png": "empty file",
        "text.jpg": "plain text",
        "garbage.png": "",
        "missing.png": "no such file",
    }
    for name, reason in cases.items():
        assert reason in media_error(load_thermal, str(p / name)), name


# --- IMU ----------------------------------------------------------------------------------------


def imu_signal(n: int, rate: float = 200.0) -> np.ndarray:
    """(n, 6): each channel a distinct smooth function of time."""
    t = np.arange(n) / rate
    return np.stack([np.sin(t * (c + 1)) + c for c in range(6)], axis=1)


def write_csv(path: Path, rows: np.ndarray, sep: str = ",", header: str | None = None, fmt: str = "{!r}") -> Path:
    lines = [header] if header is not None else []
    lines += [sep.join(fmt.format(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_imu_orientation_detection(tmp_path: Path) -> None:
    data = imu_signal(500)
    np.save(tmp_path / "rows.npy", data)
    np.save(tmp_path / "cols.npy", data.T.copy())
    np.save(tmp_path / "batched.npy", data[None])
    ref = load_imu(str(tmp_path / "rows.npy"))
    assert ref.shape == (1, 6, 2000) and ref.dtype == torch.float32
    torch.testing.assert_close(ref[0, :, :500], torch.from_numpy(data.T).float())
    torch.testing.assert_close(load_imu(str(tmp_path / "cols.npy")), ref)
    torch.testing.assert_close(load_imu(str(tmp_path / "batched.npy")), ref)
    square = np.arange(36, dtype=np.float64).reshape(6, 6)
    assert orient(square) is square or np.array_equal(orient(square), square)  # 6 x 6: rows are samples
    assert orient(np.zeros((7, 50))).shape == (50, 7)
    assert orient(np.zeros((6, 7))).shape == (7, 6)  # length 6 wins over 7
    with pytest.raises(ValueError, match="found 3"):
        orient(np.zeros((3, 100)))


def test_imu_csv_header_and_separators_agree(tmp_path: Path) -> None:
    data = imu_signal(300)
    np.save(tmp_path / "ref.npy", data)
    ref = load_imu(str(tmp_path / "ref.npy"))
    files = [
        write_csv(tmp_path / "plain.csv", data),
        write_csv(tmp_path / "header.csv", data, header="ax,ay,az,gx,gy,gz"),
        write_csv(tmp_path / "semi.csv", data, sep=";", header="ax;ay;az;gx;gy;gz"),
        write_csv(tmp_path / "tab.csv", data, sep="\t"),
        write_csv(tmp_path / "space.csv", data, sep="   ", header="# a comment line\nax ay az gx gy gz"),
        write_csv(tmp_path / "trailing.csv", data, sep=",", fmt="{!r}", header='"ax","ay","az","gx","gy","gz",'),
    ]
    (tmp_path / "trailing.csv").write_text(
        "\n".join([l + "," for l in (tmp_path / "trailing.csv").read_text().splitlines()]) + "\n"
    )
    for f in files:
        torch.testing.assert_close(load_imu(str(f)), ref, msg=f.name)
    # Decimal commas with a ';' separator, quoted cells, a UTF-8 BOM and a CRLF line ending.
    text = "\ufeffax;ay;az;gx;gy;gz\r\n" + "\r\n".join(
        ";".join('"' + repr(float(v)).replace(".", ",") + '"' for v in row) for row in data
    )
    (tmp_path / "euro.csv").write_text(text, encoding="utf-8")
    torch.testing.assert_close(load_imu(str(tmp_path / "euro.csv")), ref)


def test_parse_table_separators() -> None:
    assert parse_table("1,2,3\n4,5,6\n").shape == (2, 3)
    assert parse_table("a b c\n1 2 3\n4 5 6\n").tolist() == [[1, 2, 3], [4, 5, 6]]
    assert parse_table("1;2,5;3\n4;5;6\n").tolist() == [[1, 2.5, 3], [4, 5, 6]]
    assert np.isnan(parse_table("1,,3\n4,5,6\n")[0, 1])
    assert parse_table("1\t2\n3\t4\n").shape == (2, 2)


@pytest.mark.parametrize("unit,scale", [("s", 1.0), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)])
def test_imu_timestamps_set_the_rate(tmp_path: Path, unit: str, scale: float) -> None:
    # 100 Hz, channel values linear in time: resampling to 200 Hz interpolates exactly.
    n, rate = 400, 100.0
    t = np.arange(n) / rate
    values = np.stack([t * (c + 1) for c in range(6)], axis=1)
    stamps = 1_000 + t * scale  # an arbitrary clock origin
    write_csv(tmp_path / "imu.csv", np.column_stack([stamps, values]), header="t,ax,ay,az,gx,gy,gz")
    out = load_imu(str(tmp_path / "imu.csv"))
    assert out.shape == (1, 6, 2000)
    length = 2 * (n - 1) + 1  # 3.99 s at 200 Hz
    grid = np.arange(length) / 200.0
    want = np.stack([grid * (c + 1) for c in range(6)])
    np.testing.assert_allclose(out[0, :, :length].numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[0, :, length:].numpy(), np.repeat(want[:, -1:], 2000 - length, 1), rtol=1e-6)
    assert timestamp_unit_seconds(1 / rate * scale) == 1 / scale


def test_imu_rate_setting_and_integer_nanosecond_clock(tmp_path: Path) -> None:
    data = imu_signal(801, rate=400.0)
    write_csv(tmp_path / "fast.csv", data)
    by_setting = load_imu(str(tmp_path / "fast.csv"), ImuSettings(sample_rate_hz=400.0))
    stamps = np.int64(1_700_000_000_000_000_000) + np.arange(801, dtype=np.int64) * 2_500_000  # ns since epoch
    table = np.column_stack([stamps, np.round(data * 1e6).astype(np.int64)])
    np.save(tmp_path / "clock.npy", table)
    by_clock = load_imu(str(tmp_path / "clock.npy"))
    torch.testing.assert_close(by_clock, torch.round(by_setting * 1e6), atol=1.0, rtol=0)
    # 400 Hz halved to 200 Hz: every other sample, exactly.
    np.testing.assert_allclose(by_setting[0, :, :401].numpy(), data[::2].T.astype(np.float32), rtol=1e-6)
    # An explicit unit overrides the automatic choice: 0.2 steps read as seconds (5 Hz), not milliseconds.
    slow = np.column_stack([np.arange(20) * 0.2, imu_signal(20)])
    np.save(tmp_path / "slow.npy", slow)
    auto = load_imu(str(tmp_path / "slow.npy"))
    assert auto.shape == (1, 6, 2000)  # read as 5 kHz: 3.8 ms, 1 sample at 200 Hz, then padding
    seconds = load_imu(str(tmp_path / "slow.npy"), ImuSettings(timestamp_unit="s"))
    assert seconds.shape == (1, 6, 2000) and not torch.equal(seconds, auto)
    np.testing.assert_allclose(seconds[0, :, 40].numpy(), slow[1, 1:], rtol=1e-6)  # 0.2 s = sample 40 at 200 Hz


def test_imu_row_number_column_is_dropped(tmp_path: Path) -> None:
    data = imu_signal(300)
    np.save(tmp_path / "ref.npy", data)
    (tmp_path / "pandas.csv").write_text(
        ",ax,ay,az,gx,gy,gz\n"
        + "".join(f"{i}," + ",".join(repr(float(v)) for v in row) + "\n" for i, row in enumerate(data))
    )
    torch.testing.assert_close(load_imu(str(tmp_path / "pandas.csv")), load_imu(str(tmp_path / "ref.npy")))


def test_imu_nan_interpolation(tmp_path: Path) -> None:
    data = np.tile(np.arange(10, dtype=np.float64)[:, None], (1, 6))
    data[3:5, 0] = np.nan  # middle: linear from neighbours
    data[0:2, 1] = np.nan  # start: nearest valid value
    data[-1, 2] = np.nan  # end: nearest valid value
    np.save(tmp_path / "gaps.npy", data)
    out = load_imu(str(tmp_path / "gaps.npy"))[0, :, :10].numpy()
    np.testing.assert_allclose(out[0], np.arange(10))
    np.testing.assert_allclose(out[1], [2, 2, 2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_allclose(out[2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
    write_csv(tmp_path / "gaps.csv", np.nan_to_num(data, nan=-1.0))
    text = (tmp_path / "gaps.csv").read_text().replace("-1.0", "")  # empty cells are missing values
    (tmp_path / "gaps.csv").write_text(text)
    np.testing.assert_allclose(load_imu(str(tmp_path / "gaps.csv"))[0, :, :10].numpy(), out)
    data[:, 4] = np.nan
    np.save(tmp_path / "dead.npy", data)
    assert media_error(load_imu, str(tmp_path / "dead.npy")).startswith("gyroscope y has no valid value")


def test_imu_padding_repeats_last_sample(tmp_path: Path) -> None:
    data = imu_signal(500)
    np.save(tmp_path / "short.npy", data)
    out = load_imu(str(tmp_path / "short.npy"))
    assert out.shape == (1, 6, 2000)
    assert torch.equal(out[0, :, 499:], out[0, :, 499:500].expand(6, 1501))
    np.save(tmp_path / "exact.npy", imu_signal(2000))
    exact = load_imu(str(tmp_path / "exact.npy"))
    assert exact.shape == (1, 6, 2000)
    torch.testing.assert_close(exact[0], torch.from_numpy(imu_signal(2000).T).float())


def test_imu_clip_windows(tmp_path: Path) -> None:
    assert window_starts(7000) == [0, 2500, 5000]
    assert window_starts(2400) == [0, 400]
    assert window_starts(2000) == [0] and window_starts(10) == [0]
    assert window_starts(7000, num_clips=1) == [2500]
    assert window_starts(2001, num_clips=3) == [0, 1]
    assert window_starts(100_000, num_clips=5) == [0, 24500, 49000, 73500, 98000]
    # A 35 s recording at 200 Hz whose channels hold the sample index.
    ramp = np.tile(np.arange(7000, dtype=np.float64)[:, None], (1, 6))
    np.save(tmp_path / "long.npy", ramp)
    out = load_imu(str(tmp_path / "long.npy"))
    assert out.shape == (3, 6, 2000)
    assert [int(out[i, 0, 0]) for i in range(3)] == [0, 2500, 5000]
    assert int(out[2, 5, -1]) == 6999
    # The same recording at 100 Hz lasts as long: resampled to 200 Hz it gives the same windows in time.
    write_csv(tmp_path / "long100.csv", ramp[:3500] * 2)
    slow = load_imu(str(tmp_path / "long100.csv"), ImuSettings(sample_rate_hz=100.0))
    assert slow.shape == (3, 6, 2000)
    # 3500 samples at 100 Hz span 34.99 s: 6999 samples at 200 Hz, windows at 0, 2499.5 -> 2500 and 4999.
    assert [float(slow[i, 0, 0]) for i in range(3)] == [0.0, 2500.0, 4999.0]


def test_imu_bad_files(tmp_path: Path) -> None:
    p = tmp_path
    write_csv(p / "three.csv", imu_signal(100)[:, :3])
    write_csv(p / "one.csv", imu_signal(1), header="ax,ay,az,gx,gy,gz")
    (p / "header.csv").write_text("ax,ay,az,gx,gy,gz\n")
    (p / "blank.csv").write_text("\n\n# nothing\n")
    (p / "empty.csv").write_bytes(b"")
    (p / "word.csv").write_text("1,2,3,4,5,6\n1,abc,3,4,5,6\n")
    (p / "ragged.csv").write_text("1,2,3,4,5,6\n1,2,3,4,5\n")
    write_csv(p / "seven.csv", np.column_stack([np.ones(50), imu_signal(50)]))
    (p / "binary.csv").write_bytes(b"\x00\x01\x02\x03" * 20)
    (p / "image.csv").write_bytes(save_u16(p / "x.png", np.ones((4, 4))).read_bytes())
    np.save(p / "bool.npy", np.ones((100, 6), dtype=bool))
    np.save(p / "complex.npy", np.ones((100, 6), dtype=complex))
    np.save(p / "strings.npy", np.array([["a"] * 6] * 10))
    np.save(p / "pickle.npy", np.array([[object()] * 6] * 10, dtype=object), allow_pickle=True)
    np.save(p / "flat.npy", np.ones(600))
    np.save(p / "three.npy", np.ones((3, 100)))
    np.save(p / "none.npy", np.ones((0, 6)))
    np.save(p / "single.npy", np.ones((6, 1)))
    np.savez(p / "two.npz", a=np.ones((10, 6)), b=np.ones((10, 6)))
    np.save(p / "dup.npy", np.column_stack([[0, 1, 1, 2], np.ones((4, 6))]))
    np.save(p / "huge_step.npy", np.column_stack([np.arange(5) * 1e10, np.ones((5, 6))]))
    np.save(p / "gap.npy", np.column_stack([[0, 0.005, 0.01, 0.015, 1e9], np.ones((5, 6))]))
    np.save(p / "absurd.npy", np.full((10, 6), 1e35))
    cases = {
        "three.csv": f"{NEEDS_6}, found 3",
        "one.csv": "too short: 1 sample (need at least 2)",
        "header.csv": "has a header row but no data rows",
        "blank.csv": "holds no data",
        "empty.csv": "empty file",
        "word.csv": "non-numeric value 'abc' at line 2, column 2",
        "ragged.csv": "line 2 has 5 values, but line 1 has 6",
        "seven.csv": "first is not strictly increasing",
        "binary.csv": "not a CSV table",
        "image.csv": "content is PNG (image), not a CSV table",
        "bool.npy": "holds bool values",
        "complex.npy": "holds complex128 values",
        "strings.npy": "values",
        "pickle.npy": "Python objects",
        "flat.npy": NEEDS_6,
        "three.npy": f"{NEEDS_6}, found 3 (array shape (3, 100))",
        "none.npy": "empty array",
        "single.npy": "too short: 1 sample",
        "two.npz": "none is named 'imu'",
        "dup.npy": "not strictly increasing",
        "huge_step.npy": "timestamp steps are too large",
        "gap.npy": "timestamps span 1e+09 s, over 30 days",
        "absurd.npy": "values too large",
        "missing.csv": "no such file",
    }
    for name, reason in cases.items():
        assert reason in media_error(load_imu, str(p / name)), name
    assert media_error(load_imu, str(p / "three.csv")) == f"{NEEDS_6}, found 3"


def test_imu_npz_named_array(tmp_path: Path) -> None:
    data = imu_signal(100)
    np.savez_compressed(tmp_path / "rec.npz", imu=data, meta=np.zeros(3))
    np.save(tmp_path / "rec.npy", data)
    torch.testing.assert_close(load_imu(str(tmp_path / "rec.npz")), load_imu(str(tmp_path / "rec.npy")))


# --- every loader: only MediaError, picklable output --------------------------------------------


def test_damaged_files_raise_only_media_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    save_u16(tmp_path / "d.png", rng.integers(0, 9000, (16, 16)))
    Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "t.jpg")
    np.save(tmp_path / "d.npy", rng.random((16, 16)))
    np.savez_compressed(tmp_path / "i.npz", imu=rng.random((50, 6)))
    write_csv(tmp_path / "i.csv", rng.random((50, 7)))
    originals = {"d.png": load_depth, "t.jpg": load_thermal, "d.npy": load_depth, "i.npz": load_imu, "i.csv": load_imu}
    for name, loader in originals.items():
        good = (tmp_path / name).read_bytes()
        variants = [good[:n] for n in (1, 7, 9, 30, len(good) // 2, len(good) - 1)]
        for _ in range(8):
            damaged = bytearray(good)
            for i in rng.integers(0, len(good), 4):
                damaged[i] = int(rng.integers(0, 256))
            variants.append(bytes(damaged))
        for k, data in enumerate(variants):
            path = tmp_path / f"v{k}_{name}"
            path.write_bytes(data)
            try:
                out = loader(str(path))
            except MediaError:
                continue
            assert torch.isfinite(out).all() and out.dtype == torch.float32, path.name


def test_outputs_are_picklable_cpu_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "i.npy", imu_signal(50))
    outs = [
        load_depth(str(save_u16(tmp_path / "d.png", np.full((4, 4), 1500)))),
        load_thermal(str(save_u16(tmp_path / "t.png", np.arange(16).reshape(4, 4)))),
        load_imu(str(tmp_path / "i.npy")),
    ]
    for out in outs:
        assert out.device.type == "cpu" and out.dtype == torch.float32 and out.is_contiguous()
        assert torch.equal(pickle.loads(pickle.dumps(out)), out)
