"""`bindsearch serve` as a real process on a free loopback port, spoken to over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from helpers import draw_image
from serve_helpers import demo_library, running_server

from bindsearch.server.state_file import STATE_FILE


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_library(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(demo: Path):
    with running_server(demo, "--max-upload-mb", "0.5") as running:
        yield running


def _raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A GET of ``target`` exactly as written (no client normalises its dots or escapes)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", target, skip_host=True)
        conn.putheader("Host", parts.netloc)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_it_serves_the_page_the_api_and_its_docs(server) -> None:
    with server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
            assert client.get(asset).status_code == 200, asset
        assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        info = client.get("/api/info").json()
        assert info["path"] == str(server.library) and sum(info["counts"].values()) == 14
        assert "/api/search" in client.get("/openapi.json").json()["paths"]
        hits = client.post("/api/search", json={"terms": [{"value": "a rocket"}], "k": 5}).json()["hits"]
        assert len(hits) == 5


def test_range_requests_seek_in_audio_and_video(server, demo: Path) -> None:
    wav = demo.parent / "media" / "sounds" / "speech.wav"
    with server.client() as client:
        hit = client.post("/api/search", json={"terms": [{"modality": "audio", "value": str(wav)}], "k": 1,
                                               "targets": ["audio"]}).json()["hits"][0]
        assert hit["path"] == str(wav)
        size = wav.stat().st_size
        part = client.get(hit["media_url"], headers={"Range": f"bytes={size - 100}-"})
        assert part.status_code == 206 and part.content == wav.read_bytes()[-100:]
        assert part.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
        assert client.get(hit["media_url"], headers={"Range": f"bytes={size + 10}-"}).status_code == 416


@pytest.mark.parametrize("target", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/api/items/../../../../etc/passwd", "/api/items/%2e%2e%2f%2e%2e%2fetc%2fpasswd/media",
    "/api/items/1/media/../../../../etc/passwd", "//etc/passwd", "/api/items/1%00/media",
    "/static/%2fetc%2fpasswd", "/etc/passwd",
])
def test_path_traversal_gets_404(server, target: str) -> None:
    status, body = _raw_get(server.url, target)
    assert status in (404, 400), (target, status, body[:200])
    assert b"root:" not in body


def test_the_statuses_of_bad_requests(server, demo: Path) -> None:
    with server.client() as client:
        assert client.post("/api/search", content=b"{nope", headers={"content-type": "application/json"}
                           ).status_code == 422
        assert client.post("/api/search", json={"terms": [{"modality": "image", "value": "/etc/hostname"}]}
                           ).status_code == 403
        assert client.get("/api/items/987654/media").status_code == 404
        big = os.urandom(600 * 1024)
        response = client.post("/api/search/upload", files=[("file", ("big.jpg", big, "image/jpeg"))])
        assert response.status_code == 413 and "cap of 0.5 MiB" in response.json()["detail"]
        # The cap holds on a body sent in chunks, with no length declared up front.
        chunks = (part for part in [b"--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n\r\n",
                                    *[os.urandom(64 * 1024) for _ in range(12)], b"\r\n--b--\r\n"])
        response = client.post("/api/search/upload", content=chunks,
                               headers={"content-type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413
        assert client.get("/api/info").status_code == 200  # and it keeps serving


def test_a_token_is_asked_for_over_http(demo: Path) -> None:
    with running_server(demo, token="tok-1234567890") as guarded:
        assert httpx.get(f"{guarded.url}/api/info").status_code == 401
        with guarded.client() as client:
            assert client.get("/api/info").status_code == 200
        with httpx.Client(base_url=guarded.url, follow_redirects=True) as browser:
            entry = browser.get("/?token=tok-1234567890")
            assert entry.history[0].status_code == 303 and entry.url.path == "/"  # sent home, with the cookie
            assert browser.get("/api/info").status_code == 200


def test_it_refuses_to_start_open_to_others_without_a_token(demo: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BINDSEARCH_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "serve", "--library", str(demo), "--host", "0.0.0.0",
                           "--port", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: serving on 0.0.0.0 lets other machines in: give --token")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_taken_port_is_one_line(demo: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "serve", "--library", str(demo), "--port",
                               str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is taken (another server runs " \
                                  "there?)"


def test_the_state_file_is_the_users_alone_and_goes_with_the_server(demo: Path) -> None:
    path = demo / STATE_FILE
    with running_server(demo) as running:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600
        record = json.loads(path.read_text())
        assert record["pid"] == running.process.pid and record["url"].startswith("http://127.0.0.1:")
        assert len(record["token"]) >= 16
    assert not path.exists()


def test_a_search_while_an_index_run_writes_sees_the_new_items(tmp_path: Path) -> None:
    library = demo_library(tmp_path)
    more = tmp_path / "more"
    for i in range(60):
        draw_image(more / f"new-{i:02d}.png", seed=100 + i, size=(64, 64))
    errors: list[str] = []
    statuses: list[int] = []
    with running_server(library) as running:
        stop = threading.Event()

        def keep_searching() -> None:
            with running.client() as client:
                while not stop.is_set():
                    response = client.post("/api/search", json={"terms": [{"value": "a new picture"}],
                                                                "targets": ["image"], "k": 100})
                    statuses.append(response.status_code)
                    if response.status_code != 200:
                        errors.append(response.text)

        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        try:
            done = subprocess.run([sys.executable, "-m", "bindsearch.cli", "index", str(more), "--library",
                                   str(library), "--batch-size", "8", "--workers", "0"],
                                  capture_output=True, text=True, timeout=300)
        finally:
            time.sleep(0.2)
            stop.set()
            searcher.join()
        assert done.returncode == 0, done.stderr
        with running.client() as client:
            assert client.get("/api/info").json()["counts"]["image"] == 65
            hits = client.post("/api/search", json={"terms": [{"value": "a new picture"}], "targets": ["image"],
                                                    "k": 100}).json()["hits"]
            assert len(hits) == 65
            new = str(more / "new-07.png")
            upload = client.post("/api/search/upload", files=[("file", ("q.png", Path(new).read_bytes(), "image/png"))],
                                 data={"k": "1"}).json()["hits"]
            assert upload[0]["path"] == new
    assert errors == [] and len(statuses) >= 3
