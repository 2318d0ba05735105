"""Small valid files of every modality, and variants with extreme values and huge header fields, for the fuzzer.

Each seed is (relative path, modality names to embed it as, bytes). The
variants are still well-formed files (a PNG's header checksum is recomputed,
a WAV's sizes stay consistent) so that decoders trust them and the loaders'
own guards are what is tested.
"""

from __future__ import annotations

import fractions
import io
import struct
import zlib

import numpy as np
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def image_bytes(array: np.ndarray, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **options)
    return out.getvalue()


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR claiming ``width`` x ``height``, checksum recomputed so that decoders believe it."""
    ihdr = data[12:16] + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def wav_bytes(samples: np.ndarray, rate: int, subtype: str) -> bytes:
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype=subtype, format="WAV")
    return out.getvalue()


def sound_bytes(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    import soundfile

    out = io.BytesIO()
    soundfile.write(out, samples, rate, subtype=subtype, format=fmt)
    return out.getvalue()


def with_wav_header(data: bytes, rate: int | None = None, channels: int | None = None) -> bytes:
    """A WAV whose 'fmt ' chunk claims another rate or channel count (the data stays as it is)."""
    fmt = data.index(b"fmt ") + 8
    b = bytearray(data)
    if channels is not None:
        b[fmt + 2 : fmt + 4] = struct.pack("<H", channels)
    if rate is not None:
        b[fmt + 4 : fmt + 8] = struct.pack("<I", rate)
    return bytes(b)


def npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def with_npy_shape(data: bytes, shape: tuple[int, ...]) -> bytes:
    """The .npy with its header claiming ``shape`` (padded to the same header length)."""
    length = struct.unpack("<H", data[8:10])[0]
    header = data[10 : 10 + length].decode("latin-1")
    start, stop = header.index("'shape': (") + len("'shape': ("), header.index(")")
    dims = ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "")
    new = header[:start] + dims + header[stop:]
    new = new.rstrip("\n").rstrip()
    new = new + " " * (length - 1 - len(new)) + "\n"
    if len(new) != length:
        return data
    return data[:10] + new.encode("latin-1") + data[10 + length :]


def video_bytes(rng: np.random.Generator, size: tuple[int, int] = (48, 32), seconds: float = 1.0,
                sound: bool = True, container_format: str = "mp4") -> bytes:
    import av

    width, height = size
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=16000) if sound else None
        if audio is not None:
            audio.layout = "mono"
        done = 0
        for i in range(int(seconds * 10)):
            picture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, 10)
            for packet in video.encode(frame):
                container.mux(packet)
            while audio is not None and done < (i + 1) * 1600:
                chunk = av.AudioFrame.from_ndarray(rng.uniform(-0.5, 0.5, (1, 1024)).astype(np.float32),
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 16000, done, fractions.Fraction(1, 16000)
                done += 1024
                for packet in audio.encode(chunk):
                    container.mux(packet)
        for stream in [video] + ([audio] if audio is not None else []):
            for packet in stream.encode(None):
                container.mux(packet)
    return out.getvalue()


def imu_csv(values: np.ndarray, header: str = "ax,ay,az,gx,gy,gz", sep: str = ",") -> bytes:
    lines = [header] + [sep.join(repr(float(v)) for v in row) for row in values]
    return ("\n".join(lines) + "\n").encode()


def make_seeds(rng: np.random.Generator) -> list[tuple[str, tuple[str, ...], bytes]]:
    """The seed corpus: a few valid files per modality, plus extreme-valued and huge-header variants."""
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    grey16 = rng.integers(300, 5000, (24, 32), dtype=np.uint16)
    tone = 0.4 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    stereo = np.stack([tone, tone[::-1]], axis=1)
    imu = rng.normal(size=(300, 6)) + np.array([0, 0, 9.81, 0, 0, 0])
    png = png_bytes(rgb)
    depth_png = png_bytes(grey16)
    wav = wav_bytes(stereo, 8000, "PCM_16")
    depth_f = rng.uniform(0.5, 5.0, (24, 32)).astype(np.float32)
    seeds: list[tuple[str, tuple[str, ...], bytes]] = [
        ("a.png", ("image",), png),
        ("a.jpg", ("image",), image_bytes(rgb, "JPEG", quality=80)),
        ("a.gif", ("image",), image_bytes(rgb[:, :, 0], "GIF")),
        ("a.bmp", ("image",), image_bytes(rgb, "BMP")),
        ("a.webp", ("image",), image_bytes(rgb, "WEBP")),
        ("a.tif", ("image",), image_bytes(rgb, "TIFF")),
        ("wide.png", ("image",), with_png_size(png, 20000, 1)),
        ("huge.png", ("image",), with_png_size(png, 1 << 30, 1 << 30)),
        ("a.txt", ("text",), "A dog barks at the postman. Café.\n".encode()),
        ("a16.txt", ("text",), b"\xff\xfe" + "a cat on a mat".encode("utf-16-le")),
        ("a.md", ("text",), "# Title\n\nSome *markdown* text.\n".encode("cp1252")),
        ("a.wav", ("audio",), wav),
        ("f.wav", ("audio",), wav_bytes(rng.standard_normal(8000).astype(np.float32) * 1e20, 16000, "FLOAT")),
        ("d.wav", ("audio",), wav_bytes(np.full(4000, 1e300), 16000, "DOUBLE")),
        ("rate.wav", ("audio",), with_wav_header(wav, rate=10_000_001)),
        ("slow.wav", ("audio",), with_wav_header(wav, rate=1)),
        ("chan.wav", ("audio",), with_wav_header(wav, channels=65535)),
        ("a.flac", ("audio",), sound_bytes(stereo, 8000, "FLAC")),
        ("a.ogg", ("audio",), sound_bytes(tone, 8000, "OGG", "VORBIS")),
        ("a.mp4", ("video", "audio"), video_bytes(rng)),
        ("silent.mkv", ("video", "audio"), video_bytes(rng, sound=False, container_format="matroska")),
        ("depth/a.png", ("depth",), depth_png),
        ("depth/a8.png", ("depth",), png_bytes(rgb[:, :, 1])),
        ("depth/a.npy", ("depth",), npy_bytes(depth_f)),
        ("depth/x.npy", ("depth",), npy_bytes(np.array([[1e-300, 1e300], [np.inf, -np.inf]]))),
        ("depth/big.npy", ("depth",), with_npy_shape(npy_bytes(depth_f), (1 << 40, 1 << 40))),
        ("depth/a.tif", ("depth",), image_bytes(np.full((24, 32), 3.4e38, dtype=np.float32), "TIFF")),
        ("depth/a.npz", ("depth",), _npz(depth=depth_f)),
        ("thermal/a.png", ("thermal",), png_bytes(rgb[:, :, 2])),
        ("thermal/a16.png", ("thermal",), png_bytes(grey16)),
        ("thermal/f.tif", ("thermal",), image_bytes(
            np.array([[3.4e38, -3.4e38] * 8] * 12, dtype=np.float32), "TIFF")),
        ("thermal/a.jpg", ("thermal",), image_bytes(rgb, "JPEG")),
        ("imu/a.csv", ("imu",), imu_csv(imu)),
        ("imu/t.csv", ("imu",), imu_csv(np.column_stack([np.arange(300) * 0.005, imu]), "t,ax,ay,az,gx,gy,gz")),
        ("imu/x.csv", ("imu",), imu_csv(imu * 1e300, sep=";")),
        ("imu/a.npy", ("imu",), npy_bytes(imu.astype(np.float32))),
        ("imu/big.npy", ("imu",), with_npy_shape(npy_bytes(imu), (1 << 31, 6))),
        ("imu/a.npz", ("imu",), _npz(imu=imu)),
    ]
    return seeds


def _npz(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()
