"""LibriSpeech: read the original layout into JSONL manifests.

Layout: ``ROOT/SUBSET/SPK/CH/SPK-CH-UTT.flac`` with ``ROOT/SUBSET/SPK/CH/SPK-CH.trans.txt``
holding ``SPK-CH-UTT TRANSCRIPT`` lines.
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from asr.audio import audio_duration
from asr.errors import UserError
from asr.manifest import ManifestProblems, Utterance, write_manifest

_UTT_ID = re.compile(r"^\d+-\d+-\d+$")
AUDIO_EXTENSIONS = (".flac", ".wav")


def find_root(root: str | Path) -> Path:
    """Accept the folder holding ``LibriSpeech/`` or the ``LibriSpeech`` folder itself."""
    root = Path(root)
    if (root / "LibriSpeech").is_dir():
        return root / "LibriSpeech"
    if not root.is_dir():
        raise UserError(f"{root}: no such directory; pass the folder that holds LibriSpeech/")
    return root


def read_subset(subset_dir: Path, strict: bool = False, jobs: int = 8, progress: bool = True):
    """Utterances of one subset folder, and the problems found (file:line: what)."""
    problems: list[str] = []
    entries: list[tuple[str, Path, str]] = []  # (id, audio path, text)
    trans_files = sorted(subset_dir.glob("*/*/*.trans.txt"))
    if not trans_files:
        raise UserError(f"{subset_dir}: no SPK/CH/SPK-CH.trans.txt files: is this a LibriSpeech subset folder?")
    mentioned: set[str] = set()  # ids that have a transcript line, good or bad
    for trans in trans_files:
        for lineno, raw in enumerate(trans.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            line = raw.strip()
            if not line:
                continue
            utt_id, _, text = line.partition(" ")
            text = " ".join(text.split())
            where = f"{trans}:{lineno}"
            if not _UTT_ID.match(utt_id):
                problems.append(f"{where}: unreadable line (expected 'SPK-CH-UTT TEXT'): {line[:60]!r}")
                continue
            mentioned.add(utt_id)
            if not text:
                problems.append(f"{where}: empty transcript for {utt_id}")
                continue
            audio = next((trans.parent / (utt_id + ext) for ext in AUDIO_EXTENSIONS
                          if (trans.parent / (utt_id + ext)).is_file()), None)
            if audio is None:
                problems.append(f"{where}: audio for {utt_id} not found ({trans.parent / utt_id}.flac)")
                continue
            entries.append((utt_id, audio, text))
    for audio in sorted(p for ext in AUDIO_EXTENSIONS for p in subset_dir.glob(f"*/*/*{ext}")):
        if audio.stem not in mentioned:
            problems.append(f"{audio}: audio file has no transcript line")
    if strict and problems:
        raise UserError(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))

    def duration(entry):
        try:
            return audio_duration(str(entry[1]))
        except UserError as e:
            return e

    with ThreadPoolExecutor(jobs) as pool:
        durs = list(tqdm(pool.map(duration, entries), total=len(entries), desc=subset_dir.name,
                         disable=not progress, unit="utt"))
    utts = []
    for (utt_id, audio, text), dur in zip(entries, durs):
        if isinstance(dur, UserError):
            if strict:
                raise dur
            problems.append(str(dur))
            continue
        utts.append(Utterance(utt_id, str(audio.resolve()), round(dur, 3), text))
    return utts, problems


def prepare_librispeech(root: str | Path, subsets: list[str], out_dir: str | Path, strict: bool = False,
                        progress: bool = True) -> dict[str, Path]:
    """Write ``OUT/SUBSET.jsonl`` for each subset; safe to re-run (each manifest is written atomically)."""
    root = find_root(root)
    out_dir = Path(out_dir)
    written = {}
    for subset in subsets:
        subset_dir = root / subset
        if not subset_dir.is_dir():
            have = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "nothing"
            raise UserError(f"{subset_dir}: no such subset (found: {have})")
        utts, problems = read_subset(subset_dir, strict=strict, progress=progress)
        if problems:
            print(f"warning: {subset}: skipped {len(problems)} problem(s)", file=sys.stderr)
            ManifestProblems(problems).report()
        if not utts:
            raise UserError(f"{subset_dir}: no usable utterances")
        utts.sort(key=lambda u: u.id)
        path = out_dir / f"{subset}.jsonl"
        write_manifest(path, utts)
        hours = sum(u.duration for u in utts) / 3600
        print(f"{path}: {len(utts)} utterances, {hours:.2f} h", file=sys.stderr)
        written[subset] = path
    return written
