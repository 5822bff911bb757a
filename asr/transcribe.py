"""Transcription for people who use the recognizer: the Python API, output formats and batches.

The API::

    from asr.transcribe import Recognizer

    rec = Recognizer("runs/demo/best.pt")            # or an exported model.onnx / TorchScript file
    t = rec.transcribe("talk.flac")                  # any rate, any channel count, any length
    t.text, t.duration                               # "hello world", 12.34 (seconds)
    t.words  # [{"word": "hello", "start": 0.52, "end": 0.84, "confidence": 0.91}, ...]
    rec.transcribe(samples, sample_rate=8000)        # a (samples,) or (samples, channels) array

``Recognizer(model_path, decoder=None, device="cpu", longform=None, precision="fp32")``: ``decoder`` is a
``DecoderConfig`` (greedy when None; beam with an LM takes ``DecoderConfig(type="beam",
lm=...)``); ``longform`` a ``LongFormConfig`` (60 s windows with 5 s of context each
side, used above 70 s; see asr/longform.py); ``precision="bf16"`` runs a checkpoint's model under bf16
autocast (asr/precision.py). ``transcribe(audio, sample_rate=None,
words=True, keep_log_probs=False, progress=None)`` returns a ``Transcript``; ``words=False``
skips the forced alignment. Word times are seconds from the start of the audio,
``confidence`` the mean posterior of the word's tokens on their aligned frames
(asr/align.py). A bad file raises ``asr.errors.UserError`` with a one-line message.
Torch's thread count is the caller's: ``torch.set_num_threads(1)`` was the fastest on a
busy 2-core machine (see ``asr transcribe --threads``). Batches: ``transcribe_many``.

Output formats (``asr transcribe --format``): ``txt`` (``FILE<TAB>TEXT``), ``json`` (one
object per file: file, text, duration, words), ``srt`` and ``vtt`` subtitles with cues of
at most ``CUE_WORDS`` words and ``CUE_S`` seconds.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
import torch

from asr.align import TextAlignment, align_text, align_words
from asr.audio import AUDIO_EXTENSIONS, SUPPORTED, audio_files, load_audio, to_mono_resampled
from asr.config import DecoderConfig
from asr.decode import Hypothesis, build_decoder
from asr.dist import pick_device
from asr.errors import UserError
from asr.features import LogMel
from asr.longform import ArraySource, FileSource, LongFormConfig, windowed_log_probs
from asr.precision import Autocast, autocast_dtype
from asr.text import normalize_text

CUE_WORDS = 7  # most words in one subtitle cue
CUE_S = 5.0  # longest subtitle cue, seconds
CUE_GAP_S = 1.0  # a pause this long between words starts a new cue, seconds


@dataclass
class Transcript:
    text: str  # the recognized words
    duration: float  # seconds of audio
    hypothesis: Hypothesis = field(repr=False)  # tokens and frames, for alignment
    log_probs: torch.Tensor | None = field(default=None, repr=False)  # (T', V) CTC log-probs
    words: list[dict] = field(default_factory=list)  # [{"word", "start", "end", "confidence"}] when aligned

    def to_dict(self) -> dict:
        return {"text": self.text, "duration": round(self.duration, 3), "words": self.words}


def load_any_model(path: str | os.PathLike, device: torch.device):
    """(model, tokenizer, TrainConfig) from a checkpoint, an ONNX file or a TorchScript file (asr export)."""
    path = Path(path)
    if path.suffix == ".onnx" or (path.is_file() and _is_torchscript(path)):
        from asr.export import load_exported

        return load_exported(path, device)
    from asr.checkpoint import load_model

    return load_model(path, device)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("extra/asr.json") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class Recognizer:
    """``Recognizer("runs/demo/best.pt").transcribe("a.flac").text``; see the module docstring."""

    def __init__(self, model_path: str | os.PathLike, decoder: DecoderConfig | None = None, device: str = "cpu",
                 longform: LongFormConfig | None = None, precision: str = "fp32"):
        self.device = pick_device(str(device))
        self.model, self.tokenizer, self.cfg = load_any_model(model_path, self.device)
        self.precision = precision
        if precision != "fp32":
            if Path(model_path).suffix == ".onnx" or _is_torchscript(Path(model_path)):
                raise UserError(f"--precision {precision} is for checkpoints; {model_path} is an exported model "
                                f"and runs as it was exported (leave --precision out)")
            self.model = Autocast(self.model, autocast_dtype(precision, self.device))
        self.logmel = LogMel(self.cfg.features)
        self.decoder_cfg = decoder or DecoderConfig()
        self.decoder = build_decoder(self.decoder_cfg, self.tokenizer)
        self.longform = longform or LongFormConfig()
        self.frame_s = self.cfg.features.hop_ms / 1000 * self.cfg.model.subsampling  # s per output frame: 0.04
        # Shorter audio than one analysis window and one hop (35 ms at the defaults) holds no speech: its few
        # output frames see mostly the conv front's edge padding, and a model read a stray letter there ("q" in
        # 25 ms of digital silence), so its text is empty.
        self.min_speech_s = (self.cfg.features.win_ms + self.cfg.features.hop_ms) / 1000

    @property
    def sample_rate(self) -> int:
        return self.cfg.features.sample_rate

    def transcribe(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, sample_rate: int | None = None,
                   words: bool = True, keep_log_probs: bool = False, progress: bool | None = None) -> Transcript:
        """A path (any format soundfile reads) or a (samples,) / (samples, channels) array at ``sample_rate``.

        Audio longer than ``longform.threshold_s`` goes through overlapping windows; a file
        that long is read a window at a time, never whole. ``progress``: a tqdm bar for long
        audio (None: only on a terminal).
        """
        lp, duration = self._audio_log_probs(audio, sample_rate, progress)
        return self._finish(lp, duration, words, keep_log_probs)

    def align(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, text: str,
              sample_rate: int | None = None) -> TextAlignment:
        """Word times of a known transcript (normalized as in training) in ``audio`` (as ``transcribe`` takes it), by
        CTC forced alignment, and how well it fits (``TextAlignment.gap``). ValueError when it cannot be aligned."""
        tokens = self.tokenizer.encode(normalize_text(text).text)
        if not tokens:
            raise ValueError("the transcript has no words after normalization")
        lp, _ = self._audio_log_probs(audio, sample_rate, progress=False)
        return align_text(lp, tokens, self.tokenizer, self.frame_s)

    def _audio_log_probs(self, audio, sample_rate: int | None, progress: bool | None) -> tuple[torch.Tensor, float]:
        """(T', V) log-probs of a path or an array (windowed when long) and the audio's duration in seconds."""
        if isinstance(audio, (str, os.PathLike)):
            duration = _file_duration(Path(audio))
            if duration > self.longform.threshold_s:
                with FileSource(audio, self.sample_rate) as src:
                    lp = windowed_log_probs(self.model, self.logmel, src, self.longform, self.device, progress,
                                            desc=Path(audio).name, subsampling=self.cfg.model.subsampling)
                return lp, src.num_samples / self.sample_rate
            wav = load_audio(audio, self.sample_rate)
        else:
            arr = audio.numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
            wav = to_mono_resampled(arr, sample_rate or self.sample_rate, self.sample_rate)
        duration = wav.numel() / self.sample_rate
        if duration > self.longform.threshold_s:
            return windowed_log_probs(self.model, self.logmel, ArraySource(wav), self.longform, self.device,
                                      progress, subsampling=self.cfg.model.subsampling), duration
        return self.log_probs(wav), duration

    @torch.no_grad()
    def log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        """(samples,) at the model's rate -> (T', V) log-probs in one pass."""
        feats = self.logmel(wav).unsqueeze(0)  # (T, F) -> (1, T, F)
        lp, lengths = self.model(feats.to(self.device), torch.tensor([feats.shape[1]], device=self.device))
        return lp[0, : int(lengths[0])].float().cpu()

    def transcribe_wav(self, wav: torch.Tensor, keep_log_probs: bool = False, words: bool = True) -> Transcript:
        """(samples,) float32 at the model's rate, in one pass (no windows)."""
        return self._finish(self.log_probs(wav), wav.numel() / self.sample_rate, words, keep_log_probs)

    def _finish(self, lp: torch.Tensor, duration: float, words: bool, keep_log_probs: bool) -> Transcript:
        if duration < self.min_speech_s:
            return Transcript("", duration, Hypothesis(""), lp if keep_log_probs else None, [])
        hyp = self.decoder.decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]  # (T', V) -> (1, T', V)
        aligned = align_words(lp, hyp, self.tokenizer, self.frame_s) if words else []
        return Transcript(hyp.text, duration, hyp, lp if keep_log_probs else None, aligned)


def _file_duration(path: Path) -> float:
    """Seconds, from the header; UserError for a missing or unreadable file."""
    if not path.is_file():
        raise UserError(f"{path}: no such audio file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot read audio ({e}); supported formats: {SUPPORTED}") from None
    return info.frames / info.samplerate if info.samplerate else 0.0


# ---------------------------------------------------------------------------------------------- subtitles


def cues(words: list[dict], max_words: int = CUE_WORDS, max_s: float = CUE_S,
         max_gap_s: float = CUE_GAP_S) -> list[tuple[float, float, str]]:
    """Aligned words -> (start, end, text) cues of at most ``max_words`` words and ``max_s`` seconds."""
    out, cur = [], []
    for w in words:
        if cur and (len(cur) >= max_words or w["end"] - cur[0]["start"] > max_s
                    or w["start"] - cur[-1]["end"] > max_gap_s):
            out.append(cur)
            cur = []
        cur.append(w)
    if cur:
        out.append(cur)
    return [(c[0]["start"], c[-1]["end"], " ".join(w["word"] for w in c)) for c in out]


def timestamp(seconds: float, sep: str = ",") -> str:
    """12.3456 -> '00:00:12,346' (SRT, sep=',') or '00:00:12.346' (WebVTT, sep='.')."""
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(words: list[dict]) -> str:
    return "".join(f"{i}\n{timestamp(a)} --> {timestamp(b)}\n{text}\n\n"
                   for i, (a, b, text) in enumerate(cues(words), 1))


def to_vtt(words: list[dict]) -> str:
    return "WEBVTT\n\n" + "".join(f"{timestamp(a, '.')} --> {timestamp(b, '.')}\n{text}\n\n"
                                  for a, b, text in cues(words))


SUBTITLES = {"srt": to_srt, "vtt": to_vtt}


# ---------------------------------------------------------------------------------------------- batches


def find_audio(paths: Iterable[Path], list_file: Path | None = None) -> list[tuple[Path, Path | None]]:
    """(file, root) for each file argument, each audio file under a directory argument
    (recursively, sorted; root = that directory), and each line of ``list_file``
    (``#`` comments and blank lines skipped; relative paths from the current directory)."""
    items: list[tuple[Path, Path | None]] = []
    for p in paths:
        if p.is_dir():
            found = audio_files(p)
            if not found:
                raise UserError(f"{p}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under this directory")
            items += [(f, p) for f in found]
        else:
            items.append((p, None))
    if list_file is not None:
        try:
            lines = list_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{list_file}: cannot read the file list ({e})") from None
        items += [(Path(s), None) for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    if not items:
        raise UserError("no audio files given: pass files, directories or --list FILE")
    return items


def subtitle_path(path: Path, root: Path | None, ext: str, out_dir: Path | None) -> Path:
    """FILE.ext beside the input, or in ``out_dir`` (keeping the path below a directory argument)."""
    if out_dir is None:
        return path.with_suffix("." + ext)
    rel = path.relative_to(root) if root is not None else Path(path.name)
    return out_dir / rel.with_suffix("." + ext)


_WORKER: Recognizer | None = None  # one per worker process, loaded once by _init_worker


def _init_worker(model_path, decoder, device, longform, precision) -> None:
    global _WORKER
    torch.set_num_threads(1)  # the pool's processes share the cores: one thread each
    _WORKER = Recognizer(model_path, decoder, device, longform, precision)


def _safe_transcribe(rec: Recognizer, path: Path, words: bool) -> Transcript | str:
    """The transcript, or the error message for a file that failed (the batch goes on)."""
    try:
        return rec.transcribe(path, words=words)
    except UserError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - one odd file must not stop a batch of thousands
        return f"{path}: {type(e).__name__}: {e}"


def _worker_transcribe(path: Path, words: bool) -> Transcript | str:
    return _safe_transcribe(_WORKER, path, words)


def transcribe_many(rec: Recognizer, model_path: Path, paths: list[Path], jobs: int = 1,
                    words: bool = True) -> Iterator[tuple[Path, Transcript | str]]:
    """(path, Transcript or error message) for each path, in order.

    ``jobs > 1``: a pool of processes with one torch thread each (started with spawn: fork
    after torch has started its threads can deadlock, so a calling script needs the
    ``if __name__ == "__main__":`` guard); ``rec`` is used only when jobs == 1. On the
    shared 2-core machine this was written on, one process with one thread was fastest.
    """
    if jobs <= 1 or len(paths) == 1:
        for p in paths:
            yield p, _safe_transcribe(rec, p, words)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(min(jobs, len(paths)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker,
                             initargs=(str(model_path), rec.decoder_cfg, str(rec.device), rec.longform,
                                       rec.precision)) as pool:
        try:
            yield from zip(paths, pool.map(_worker_transcribe, paths, [words] * len(paths)))
        except BrokenProcessPool:
            raise UserError("a transcription worker process died (out of memory?); try --jobs 1") from None
