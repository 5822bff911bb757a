"""Mozilla Common Voice: a language folder of a release (``cv-corpus-VERSION/LANG``) into JSONL manifests.

Layout: ``ROOT/clips/*.mp3`` and one tab-separated file per split (``train.tsv``, ``dev.tsv``, ``test.tsv``,
``validated.tsv``, ...) whose header names at least ``client_id``, ``path`` and ``sentence``. Releases are
downloaded from https://commonvoice.mozilla.org/datasets after accepting its terms (an e-mail address is
asked for), so there is no download step here. The utterance id is ``SPEAKER-CLIP``: the first 12
characters of the anonymous ``client_id`` and the clip's name, so ``asr eval --by-speaker`` finds speakers.
Transcripts are kept as written (punctuation, capitals); training normalizes them and says what it drops.
"""

from __future__ import annotations

import csv
from pathlib import Path

from asr.corpus.prepare import measure, write_prepared
from asr.errors import UserError

COLUMNS = ("client_id", "path", "sentence")
SPEAKER_CHARS = 12  # of the client_id hash kept in the utterance id


def read_split(root: Path, split: str, strict: bool = False, jobs: int = 8, progress: bool = True):
    """Utterances of ``ROOT/SPLIT.tsv``, and the problems found (file:line: what)."""
    tsv = root / f"{split}.tsv"
    if not tsv.is_file():
        have = ", ".join(sorted(p.stem for p in root.glob("*.tsv"))) or "no .tsv files"
        raise UserError(f"{tsv}: no such split (found: {have}); pass the language folder, e.g. cv-corpus-17.0/en")
    with open(tsv, encoding="utf-8", errors="replace", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))  # quotes are part of sentences
    header = rows[0] if rows else []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UserError(f"{tsv}:1: no {', '.join(missing)} column in the header (found: {', '.join(header) or 'none'})")
    col = {c: header.index(c) for c in COLUMNS}
    problems: list[str] = []
    entries: list[tuple[str, Path, str]] = []
    seen: set[str] = set()
    for lineno, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{tsv}:{lineno}"
        if len(row) <= max(col.values()):
            problems.append(f"{where}: unreadable line ({len(row)} fields, the header has {len(header)})")
            continue
        clip, text = row[col["path"]].strip(), " ".join(row[col["sentence"]].split())
        utt_id = f"{row[col['client_id']].strip()[:SPEAKER_CHARS] or 'unknown'}-{Path(clip).stem}"
        if not text:
            problems.append(f"{where}: empty sentence for {clip}")
            continue
        audio = root / "clips" / clip
        if not clip or not audio.is_file():
            problems.append(f"{where}: audio {audio} not found")
            continue
        if utt_id in seen:
            problems.append(f"{where}: {clip} is listed twice")
            continue
        seen.add(utt_id)
        entries.append((utt_id, audio, text))
    return measure(entries, problems, strict=strict, jobs=jobs, progress=progress, desc=split), problems


def prepare_commonvoice(root: str | Path, splits: list[str], out_dir: str | Path, strict: bool = False,
                        progress: bool = True) -> dict[str, Path]:
    """Write ``OUT/SPLIT.jsonl`` for each split; safe to re-run (each manifest is written atomically)."""
    root = Path(root)
    if not (root / "clips").is_dir():
        raise UserError(f"{root}: no clips/ folder; pass a Common Voice language folder (cv-corpus-VERSION/LANG)")
    written = {}
    for split in splits:
        utts, problems = read_split(root, split, strict=strict, progress=progress)
        written[split] = write_prepared(split, root / f"{split}.tsv", utts, problems, Path(out_dir) / f"{split}.jsonl")
    return written
