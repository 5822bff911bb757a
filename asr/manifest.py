"""Manifests: one JSON object per line, ``{"id", "audio", "duration", "text"}``.

Reading validates every line and reports problems with file and line number.
``strict=True`` stops at the first problem (UserError); otherwise bad lines are
skipped, counted and reported once.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from asr.errors import UserError
from asr.io import atomic_open
from asr.text import normalize_text


@dataclass(frozen=True)
class Utterance:
    id: str  # unique utterance id, e.g. 1272-128104-0000
    audio: str  # absolute path of the audio file
    duration: float  # seconds, to 1 ms
    text: str  # transcript as written in the corpus (normalized at training time)


@dataclass
class ManifestProblems:
    """What validation skipped, each entry "FILE:LINE: problem"."""

    messages: list[str]

    def report(self, stream=None, limit: int = 10) -> None:
        stream = stream or sys.stderr
        for m in self.messages[:limit]:
            print(f"warning: {m}", file=stream)
        if len(self.messages) > limit:
            print(f"warning: ... and {len(self.messages) - limit} more problems", file=stream)


def write_manifest(path: str | os.PathLike, utts: Iterable[Utterance]) -> int:
    """Write atomically; returns the number of lines."""
    n = 0
    with atomic_open(path, "w") as f:
        for u in utts:
            f.write(json.dumps(asdict(u), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_manifest(
    path: str | os.PathLike, strict: bool = False, check_audio: bool = True, quiet: bool = False
) -> list[Utterance]:
    """Read and validate a manifest. Problems: malformed JSON, missing or mistyped fields,
    missing audio, empty text or text with nothing in the token set, duplicate ids."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such manifest; make one with 'asr prepare'")
    utts: list[Utterance] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    dropped: dict[str, int] = {}  # characters normalization dropped -> first line
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                utt, lost = _parse_line(line, check_audio, path.parent)
                if utt.id in seen:
                    raise ValueError(f"duplicate id {utt.id!r} (first on line {seen[utt.id]})")
            except ValueError as e:
                if strict:
                    raise UserError(f"{where}: {e}") from None
                problems.append(f"{where}: {e}")
                continue
            seen[utt.id] = lineno
            utts.append(utt)
            for ch in lost:
                dropped.setdefault(ch, lineno)
    if dropped and not quiet:
        shown = ", ".join(f"{ch!r} (line {n})" for ch, n in list(dropped.items())[:10])
        print(f"warning: {path}: transcripts have characters outside the token set (a-z, apostrophe, space), "
              f"dropped from the targets: {shown}{' ...' if len(dropped) > 10 else ''}", file=sys.stderr)
    if problems and not quiet:
        print(f"warning: {path}: skipped {len(problems)} bad line(s) of {len(problems) + len(utts)}", file=sys.stderr)
        ManifestProblems(problems).report()
    if not utts:
        raise UserError(f"{path}: no usable utterances")
    return utts


def _parse_line(line: str, check_audio: bool, base: Path) -> tuple[Utterance, str]:
    """A valid manifest line's utterance, and the characters normalizing its text drops.

    A relative audio path is read from the working directory when the file is there, else from ``base``
    (the manifest's folder), so a manifest beside its audio works from anywhere.
    """
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(d, dict):
        raise ValueError("expected a JSON object")
    for key, typ in (("id", str), ("audio", str), ("duration", (int, float)), ("text", str)):
        if key not in d:
            raise ValueError(f"missing field {key!r}")
        if not isinstance(d[key], typ) or isinstance(d[key], bool):
            raise ValueError(f"field {key!r} has the wrong type ({type(d[key]).__name__})")
    if not d["duration"] > 0:
        raise ValueError(f"duration must be positive, got {d['duration']}")
    norm = normalize_text(d["text"])
    if not norm.text:
        raise ValueError(f"empty transcript (after normalization) for {d['id']!r}")
    audio = d["audio"]
    if not os.path.isabs(audio) and not os.path.isfile(audio) and (base / audio).is_file():
        audio = str(base / audio)
    if check_audio and not os.path.isfile(audio):
        raise ValueError(f"audio file not found: {d['audio']}" + ("" if os.path.isabs(d["audio"]) else
                         f" (neither in the working directory nor in {base})"))
    return Utterance(d["id"], audio, float(d["duration"]), d["text"]), norm.dropped
