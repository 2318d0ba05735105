"""The query grammar: weights, signs, modality prefixes, files against text."""

from __future__ import annotations

from pathlib import Path

import pytest

from bindsearch.errors import UsageError
from bindsearch.modality import Modality
from bindsearch.search import Like, QueryTerm, parse_expression, parse_term, split_weight


def files(*names: str):
    """An is_file predicate that knows exactly these paths."""
    known = set(names)
    return lambda path: path in known


def test_split_weight():
    assert split_weight("2:a dog", files()) == (2.0, "a dog")
    assert split_weight("0.5:beach.jpg", files()) == (0.5, "beach.jpg")
    assert split_weight("-1:a leash", files()) == (-1.0, "a leash")
    assert split_weight(".25:x", files()) == (0.25, "x")
    assert split_weight("a dog", files()) == (1.0, "a dog")
    assert split_weight("1:3:10 to Yuma", files()) == (1.0, "3:10 to Yuma")
    # A file whose name looks like a weight is the file.
    assert split_weight("2:odd.jpg", files("2:odd.jpg")) == (1.0, "2:odd.jpg")


def test_the_example_expression():
    terms = parse_expression(["2:a dog", "+", "./beach.jpg", "-", "a leash"], files("./beach.jpg"))
    assert terms == [
        QueryTerm.text("a dog", 2.0),
        QueryTerm.file("image", "./beach.jpg", 1.0),
        QueryTerm.text("a leash", -1.0),
    ]


def test_operators_inside_one_argument_and_side_by_side_terms():
    terms = parse_expression(["a dog + beach.jpg - 0.5:a leash", "sea.wav"], files("beach.jpg", "sea.wav"))
    assert [(t.modality, t.weight) for t in terms] == [
        (Modality.TEXT, 1.0), (Modality.IMAGE, 1.0), (Modality.TEXT, -0.5), (Modality.AUDIO, 1.0)]
    # A hyphen inside a word is no operator.
    assert parse_expression(["a black-and-white photo"], files()) == [QueryTerm.text("a black-and-white photo")]


def test_a_leading_minus_negates_the_first_term():
    assert parse_expression(["-", "rain"], files()) == [QueryTerm.text("rain", -1.0)]


def test_modality_and_like_prefixes():
    assert parse_term("depth:room.png", 1.0, files()) == QueryTerm.file("depth", "room.png")
    assert parse_term("2:thermal:cam/x.png", -1.0, files()) == QueryTerm.file("thermal", "cam/x.png", -2.0)
    assert parse_term("text:beach.jpg", 1.0, files("beach.jpg")) == QueryTerm.text("beach.jpg")
    assert parse_term("like:42", 1.0, files()) == QueryTerm(None, Like("42"), 1.0)
    assert parse_term("0.5:like:photos/a.jpg", 1.0, files()) == QueryTerm(None, Like("photos/a.jpg"), 0.5)
    # Unknown prefixes are just text ("note: buy milk").
    assert parse_term("note: buy milk", 1.0, files()) == QueryTerm.text("note: buy milk")
    assert parse_term("ratio:about three", 1.0, files()) == QueryTerm.text("ratio:about three")
    # Any other modality name before a file name is a file term of that modality (a bound space's), even
    # when the file is missing: the query then says so rather than searching the words.
    assert parse_term("vibration:run.csv", 1.0, files("run.csv")) == QueryTerm.file("vibration", "run.csv")
    assert parse_term("vibration:logs/no.csv", 1.0, files()) == QueryTerm.file("vibration", "logs/no.csv")


def test_files_take_the_modality_their_name_tells():
    assert parse_term("clips/a.mp4", 1.0, files("clips/a.mp4")).modality is Modality.VIDEO
    assert parse_term("imu/walk.csv", 1.0, files("imu/walk.csv")).modality is Modality.IMU
    assert parse_term("beach.jpg", 1.0, files()) == QueryTerm.text("beach.jpg")  # no such file: text
    with pytest.raises(UsageError, match="cannot tell the modality of data.bin"):
        parse_term("data.bin", 1.0, files("data.bin"))


@pytest.mark.parametrize("tokens, message", [
    (["a dog", "+", "-", "cat"], "two operators in a row"),
    (["a dog", "+"], "ends with an operator"),
    (["2:"], "is empty"),
    (["image:"], "nothing after image:"),
])
def test_malformed_expressions_are_one_line_errors(tokens, message):
    with pytest.raises(UsageError, match=message):
        parse_expression(tokens, files())


def test_real_files_are_recognised(tmp_path: Path):
    photo = tmp_path / "beach.jpg"
    photo.write_bytes(b"")
    (term,) = parse_expression([str(photo)])
    assert term == QueryTerm.file("image", photo)
