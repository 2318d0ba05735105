"""The HTTP API through FastAPI's test client, over a real library of every modality on the tiny model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import draw_image
from serve_helpers import demo_library

import bindsearch
from bindsearch.errors import UsageError
from bindsearch.jsonable import to_jsonable
from bindsearch.server import ServerSettings, create_app, server_settings

HIT_FIELDS = {"rank", "score", "calibrated", "modality", "path", "id", "start", "end", "tags", "media_url",
              "thumbnail_url"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_library(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def lib(demo: Path) -> bindsearch.Library:
    with bindsearch.open_library(demo) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(lib: bindsearch.Library) -> TestClient:
    app = create_app(ServerSettings(library=lib.path), lib)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def _media(lib: bindsearch.Library, name: str) -> str:
    return str(Path(lib.path).parent / "media" / name)


def _id_of(lib: bindsearch.Library, name: str) -> int:
    return lib.stored_item_vector(_media(lib, name))[0][0]


def test_info_is_what_info_json_prints(client: TestClient, lib: bindsearch.Library) -> None:
    got = client.get("/api/info").json()
    want = to_jsonable(lib.info())
    got.pop("size_bytes"), want.pop("size_bytes")  # thumbnails made by other tests change it
    assert got == want
    assert got["counts"] == {"audio": 3, "depth": 1, "image": 5, "imu": 1, "text": 2, "thermal": 1, "video": 1}


def test_a_text_search_gives_the_apis_hits_with_links(client: TestClient, lib: bindsearch.Library) -> None:
    response = client.post("/api/search", json={"terms": [{"modality": "text", "value": "a dog"}],
                                                "targets": ["image"], "k": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["took_ms"] >= 0
    want = lib.search([bindsearch.QueryTerm.text("a dog")], targets=["image"], k=3)
    assert [h["id"] for h in body["hits"]] == [h.id for h in want]
    assert [h["score"] for h in body["hits"]] == pytest.approx([h.score for h in want], abs=1e-6)
    for hit in body["hits"]:
        assert set(hit) == HIT_FIELDS
        assert hit["modality"] == "image"
        assert hit["media_url"] == f"/api/items/{hit['id']}/media"
        assert hit["thumbnail_url"] == f"/api/items/{hit['id']}/thumbnail"


def test_an_expression_is_the_same_query_as_its_terms(client: TestClient, lib: bindsearch.Library) -> None:
    cat = _id_of(lib, "cat.jpg")
    terms = [{"value": "a dog", "weight": 2}, {"like": cat, "weight": -0.5},
             {"modality": "image", "value": _media(lib, "coffee.jpg")}]
    by_terms = client.post("/api/search", json={"terms": terms, "targets": "all", "k": 8}).json()
    expression = f"2:a dog - 0.5:like:{cat} + {_media(lib, 'coffee.jpg')}"
    by_expression = client.post("/api/search", json={"expression": expression, "targets": "all", "k": 8}).json()
    assert [(h["id"], h["start"]) for h in by_terms["hits"]] == [(h["id"], h["start"]) for h in by_expression["hits"]]
    assert cat not in [h["id"] for h in by_terms["hits"]]  # a like term's item stays out


def test_offset_gives_the_next_page_with_its_ranks(client: TestClient) -> None:
    query = {"terms": [{"value": "a launch"}], "targets": "all"}
    whole = client.post("/api/search", json=query | {"k": 10}).json()["hits"]
    page = client.post("/api/search", json=query | {"k": 4, "offset": 4}).json()["hits"]
    assert [(h["id"], h["rank"]) for h in page] == [(h["id"], h["rank"]) for h in whole[4:8]]
    assert [h["rank"] for h in page] == [5, 6, 7, 8]


def test_a_server_file_is_a_term_only_under_an_indexed_folder(client: TestClient, lib: bindsearch.Library,
                                                              tmp_path: Path) -> None:
    inside = _media(lib, "sounds/birdsong.wav")
    hits = client.post("/api/search", json={"terms": [{"modality": "audio", "value": inside}], "k": 1}).json()["hits"]
    assert hits[0]["path"] == inside
    outside = draw_image(tmp_path / "elsewhere.png", seed=3)
    link = Path(lib.path).parent / "media" / "link-out.png"
    link.symlink_to(outside)
    try:
        for value in (str(outside), "/no/such/file.png", str(link), _media(lib, "../elsewhere.png")):
            response = client.post("/api/search", json={"terms": [{"modality": "image", "value": value}]})
            assert response.status_code == 403, (value, response.text)
            assert response.json()["detail"].endswith("is not under a folder this library indexed")
        response = client.post("/api/search", json={"expression": f"image:{outside}"})
        assert response.status_code == 403
    finally:
        link.unlink()
    response = client.post("/api/search", json={"terms": [{"modality": "image", "value": "cat.jpg"}]})
    assert response.status_code == 400 and "absolute path" in response.json()["detail"]
    response = client.post("/api/search", json={"terms": [{"modality": "image", "value": _media(lib, "gone.jpg")}]})
    assert response.status_code == 400 and "gone.jpg" in response.json()["detail"]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"terms": [{"modality": "smell", "value": "x"}]}, 400, "unknown modality 'smell'"),
    ({"terms": [{"value": "x"}], "targets": ["smell"]}, 400, "unknown modality 'smell'"),
    ({"terms": [{"value": "x"}], "filters": {"after": "notadate"}}, 400, "not a date: 'notadate'"),
    ({"terms": [{"value": "x"}], "filters": {"min_size": "lots"}}, 400, "lots"),
    ({"terms": [{"value": "x"}], "filters": {"tags": ["never-given"]}}, 400, "never-given"),
    ({"terms": [{"value": "x"}], "filters": {"colour": "red"}}, 422, "filters.colour"),
    ({"terms": [{"value": "x"}], "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"terms": [{"value": "x"}], "k": "many"}, 422, "k:"),
    ({"terms": []}, 400, "give at least one query term"),
    ({"terms": [{"like": 10 ** 12}]}, 400, "no embedded item with id"),
    ({"terms": [{"value": "x", "weight": 1e40}]}, 400, "finite number"),
    ({"expression": "2:"}, 400, "empty"),
    ({"expression": "a dog + "}, 400, "ends with an operator"),
])
def test_bad_requests_get_one_line_and_a_status(client: TestClient, body: dict, status: int, says: str) -> None:
    response = client.post("/api/search", json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert says in detail and "\n" not in detail and "Traceback" not in detail
    assert client.post("/api/search", json={"terms": [{"value": "still serving"}]}).status_code == 200


def test_malformed_json_is_422_in_one_line(client: TestClient) -> None:
    response = client.post("/api/search", content=b'{"terms": [', headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the body is not valid JSON")


def test_an_item_has_its_details_windows_and_snippet(client: TestClient, lib: bindsearch.Library) -> None:
    note = client.get(f"/api/items/{_id_of(lib, 'notes/launch.txt')}").json()
    assert note["modality"] == "text" and note["path"] == _media(lib, "notes/launch.txt")
    assert note["snippet"] == Path(note["path"]).read_text()[:400]
    assert note["size"] == os.path.getsize(note["path"])
    assert note["mtime"] == pytest.approx(os.path.getmtime(note["path"]))
    clip_id = _id_of(lib, "clips/bands.mp4")
    clip = client.get(f"/api/items/{clip_id}").json()
    assert clip["duration"] > 0 and clip["snippet"] is None
    assert clip["windows"] == [{"start": s, "end": e} for s, e, _ in lib.windows_of(clip_id)]


@pytest.mark.parametrize("ref", ["999999", "abc", "-1", "1.5", "99999999999999999999999", "..%2F..%2Fetc%2Fpasswd",
                                 "%2e%2e"])
def test_an_item_that_is_not_there_is_404(client: TestClient, ref: str) -> None:
    for suffix in ("", "/media", "/thumbnail"):
        response = client.get(f"/api/items/{ref}{suffix}")
        assert response.status_code == 404, (ref, suffix, response.text)


def test_media_is_the_file_with_its_type_and_ranges(client: TestClient, lib: bindsearch.Library) -> None:
    path = _media(lib, "sounds/speech.wav")
    url = f"/api/items/{_id_of(lib, 'sounds/speech.wav')}/media"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == Path(path).read_bytes()
    assert whole.headers["content-type"] in ("audio/x-wav", "audio/wav")
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-security-policy"] == "sandbox"
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == Path(path).read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{os.path.getsize(path)}"
    video = client.get(f"/api/items/{_id_of(lib, 'clips/bands.mp4')}/media", headers={"Range": "bytes=-10"})
    assert video.status_code == 206 and video.headers["content-type"] == "video/mp4" and len(video.content) == 10


def test_a_thumbnail_is_made_once_and_kept_in_the_library(client: TestClient, lib: bindsearch.Library) -> None:
    from PIL import Image

    item_id = _id_of(lib, "astronaut.jpg")
    first = client.get(f"/api/items/{item_id}/thumbnail")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] in ("image/webp", "image/jpeg")
    kept = list((Path(lib.path) / "thumbnails").rglob(f"{item_id}-*"))
    assert len(kept) == 1
    with Image.open(kept[0]) as picture:
        assert max(picture.size) <= 320
    assert client.get(f"/api/items/{item_id}/thumbnail").content == first.content
    for name in ("clips/bands.mp4", "sounds/birdsong.wav", "depth/room.png", "thermal/person.png", "imu/walk.csv",
                 "notes/breakfast.md"):
        response = client.get(f"/api/items/{_id_of(lib, name)}/thumbnail?at=0.5")
        assert response.status_code == 200, (name, response.text)


def test_an_uploaded_file_is_a_query_term(client: TestClient, lib: bindsearch.Library) -> None:
    cat = Path(_media(lib, "cat.jpg"))
    files = [("file", ("my cat.jpg", cat.read_bytes(), "image/jpeg"))]
    body = client.post("/api/search/upload", files=files, data={"targets": "image", "k": "3"}).json()
    assert body["hits"][0]["path"] == str(cat) and body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    # No name to tell the modality by: a modality field, or the content, tells it.
    unnamed = [("file", ("blob", cat.read_bytes(), "application/octet-stream"))]
    assert client.post("/api/search/upload", files=unnamed).json()["hits"][0]["path"] == str(cat)
    sound = Path(_media(lib, "sounds/speech.wav"))
    mixed = client.post("/api/search/upload", data={"modality": ["", "audio"], "weights": "1,-1", "text": "a dog",
                                                    "targets": "all", "k": "20"},
                        files=[("file", ("a.jpg", cat.read_bytes(), "image/jpeg")),
                               ("file", ("recording", sound.read_bytes(), "audio/wav"))]).json()
    want = lib.search([bindsearch.QueryTerm.text("a dog"), bindsearch.QueryTerm.file("image", cat),
                       bindsearch.QueryTerm.file("audio", sound, -1.0)], k=20)
    assert [h["id"] for h in mixed["hits"]] == [h.id for h in want]


def test_a_bad_upload_gets_the_clis_reason_naming_the_upload(client: TestClient) -> None:
    for files, says in (([("file", ("holiday.jpg", b"not an image at all", "image/jpeg"))], "holiday.jpg: "),
                        ([("file", ("empty.wav", b"", "audio/wav"))], "empty.wav: the uploaded file is empty"),
                        ([("file", ("notes.bin", b"\x00\x01\x02", "application/octet-stream"))],
                         "cannot tell the modality of the upload notes.bin")):
        response = client.post("/api/search/upload", files=files)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert says in detail and "bindsearch-upload" not in detail and "\n" not in detail
    response = client.post("/api/search/upload", content=b"text", headers={"content-type": "text/plain"})
    assert response.status_code == 400 and "multipart/form-data" in response.json()["detail"]


def test_uploads_past_the_cap_are_413_and_leave_nothing_behind(lib: bindsearch.Library, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    settings = server_settings(lib.path, None, "127.0.0.1", 8000, None, max_upload_mb=0.25)
    with TestClient(create_app(settings, lib), base_url="http://127.0.0.1:8000") as small:
        big = os.urandom(300 * 1024)
        for endpoint in ("/api/search/upload", "/api/classify", "/api/embed"):
            response = small.post(endpoint, files=[("file", ("big.jpg", big, "image/jpeg"))], data={"labels": "a,b"})
            assert response.status_code == 413, response.text
            assert "cap of 0.25 MiB" in response.json()["detail"]
        # Two files under the cap each but over it together.
        half = os.urandom(150 * 1024)
        response = small.post("/api/search/upload", files=[("file", ("a.jpg", half, "image/jpeg")),
                                                           ("file", ("b.jpg", half, "image/jpeg"))])
        assert response.status_code == 413
        # Under the cap: read, refused for what it is, and cleaned up too.
        assert small.post("/api/search/upload", files=[("file", ("c.jpg", half, "image/jpeg"))]).status_code == 400
    assert list(tmp_path.iterdir()) == []


def test_tags_are_added_and_removed_by_id(client: TestClient, lib: bindsearch.Library) -> None:
    item_id = _id_of(lib, "rocket.jpg")
    added = client.post(f"/api/items/{item_id}/tags", json={"add": ["launch", "keep"]}).json()
    assert added["tags"] == ["keep", "launch"]
    hits = client.post("/api/search", json={"terms": [{"value": "x"}], "filters": {"tags": ["launch"]}}).json()["hits"]
    assert [h["id"] for h in hits] == [item_id] and hits[0]["tags"] == ["keep", "launch"]
    assert client.post(f"/api/items/{item_id}/tags", json={"remove": ["launch", "keep"]}).json()["tags"] == []
    assert client.post(f"/api/items/{item_id}/tags", json={"add": [""]}).status_code == 400
    assert client.post("/api/items/424242/tags", json={"add": ["x"]}).status_code == 404


def test_classify_labels_uploads_as_the_api_does(client: TestClient, lib: bindsearch.Library) -> None:
    cat = Path(_media(lib, "cat.jpg"))
    response = client.post("/api/classify", files=[("file", ("cat.jpg", cat.read_bytes(), "image/jpeg"))],
                           data={"labels": "cat, dog, rocket"})
    assert response.status_code == 200, response.text
    (result,) = response.json()
    want = lib.classify([cat], ["cat", "dog", "rocket"])[0]
    assert result["path"] == "cat.jpg" and result["label"] == want.label
    assert [s["label"] for s in result["labels"]] == [s.label for s in want.labels]
    assert client.post("/api/classify", files=[("file", ("cat.jpg", cat.read_bytes(), "image/jpeg"))],
                       data={"labels": ""}).status_code == 400


def test_embed_gives_the_spaces_vector(client: TestClient, lib: bindsearch.Library) -> None:
    import numpy as np

    text = client.post("/api/embed", json={"modality": "text", "value": "a dog"}).json()
    assert np.allclose(text["embedding"], lib.space.embed(bindsearch.Modality.TEXT, "a dog"), atol=1e-6)
    cat = Path(_media(lib, "cat.jpg"))
    image = client.post("/api/embed", files=[("file", ("cat.jpg", cat.read_bytes(), "image/jpeg"))]).json()
    assert image["modality"] == "image" and image["dim"] == lib.dim
    assert np.allclose(image["embedding"], lib.space.embed(bindsearch.Modality.IMAGE, cat), atol=1e-6)


def test_the_api_is_described(client: TestClient, lib: bindsearch.Library) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/info", "/api/server", "/api/search", "/api/search/upload", "/api/items/{item_id}",
                 "/api/items/{item_id}/media", "/api/items/{item_id}/thumbnail", "/api/items/{item_id}/tags",
                 "/api/classify", "/api/embed"):
        assert path in paths
    assert client.get("/docs").status_code == 200
    assert client.get("/api/server").json() == {"library": str(lib.path), "space": "imagebind:random(seed=0)",
                                                "version": bindsearch.__version__}


def test_a_token_guards_everything(lib: bindsearch.Library) -> None:
    settings = server_settings(lib.path, None, "0.0.0.0", 8000, "s3cret-token", 100)
    with TestClient(create_app(settings, lib), base_url="http://192.0.2.7:8000") as remote:
        for path in ("/", "/api/info", "/static/app.js", "/api/items/1/media", "/openapi.json"):
            response = remote.get(path)
            assert response.status_code == 401, path
            assert "token" in response.json()["detail"]
        assert remote.get("/api/info", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert remote.get("/api/info", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert remote.get("/?token=wrong-token", follow_redirects=False).status_code == 401
        entry = remote.get("/?token=s3cret-token", follow_redirects=False)
        assert entry.status_code == 303 and entry.headers["location"] == "/"
        cookie = entry.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # The cookie now carries the token: the page and its media links work.
        assert remote.get("/api/info").status_code == 200


def test_the_server_answers_only_for_its_own_host_and_origin(client: TestClient) -> None:
    assert client.get("/api/info", headers={"Host": "evil.example:8000"}).status_code == 421
    assert client.get("/api/info", headers={"Host": "localhost:8000"}).status_code == 200
    cross = client.post("/api/search", json={"terms": [{"value": "x"}]}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    same = client.post("/api/search", json={"terms": [{"value": "x"}]}, headers={"Origin": "http://127.0.0.1:8000"})
    assert same.status_code == 200


def test_any_address_but_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINDSEARCH_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        with pytest.raises(UsageError, match="--token"):
            server_settings(None, None, host, 8000, None, 100)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert server_settings(None, None, host, 8000, None, 100).token is None
    monkeypatch.setenv("BINDSEARCH_TOKEN", "from-the-environment")
    assert server_settings(None, None, "0.0.0.0", 8000, None, 100).token == "from-the-environment"
    with pytest.raises(UsageError, match="at least 8"):
        server_settings(None, None, "0.0.0.0", 8000, "short", 100)
    with pytest.raises(UsageError, match="max-upload-mb"):
        server_settings(None, None, "127.0.0.1", 8000, None, 0)


def test_a_browser_recording_is_an_audio_term(client: TestClient, tmp_path: Path) -> None:
    """What MediaRecorder sends: Opus in WebM, named like a video, typed audio/webm."""
    import av
    import numpy as np

    path = tmp_path / "recording.webm"
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        signal = (0.3 * np.sin(2 * np.pi * 440 * np.arange(96000) / 48000)).astype(np.float32)
        for begin in range(0, len(signal), 960):
            frame = av.AudioFrame.from_ndarray(signal[None, begin:begin + 960], format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, begin
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    response = client.post("/api/search/upload", files=[("file", ("recording.webm", path.read_bytes(), "audio/webm"))],
                           data={"k": "3", "targets": "audio"})
    assert response.status_code == 200, response.text
    assert [h["modality"] for h in response.json()["hits"]] == ["audio"] * 3


def test_a_huge_json_body_is_413_whether_its_length_is_declared_or_not(client: TestClient) -> None:
    huge = b'{"terms": [{"value": "' + b"x" * (2 * 1024 * 1024) + b'"}]}'
    declared = client.post("/api/search", content=huge, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "larger than 1024 KiB" in declared.json()["detail"]
    streamed = client.post("/api/search", content=iter([huge[i:i + 65536] for i in range(0, len(huge), 65536)]),
                           headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/api/search", json={"terms": [{"value": "x" * 1000}]}).status_code == 200
