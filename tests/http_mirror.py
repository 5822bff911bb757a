"""A local HTTP mirror on 127.0.0.1 for the download tests (no network needed), and the archives it serves."""

from __future__ import annotations

import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer



def tar_gz(members: dict[str, bytes]) -> bytes:
    """A .tar.gz in memory holding ``members`` ({"path/in/archive": bytes}), in that order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def flac_bytes(wav, rate: int = 16000) -> bytes:
    """``wav`` (float samples) encoded as FLAC."""
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, wav, rate, format="FLAC")
    return out.getvalue()


def upper_case_arpa(arpa: str) -> str:
    """A lower-case ARPA file's text with its words upper-cased, as in LibriSpeech's own LMs (OpenSLR 11: ``HELLO``,
    ``<UNK>``; ``<s>``, ``</s>`` and the section lines as they are). Served gzip-compressed, as OpenSLR does."""
    head, _, grams = arpa.partition("\\1-grams:")
    grams = grams.upper().replace("<S>", "<s>").replace("</S>", "</s>").replace("-GRAMS:", "-grams:")
    return head + "\\1-grams:" + grams.replace("\\END\\", "\\end\\").replace("E-", "e-")


class Mirror:
    """Serves ``files`` ({"/path": bytes}) with Range support and records each request's headers.

    ``cut_first_after=N`` sends only N bytes of the first response and then closes the
    connection: an interrupted transfer. Use as a context manager; ``url`` is the base URL.
    """

    def __init__(self, files: dict[str, bytes], cut_first_after: int | None = None):
        self.files, self.cut, self.requests = files, cut_first_after, []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append({"path": self.path, **dict(self.headers)})
                if self.path not in mirror.files:
                    self.send_error(404)
                    return
                data, status = mirror.files[self.path], 200
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    data, status = data[start:], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mirror.cut is not None and len(mirror.requests) == 1:
                    data = data[: mirror.cut]  # then the connection closes: an interrupted transfer
                    self.close_connection = True
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
