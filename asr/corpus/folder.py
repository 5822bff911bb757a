"""Your own recordings: any folder of audio files, each with its transcript beside it.

Layout: ``ROOT/**/NAME.wav`` (or .flac, .ogg, .mp3) with ``ROOT/**/NAME.txt`` (or ``.lab``, as the
Montreal Forced Aligner reads) holding the transcript as plain text. The utterance id is the file's path
under ROOT without its extension, folders joined by "-" (``spk1/utt01.wav`` -> ``spk1-utt01``), so a
first folder level per speaker gives ``asr eval --by-speaker`` its speakers.
"""

from __future__ import annotations

from pathlib import Path

from asr.audio import AUDIO_EXTENSIONS
from asr.corpus.prepare import measure, write_prepared
from asr.errors import UserError

TRANSCRIPT_EXTENSIONS = (".txt", ".lab")


def read_folder(root: Path, strict: bool = False, jobs: int = 8, progress: bool = True):
    """Utterances under ``root``, and the problems found (file: what)."""
    files = sorted(f for f in root.rglob("*") if f.is_file())  # one walk of the tree for audio and transcripts
    audio = [f for f in files if f.suffix.lower() in AUDIO_EXTENSIONS]
    transcripts = [f for f in files if f.suffix.lower() in TRANSCRIPT_EXTENSIONS]
    beside: dict[Path, dict[str, Path]] = {}  # path without extension -> {".txt": its transcript, ...}
    for t in transcripts:
        beside.setdefault(t.with_suffix(""), {})[t.suffix] = t
    if not audio:
        raise UserError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under this folder")
    problems: list[str] = []
    entries: list[tuple[str, Path, str]] = []  # (id, audio path, text)
    owner: dict[str, Path] = {}  # id -> the audio file that has it
    for f in audio:
        utt_id = "-".join(f.relative_to(root).with_suffix("").parts)
        if utt_id in owner:
            problems.append(f"{f}: same utterance id {utt_id!r} as {owner[utt_id]}; rename one of them")
            continue
        owner[utt_id] = f
        trans = min(beside.get(f.with_suffix(""), {}).values(), default=None,  # a.txt (or A.TXT), else a.lab
                    key=lambda t: TRANSCRIPT_EXTENSIONS.index(t.suffix.lower()))
        if trans is None:
            problems.append(f"{f}: no transcript beside it ({f.with_suffix('.txt').name})")
            continue
        text = " ".join(trans.read_text(encoding="utf-8", errors="replace").split())
        if not text:
            problems.append(f"{trans}: empty transcript")
            continue
        entries.append((utt_id, f, text))
    with_audio = {f.with_suffix("") for f in audio}
    problems += [f"{t}: transcript without an audio file beside it" for t in transcripts
                 if t.with_suffix("") not in with_audio]
    return measure(entries, problems, strict=strict, jobs=jobs, progress=progress, desc=root.name), problems


def prepare_folder(root: str | Path, out_dir: str | Path, name: str | None = None, strict: bool = False,
                   progress: bool = True) -> Path:
    """Write ``OUT/NAME.jsonl`` (NAME: the folder's name) for the recordings under ``root``; safe to re-run."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such directory; pass the folder that holds the audio and transcript files")
    name = name or root.resolve().name
    utts, problems = read_folder(root, strict=strict, progress=progress)
    return write_prepared(name, root, utts, problems, Path(out_dir) / f"{name}.jsonl")
