"""An HTTP transcription server (FastAPI + uvicorn): ``asr serve --model runs/demo/best.pt``.

``POST /transcribe``: multipart/form-data with the audio in a field named ``file``
(``curl -F file=@a.flac http://127.0.0.1:8000/transcribe``), or the raw audio as the body
with an ``audio/*`` or ``application/octet-stream`` content type. Answers
``{"file", "text", "duration", "words": [{"word", "start", "end", "confidence"}]}``.
``GET /health``: ``{"status": "ok", ...}``.

Errors, each with ``{"detail": "<what was wrong>"}``: 400 empty upload or unusable audio
content, 408 upload slower than the time limit, 413 upload over ``--max-mb``, 415 not a
format soundfile reads, 422 no ``file`` field, 504 transcription over the time limit
(the request limit covers the wait for the model, which transcribes one upload at a
time), 500 anything unexpected (logged, not shown).

Uploads are streamed, never held whole in memory, into a fresh private directory
(``tempfile.TemporaryDirectory``: mode 0700) that is deleted when the request ends;
nothing is written anywhere else. The upload's file name is only echoed back, never
used as a path. Bind to 127.0.0.1 (the default) unless a proxy in front adds
authentication: the server has none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf
from fastapi import FastAPI, HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

from asr.audio import SUPPORTED
from asr.errors import UserError
from asr.transcribe import Recognizer

log = logging.getLogger("asr.serve")

FORM_SLACK = 64 * 1024  # multipart framing and small fields allowed beyond --max-mb, bytes
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3"}  # kept on the temp file as a format hint


class _TooLarge(Exception):
    pass


class _Upload:
    """Streams one multipart body, writing the ``file`` field into ``dest`` and counting bytes."""

    def __init__(self, boundary: bytes, dest: Path, max_bytes: int):
        self.dest, self.max_bytes = dest, max_bytes
        self.filename: str | None = None  # the client's name for the file; None: no file field seen
        self.size = 0
        self._out = None
        self._field, self._value, self._headers = b"", b"", {}
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._data, "on_part_end": self._part_end,
        })

    def write(self, chunk: bytes) -> None:
        self.parser.write(chunk)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def _part_begin(self):
        self._headers = {}

    def _header_field(self, data, start, end):
        self._field += data[start:end]

    def _header_value(self, data, start, end):
        self._value += data[start:end]

    def _header_end(self):
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self):
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        if opts.get(b"name") == b"file" and self.filename is None:
            self.filename = opts.get(b"filename", b"upload").decode("utf-8", "replace")
            self._out = open(self.dest, "wb")

    def _data(self, data, start, end):
        if self._out is not None:
            self.size += end - start
            if self.size > self.max_bytes:
                raise _TooLarge
            self._out.write(data[start:end])

    def _part_end(self):
        self.close()


def create_app(rec: Recognizer, max_mb: float = 50.0, timeout_s: float = 300.0,
               tmp_root: str | None = None) -> FastAPI:
    """The app; ``tmp_root``: where the per-request private directories go (None: the system's)."""
    app = FastAPI(title="asr", description="BiLSTM-CTC speech recognition", version="0.1.0")
    max_bytes = int(max_mb * 1024 * 1024)
    model_pool = ThreadPoolExecutor(1, thread_name_prefix="asr-model")  # one transcription at a time

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "sample_rate": rec.sample_rate, "max_mb": max_mb, "timeout_s": timeout_s}

    @app.post("/transcribe", openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"],
                   "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
    async def transcribe(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes + FORM_SLACK:
            raise HTTPException(413, f"upload of {int(declared) / 2**20:.1f} MB is over the {max_mb:g} MB limit")
        tmp = tempfile.TemporaryDirectory(prefix="asr-upload-", dir=tmp_root)
        keep = False  # True while a transcription that timed out still reads the directory
        try:
            try:
                path, name = await asyncio.wait_for(_receive(request, Path(tmp.name), max_bytes), timeout_s)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the upload took longer than the {timeout_s:g} s limit") from None
            _check_audio(path, name)
            future = model_pool.submit(rec.transcribe, path, progress=False)
            try:
                t = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)
            except asyncio.TimeoutError:
                if not future.cancel():  # already running: delete the upload when it ends
                    keep = True
                    future.add_done_callback(lambda _: tmp.cleanup())
                raise HTTPException(504, f"transcription took longer than the {timeout_s:g} s limit") from None
            except UserError as e:
                raise HTTPException(400, str(e).replace(str(path), name)) from None
            except Exception:
                log.exception("transcription failed for upload %r", name)
                raise HTTPException(500, "transcription failed; the server log has the details") from None
            return {"file": name, **t.to_dict()}
        finally:
            if not keep:
                tmp.cleanup()

    return app


async def _receive(request: Request, folder: Path, max_bytes: int) -> tuple[Path, str]:
    """Stream the request body into ``folder``; (path of the audio, the client's file name)."""
    ctype, opts = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"multipart/form-data" and opts.get(b"boundary"):
        name = None
        upload = _Upload(opts[b"boundary"], folder / "upload", max_bytes)
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > max_bytes + FORM_SLACK:
                    raise _TooLarge
                upload.write(chunk)
        except _TooLarge:
            raise HTTPException(413, f"upload over the {max_bytes / 2**20:g} MB limit") from None
        except Exception as e:  # python-multipart's parse errors
            raise HTTPException(400, f"malformed multipart body ({e})") from None
        finally:
            upload.close()
        name = upload.filename
        if name is None:
            raise HTTPException(422, "no file: send the audio as multipart/form-data in a field named 'file' "
                                     "(curl -F file=@audio.flac URL)")
        path = upload.dest
    elif ctype.startswith(b"audio/") or ctype == b"application/octet-stream":
        name, path, total = "upload", folder / "upload", 0
        with open(path, "wb") as f:
            async for chunk in request.stream():
                total += len(chunk)
                if total > max_bytes:
                    raise HTTPException(413, f"upload over the {max_bytes / 2**20:g} MB limit")
                f.write(chunk)
    else:
        no_file = ctype in (b"", b"application/x-www-form-urlencoded")  # a form, but without the file
        raise HTTPException(422 if no_file else 415, "send multipart/form-data with the audio in a field named "
                                                   "'file', or the raw audio with an audio/* content type")
    suffix = Path(name).suffix.lower()
    if suffix in AUDIO_SUFFIXES:  # a format hint for the decoder; the client's name is never a path
        path = path.rename(path.with_suffix(suffix))
    return path, name


def _check_audio(path: Path, name: str) -> None:
    if path.stat().st_size == 0:
        raise HTTPException(400, f"{name}: the upload is empty")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        raise HTTPException(415, f"{name}: not an audio file this server reads; supported formats: {SUPPORTED}") \
            from None
    if info.frames == 0:
        raise HTTPException(400, f"{name}: the audio has no samples")


def serve(rec: Recognizer, host: str = "127.0.0.1", port: int = 8000, max_mb: float = 50.0,
          timeout_s: float = 300.0) -> None:
    import socket

    import uvicorn

    try:  # say it in one line before uvicorn starts (it would log its own error after start-up)
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else str(e)
        raise UserError(f"cannot listen on {host}:{port} ({why}); pick another --port or --host") from None
    uvicorn.run(create_app(rec, max_mb, timeout_s), host=host, port=port, log_level="info", timeout_keep_alive=5)
