"""LibriSpeech: read the original layout into JSONL manifests.

Layout: ``ROOT/SUBSET/SPK/CH/SPK-CH-UTT.flac`` with ``ROOT/SUBSET/SPK/CH/SPK-CH.trans.txt``
holding ``SPK-CH-UTT TRANSCRIPT`` lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.corpus.prepare import measure, write_prepared
from asr.errors import UserError

_UTT_ID = re.compile(r"^\d+-\d+-\d+$")
AUDIO_EXTENSIONS = (".flac", ".wav")  # LibriSpeech's own FLAC, and WAV for corpora made in its layout


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
    utts = measure(entries, problems, strict=strict, jobs=jobs, progress=progress, desc=subset_dir.name)
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
        path = write_prepared(subset, subset_dir, utts, problems, out_dir / f"{subset}.jsonl")
        written[subset] = path
    return written
