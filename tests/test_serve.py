"""The HTTP server, over real HTTP on 127.0.0.1: uploads, errors, limits, temporary files."""

import contextlib
import socket
import threading
import time

import pytest

from asr.transcribe import Recognizer

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
from asr.serve import create_app  # noqa: E402 - needs fastapi, skipped above when absent


pytestmark = pytest.mark.usefixtures("one_thread")


@contextlib.contextmanager
def running(app):
    """Serve ``app`` on a free port of 127.0.0.1 in a thread; yields its base URL; stops it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # the port is ours from here: no race with other tests
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    uploads = tmp_path_factory.mktemp("uploads")
    with running(create_app(Recognizer(tiny_model), max_mb=0.25, timeout_s=30, tmp_root=str(uploads))) as url:
        yield url, uploads


def test_health(server):
    r = httpx.get(server[0] + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_good_upload(server, fsdd):
    url, uploads = server
    wav = sorted(fsdd.glob("*.wav"))[0]
    r = httpx.post(url + "/transcribe", files={"file": (wav.name, wav.read_bytes(), "audio/wav")}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["file"] == wav.name and isinstance(body["text"], str) and isinstance(body["words"], list)
    assert body["duration"] == pytest.approx(0.298, abs=0.01)
    raw = httpx.post(url + "/transcribe", content=wav.read_bytes(), headers={"content-type": "audio/wav"})
    assert raw.status_code == 200 and raw.json()["text"] == body["text"]
    assert list(uploads.iterdir()) == []  # each request's private folder is gone


@pytest.mark.parametrize("files, data, headers, status, message", [
    ({"file": ("notes.wav", b"hello, this is text", "audio/wav")}, None, None, 415, "not an audio file"),
    ({"file": ("big.wav", b"\0" * 300_000, "audio/wav")}, None, None, 413, "limit"),
    ({"file": ("empty.wav", b"", "audio/wav")}, None, None, 400, "empty"),
    ({"other": ("a.wav", b"RIFF", "audio/wav")}, None, None, 422, "field named 'file'"),
    (None, {"file": "just a form field"}, None, 422, "field named 'file'"),
    (None, None, {"content-type": "application/json"}, 415, "multipart/form-data"),
])
def test_bad_uploads(server, files, data, headers, status, message):
    url, uploads = server
    r = httpx.post(url + "/transcribe", files=files, data=data, headers=headers, content=b"{}" if headers else None)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert list(uploads.iterdir()) == []


class SlowRecognizer:
    sample_rate = 16000

    def __init__(self):
        self.done = threading.Event()

    def transcribe(self, path, **kw):
        time.sleep(1.5)
        self.done.set()
        raise AssertionError("the client has gone")


def test_time_limit(fsdd, tmp_path):
    slow = SlowRecognizer()
    wav = sorted(fsdd.glob("*.wav"))[0]
    with running(create_app(slow, timeout_s=0.3, tmp_root=str(tmp_path))) as url:
        r = httpx.post(url + "/transcribe", files={"file": (wav.name, wav.read_bytes())})
        assert r.status_code == 504 and "limit" in r.json()["detail"]
        assert slow.done.wait(5)
        time.sleep(0.1)
        assert list(tmp_path.iterdir()) == []  # removed once the late transcription ended


def test_port_in_use_or_out_of_range_is_one_line(tiny_model):
    from asr.cli import main
    from asr.errors import UserError
    from asr.serve import serve

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port} .*pick another --port"):
            serve(Recognizer(tiny_model), "127.0.0.1", port)
    assert main(["serve", "--model", str(tiny_model), "--port", "99999"]) == 2
