"""Telling a file's modality from its name and its first bytes."""

import os

import pytest

from bindsearch.errors import UsageError
from bindsearch.modality import (
    BUILTIN_MODALITIES,
    DEFAULT_NAMING,
    INPUT_EXTENSIONS,
    Modality,
    looks_like_text,
    modality_from_path,
    sniff_format,
)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/m/photo.JPG", Modality.IMAGE),
        ("/m/scan.tiff", Modality.IMAGE),
        ("/m/anim.gif", Modality.IMAGE),
        ("/m/clip.mp4", Modality.VIDEO),
        ("/m/clip.webm", Modality.VIDEO),
        ("/m/song.mp3", Modality.AUDIO),
        ("/m/take.flac", Modality.AUDIO),
        ("/m/readme.md", Modality.TEXT),
        ("/m/notes.txt", Modality.TEXT),
        ("/m/depth/0001.png", Modality.DEPTH),
        ("/m/Thermal/frame.png", Modality.THERMAL),
        ("/m/scene.depth.png", Modality.DEPTH),
        ("/m/scene.thermal.jpg", Modality.THERMAL),
        ("/m/imu/walk.csv", Modality.IMU),
        ("/m/run.imu.npy", Modality.IMU),
        ("/m/imu/photo.jpg", Modality.IMAGE),  # an image format the IMU convention does not cover
        ("/m/table.csv", None),
        ("/m/array.npy", None),
        ("/m/script.py", None),
        ("/m/Makefile", None),
    ],
)
def test_modality_from_path(path, expected):
    assert modality_from_path(path.replace("/", os.sep)) is expected


def test_double_extension_beats_folder():
    assert modality_from_path(os.sep.join(["", "m", "depth", "x.thermal.png"])) is Modality.THERMAL


def test_parse_modality():
    assert Modality.parse(" Image ") is Modality.IMAGE
    # Any well-formed name is a modality (a space may add it); whose it is, the space says.
    assert Modality.parse("Vibration") is Modality("vibration")
    with pytest.raises(UsageError, match="unknown modality 'smell'.*image"):
        Modality.parse("smell", BUILTIN_MODALITIES)
    for bad in ("no way", "1st", "x" * 17, "", "é"):
        with pytest.raises(UsageError, match="unknown modality"):
            Modality.parse(bad)


def test_modalities_are_interned_strings():
    import pickle

    assert Modality("audio") is Modality.AUDIO and Modality.AUDIO == "audio" and hash(Modality.AUDIO) == hash("audio")
    assert pickle.loads(pickle.dumps(Modality("sonar"))) is Modality("sonar")
    assert str(Modality.IMU) == f"{Modality.IMU}" == Modality.IMU.value == "imu" and type(Modality.IMU.value) is str
    assert Modality.IMAGE.builtin and not Modality("sonar").builtin
    with pytest.raises(ValueError, match="not a modality name"):
        Modality("Not A Name")


def test_a_space_names_the_modalities_it_adds():
    naming = DEFAULT_NAMING.with_modalities([(Modality("vibration"), INPUT_EXTENSIONS["timeseries"])])
    sep = os.sep
    assert naming.modality_of(f"{sep}m{sep}vibration{sep}run.csv") is Modality("vibration")
    assert naming.modality_of(f"{sep}m{sep}run.vibration.npy") is Modality("vibration")
    assert naming.modality_of(f"{sep}m{sep}vibration{sep}photo.jpg") is Modality.IMAGE  # not a time series
    assert naming.modality_of(f"{sep}m{sep}imu{sep}run.csv") is Modality.IMU
    assert modality_from_path(f"{sep}m{sep}vibration{sep}run.csv") is None  # the default naming does not know it


@pytest.mark.parametrize(
    "head, name",
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "WAV"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"\x00\x00\x00\x18ftypmp42", "MP4/MOV"),
    ],
)
def test_sniff_format(head, name):
    assert sniff_format(head)[0] == name


def test_sniff_unknown_is_none():
    assert sniff_format(b"hello world") is None


def test_looks_like_text():
    assert looks_like_text("café naïve\u00a0— text\n".encode())
    assert looks_like_text("ab€".encode()[:-1])  # a character cut at the end of the sample
    assert not looks_like_text(b"\x89PNG\r\n\x1a\n")
    assert not looks_like_text(b"abc\x00def")
