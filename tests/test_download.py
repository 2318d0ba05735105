"""Checkpoint downloads against a real HTTP server on loopback: resume, size check, failures."""

import http.server
import threading

import pytest

from bindsearch.errors import SpaceError
from bindsearch.spaces.download import download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with range support; ``cut_after`` bytes into a response it hangs up."""

    cut_after: int | None = None
    ranges: list[str] = []

    def do_GET(self):
        start = 0
        header = self.headers.get("Range")
        type(self).ranges.append(header or "")
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.cut_after is not None:
            self.wfile.write(body[: self.cut_after])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.cut_after = None
    _Handler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/weights.pth"
    httpd.shutdown()


def test_download_whole_file(server, tmp_path):
    dest = download(server, tmp_path / "w.pth", what="test weights", offline_hint="copy it by hand")
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.pth.part").exists()


def test_interrupted_download_fails_clearly_then_resumes(server, tmp_path):
    _Handler.cut_after = 300_000
    with pytest.raises(SpaceError, match=r"stopped at 300,000 of 1,048,576 bytes; run again to resume"):
        download(server, tmp_path / "w.pth", what="test weights", offline_hint="copy it by hand")
    assert (tmp_path / "w.pth.part").stat().st_size == 300_000
    assert not (tmp_path / "w.pth").exists()
    _Handler.cut_after = None
    download(server, tmp_path / "w.pth", what="test weights", offline_hint="copy it by hand")
    assert _Handler.ranges[-1] == "bytes=300000-"
    assert (tmp_path / "w.pth").read_bytes() == PAYLOAD


def test_existing_file_is_not_downloaded_again(server, tmp_path):
    (tmp_path / "w.pth").write_bytes(b"already here")
    download(server, tmp_path / "w.pth", what="test weights", offline_hint="copy it by hand")
    assert _Handler.ranges == []


def test_unreachable_server_is_one_actionable_line(tmp_path):
    with pytest.raises(SpaceError) as info:
        download("http://127.0.0.1:9/none.pth", tmp_path / "w.pth", what="test weights",
                 offline_hint="point a space file at a copy")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot download test weights from http://127.0.0.1:9/none.pth")
    assert message.endswith("point a space file at a copy")
