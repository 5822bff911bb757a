"""What every corpus reader shares: durations read from audio headers in parallel, problems collected
with their file (and line), and the manifest written atomically with a one-line summary.

A reader lists ``(id, audio path, transcript)`` entries and the problems it found; ``measure`` adds
durations (an unreadable header is one more problem); ``write_prepared`` reports and writes.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from asr.audio import audio_duration
from asr.errors import UserError
from asr.manifest import ManifestProblems, Utterance, write_manifest



def first_problem(problems: list[str]) -> UserError:
    """The error ``--strict`` stops with: the first problem and how many more there are."""
    return UserError(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))


def measure(entries: list[tuple[str, Path, str]], problems: list[str], strict: bool = False, jobs: int = 8,
            progress: bool = True, desc: str = "durations") -> list[Utterance]:
    """Utterances of ``entries`` (id, audio, text) with durations from their audio headers, read in ``jobs``
    threads; an unreadable file is appended to ``problems`` (``strict``: raised, as are earlier problems)."""
    if strict and problems:
        raise first_problem(problems)

    def duration(entry):
        try:
            return audio_duration(str(entry[1]))
        except UserError as e:
            return e

    with ThreadPoolExecutor(jobs) as pool:
        durs = list(tqdm(pool.map(duration, entries), total=len(entries), desc=desc, disable=not progress,
                         unit="utt"))
    utts = []
    for (utt_id, audio, text), dur in zip(entries, durs):
        if isinstance(dur, UserError):
            if strict:
                raise dur
            problems.append(str(dur))
            continue
        utts.append(Utterance(utt_id, str(Path(audio).resolve()), round(dur, 3), text))
    return utts


def write_prepared(name: str, source: Path, utts: list[Utterance], problems: list[str], path: Path) -> Path:
    """Report ``problems``, then write ``utts`` sorted by id to ``path`` (atomically); UserError when none is
    usable. ``name`` labels the messages, ``source`` is the folder or file they came from."""
    if problems:
        print(f"warning: {name}: skipped {len(problems)} problem(s)", file=sys.stderr)
        ManifestProblems(problems).report()
    if not utts:
        raise UserError(f"{source}: no usable utterances")
    utts.sort(key=lambda u: u.id)
    write_manifest(path, utts)
    print(f"{path}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h", file=sys.stderr)
    return path
