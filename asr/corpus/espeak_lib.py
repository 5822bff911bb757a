"""espeak-ng's C library, called in this process: the same audio as the ``espeak-ng`` command, 1.7x faster.

Starting the ``espeak-ng`` program costs more than the speech it makes: about 18 ms per 3-second
sentence here, of which speaking is about 4 ms (measured on the 2-core machine of this project,
2026-11-26). The library skips the program start, but it keeps state from one sentence to the
next (libc's ``rand()``, which its voicing draws from, and more that is internal), so a sentence spoken
after another one comes out slightly different from the program's, and the corpus would depend on the
order in which each worker happened to get its sentences.

So every sentence gets a fresh copy of the library: its bytes are written once to an anonymous in-memory
file (``memfd``), and each call ``dlopen``s that file anew (a new inode is a new library to the loader,
with its own static state), seeds ``rand()`` as a new process has it, initializes, speaks, and unloads
again. Loading the voice and speaking take most of the time (loading the copy, initializing and unloading
about 2.5 ms); ``benchmarks/bench_synth.py`` measured 7.6 ms per sentence against the program's 12.7 (1.67x)
on the corpus plan, and the same samples bit for bit, whatever came before (``tests/test_synth.py`` checks both).

Linux only (``memfd_create``, ``/proc/self/maps``); elsewhere, or without the library, ``available()``
is False and ``asr.corpus.synth`` runs the program instead.
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util
import functools
import os
import threading

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: samples go to the callback, espeak_Synth returns when done
_RATE, _PITCH = 1, 3  # espeak_PARAMETER: words per minute; base pitch 0-99
_FLAGS = 0x100 | 0x1000  # espeakPHONEMES | espeakENDPAUSE (espeakCHARS_AUTO = 0): what the program passes
_SOUND = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()  # one synthesis at a time per process: rand() and the callback's buffer are shared


class _Voice(ctypes.Structure):
    """espeak_VOICE of speak_lib.h: what espeak_SetVoiceByProperties matches."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


@functools.lru_cache(maxsize=1)
def _image() -> int | None:
    """File descriptor of an in-memory copy of libespeak-ng, or None where that cannot work."""
    if not hasattr(os, "memfd_create"):
        return None
    name = ctypes.util.find_library("espeak-ng")
    if name is None:
        return None
    try:
        ctypes.CDLL(name)  # loaded once, to learn its path from this process's mappings
        with open("/proc/self/maps") as maps:  # "ADDRESS PERMS OFFSET DEV INODE PATH" lines
            paths = [parts[5].strip() for parts in (line.split(None, 5) for line in maps) if len(parts) == 6]
    except OSError:
        return None
    path = next((p for p in paths if os.path.basename(p).startswith("libespeak-ng.so")), None)
    if path is None:
        return None
    with open(path, "rb") as f:
        data = f.read()
    fd = os.memfd_create("libespeak-ng", os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)  # this process's C library (rand lives there, shared by every copy of espeak)


def available() -> bool:
    """Whether ``speak`` can run here."""
    return _image() is not None


def speak(voice: str, text: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    """(int16 samples, sample rate) of ``text``: what ``espeak-ng -v VOICE -s SPEED -p PITCH --stdout TEXT``
    writes. Raises RuntimeError when espeak-ng fails (no data folder, unknown voice, no audio)."""
    fd = _image()
    if fd is None:
        raise RuntimeError("libespeak-ng is not available here")
    chunks: list[bytes] = []

    @_SOUND
    def on_sound(wav, n, events):
        if n > 0 and wav:
            chunks.append(ctypes.string_at(wav, 2 * n))  # int16 samples
        return 0  # 0: go on

    with _lock:
        lib = ctypes.CDLL(f"/proc/self/fd/{fd}", mode=os.RTLD_LOCAL)  # a fresh copy, fresh static state
        try:
            _libc().srand(1)  # rand() as a new process starts with it (glibc's default seed)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0)
            if rate <= 0:
                raise RuntimeError("espeak_Initialize failed: espeak-ng-data not found")
            try:
                lib.espeak_SetSynthCallback(on_sound)
                # as the program does it: by voice file name, else by language ("en-gb" is a language, not a file)
                if (lib.espeak_SetVoiceByName(voice.encode()) != 0
                        and lib.espeak_SetVoiceByProperties(ctypes.byref(_Voice(languages=voice.encode()))) != 0):
                    raise RuntimeError(f"unknown voice {voice!r}")
                lib.espeak_SetParameter(_RATE, speed, 0)
                lib.espeak_SetParameter(_PITCH, pitch, 0)
                data = text.encode() + b"\0"
                if lib.espeak_Synth(data, len(data), 0, 0, 0, _FLAGS, None, None) != 0:
                    raise RuntimeError("espeak_Synth failed")
                lib.espeak_Synchronize()
            finally:
                lib.espeak_Terminate()  # frees what it allocated before the copy is unloaded
        finally:
            _ctypes.dlclose(lib._handle)  # unmapped: the next call loads a fresh copy again
    if not chunks:
        raise RuntimeError("no audio")
    return np.frombuffer(b"".join(chunks), dtype=np.int16), rate
