"""The embedded default corpus: English speech synthesized locally with espeak-ng.

``synth_corpus(out, SynthConfig())`` writes about 6 hours of training audio plus
dev and test splits in the LibriSpeech layout, so ``asr.corpus.librispeech`` reads
it like the real thing::

    OUT/LibriSpeech/{train-synth,dev-synth,test-synth}/SPK/CH/SPK-CH-UTT.flac
    OUT/LibriSpeech/{...}/SPK/CH/SPK-CH.trans.txt       ("SPK-CH-UTT TRANSCRIPT" lines)
    OUT/LibriSpeech/SPEAKERS.synth.tsv                  (speaker id -> accent, variant, split)
    OUT/LibriSpeech/.synth-complete.json                (config and summary; written last)

What makes the test split a fair measurement of word error rate:

* Voices are split, not just utterances. A voice is (accent, variant), where accents
  are espeak-ng's English voices and variants are the files of
  ``espeak-ng-data/voices/!v``. The *variants* are split three ways, so a test or dev
  variant is never heard in training, not even with another accent. Every split
  uses every accent.
* Sentences are split: train, dev and test share no sentence (compared after
  normalization), though they share the vocabulary.
* The test split is big enough to mean something (``min_test_utts``,
  ``min_test_words``); a config that cannot meet that is refused.

Everything is deterministic from ``seed``: sentences, the voice split, speed and
pitch per utterance, and (espeak being deterministic) the audio itself. Each file is
written atomically and existing files are kept, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import multiprocessing
import random
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import soundfile as sf

from asr.audio import resampler
from asr.corpus import espeak_lib
from asr.corpus.sentences import normalize, sentence_stream
from asr.corpus.voicegen import MAX_VARIANTS
from asr.errors import UserError
from asr.io import atomic_write_bytes, atomic_write_text

SPLITS = ("train", "dev", "test")
SUBSET = {split: f"{split}-synth" for split in SPLITS}  # LibriSpeech subset folder of each split
COMPLETE_MARKER = ".synth-complete.json"  # written last: the corpus is complete
STARTED_MARKER = ".synth-started.json"  # written first: which config the partial files belong to
SPEAKERS_FILE = "SPEAKERS.synth.tsv"
# Bump when the grammar, the planning or the rendering changes what a config produces,
# so a corpus made by an older version is not silently resumed or reused.
GENERATOR_VERSION = 1

# espeak-ng English voices used as accents, in a fixed order (speaker ids depend on it).
# "en-gb" is what plain "en" means. Only those that exist on this machine are used.
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
PROBE_TEXT = "the quick brown fox jumped over the lazy dog"  # spoken once per voice to tell voices apart
ESPEAK_RATE = 22050  # Hz; espeak-ng always writes this rate on --stdout


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesize. Every field except ``jobs`` changes the output."""

    # 6, not 3: at the main job's training compute, twice the speech seen half as often scores 35.1 % test WER
    # instead of 40.8 % (recipes/demo/README.md, "What limits the WER")
    hours: float = 6.0  # total train audio, hours (generation stops once reached)
    dev_utts: int = 120  # utterances in dev-synth
    test_utts: int = 300  # utterances in test-synth
    seed: int = 0  # seeds sentences, the voice split, and speed/pitch draws
    jobs: int = 2  # parallel espeak processes (worker processes; output does not depend on it)
    sample_rate: int = 16000  # Hz of the written FLAC
    speed_min: int = 130  # words per minute (espeak -s), lowest drawn per utterance
    speed_max: int = 210  # words per minute (espeak -s), highest drawn per utterance
    pitch_min: int = 25  # espeak pitch (-p, scale 0-99), lowest drawn per utterance
    pitch_max: int = 75  # espeak pitch (-p, scale 0-99), highest drawn per utterance
    test_variants: int = 15  # voice variants (files of voices/!v) reserved for test
    dev_variants: int = 8  # voice variants reserved for dev
    utts_per_chapter: int = 20  # utterances per chapter folder (CH) of a speaker
    max_silence: float = 0.15  # seconds of leading/trailing silence kept (espeak adds ~0.3 s)
    min_test_utts: int = 200  # utterances: fewer in test-synth is refused as not a fair WER
    min_test_words: int = 600  # distinct words: fewer in test-synth is refused as not a fair WER
    # variant file names never used: whispered (unvoiced) voices, unintelligible to a model
    # trained on voiced speech, would make the WER mostly a measure of the voice draw
    exclude_variants: tuple[str, ...] = ("caleb", "whisper", "whisperf")
    # 0: at the main job's budget 24 gave 21.35 / 20.20 / 23.10 % test WER for training seeds 0 / 1 / 2 against
    # 22.10 / 22.77 / 22.51 % without, within the spread (recipes/demo/README.md, "Made-up voices")
    made_up_voices: int = 0  # voice variants bred from the training variants' settings (asr.corpus.voicegen), which
    #                          speak in training only, beside the training variants; 0: none

    def validate(self) -> None:
        """Raise UserError on values espeak or the layout cannot honour."""
        problems = []
        if not self.hours > 0:
            problems.append(f"hours must be > 0 (got {self.hours})")
        if self.dev_utts < 1 or self.test_utts < 1:
            problems.append("dev_utts and test_utts must be >= 1")
        if self.jobs < 1:
            problems.append(f"jobs must be >= 1 (got {self.jobs})")
        if not 80 <= self.speed_min <= self.speed_max <= 450:
            problems.append(f"need 80 <= speed_min <= speed_max <= 450 words/minute "
                            f"(got {self.speed_min}-{self.speed_max})")
        if not 0 <= self.pitch_min <= self.pitch_max <= 99:
            problems.append(f"need 0 <= pitch_min <= pitch_max <= 99 (got {self.pitch_min}-{self.pitch_max})")
        if self.sample_rate < 8000:
            problems.append(f"sample_rate must be >= 8000 Hz (got {self.sample_rate})")
        if self.test_variants < 1 or self.dev_variants < 1:
            problems.append("test_variants and dev_variants must be >= 1")
        if not 0 <= self.made_up_voices <= MAX_VARIANTS:  # espeak-ng's voice list; speaker ids stay below 1000
            problems.append(f"made_up_voices must be 0..{MAX_VARIANTS} (got {self.made_up_voices})")
        if self.utts_per_chapter < 1 or self.max_silence < 0:
            problems.append("utts_per_chapter must be >= 1 and max_silence >= 0")
        if problems:
            raise UserError("bad synthesis config: " + "; ".join(problems))

    def identity(self) -> dict:
        """The fields that determine the corpus (all but ``jobs``), JSON-ready."""
        d = dataclasses.asdict(self)
        d.pop("jobs")
        d["exclude_variants"] = list(d["exclude_variants"])
        if not d["made_up_voices"]:  # absent: corpora made before the field existed stay valid
            del d["made_up_voices"]
        d["generator_version"] = GENERATOR_VERSION
        return d


# ---------------------------------------------------------------------------
# espeak-ng
# ---------------------------------------------------------------------------


def espeak_binary() -> str:
    """Path of espeak-ng, or a UserError that says how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise UserError("espeak-ng not found: install it with 'apt-get install espeak-ng' "
                        "(or your system's package manager), or train on another corpus")
    return path


def espeak_wav(voice: str, text: str, speed: int = 175, pitch: int = 50, path: str | None = None) -> bytes:
    """Run espeak-ng once; return the WAV bytes it writes to stdout (``path``: its data folder; None: the
    system's)."""
    cmd = [espeak_binary(), *([f"--path={path}"] if path else []), "-v", voice, "-s", str(speed), "-p", str(pitch),
           "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) <= 44:  # 44 bytes: a WAV header and no audio
        err = proc.stderr.decode(errors="replace").strip()
        raise UserError(f"espeak-ng failed for voice {voice!r} (exit {proc.returncode}): {err or 'no audio'}")
    return proc.stdout


def espeak_samples(voice: str, text: str, speed: int = 175, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Float32 mono samples and rate of ``text`` in ``voice``: from espeak-ng's library in this process where it
    can be loaded (``asr.corpus.espeak_lib``: the same samples, 1.7x faster), else from the program."""
    if espeak_lib.available():
        try:
            samples, rate = espeak_lib.speak(voice, text, speed, pitch)
        except RuntimeError as e:
            raise UserError(f"espeak-ng failed for voice {voice!r}: {e}") from None
        return samples.astype(np.float32) / 32768, rate  # as soundfile reads the program's 16-bit WAV
    return read_wav(espeak_wav(voice, text, speed, pitch))


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Float32 mono samples and rate of espeak's WAV (its header sizes are bogus; soundfile copes)."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return samples, rate


def _audio_hash(voice: str) -> str:
    samples, _ = espeak_samples(voice, PROBE_TEXT)
    return hashlib.sha1(samples.tobytes()).hexdigest()


@dataclass(frozen=True)
class Voices:
    """What espeak-ng offers on this machine."""

    version: str  # espeak-ng version string
    data_dir: str  # espeak-ng-data folder
    accents: tuple[str, ...]  # English voices that exist and sound distinct
    variants: tuple[str, ...]  # file names in voices/!v that really change the sound


def _version_and_data_dir() -> tuple[str, Path]:
    out = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: /usr/lib/x86_64-linux-gnu/espeak-ng-data"
    version = re.search(r"text-to-speech:\s*(\S+)", out)
    data = re.search(r"Data at:\s*(.+)$", out.strip(), re.MULTILINE)
    if not data:
        raise UserError(f"could not find espeak-ng's data folder in 'espeak-ng --version' output: {out!r}")
    return (version.group(1) if version else "unknown"), Path(data.group(1).strip())


def _listed_english_voices() -> set[str]:
    """Language codes in ``espeak-ng --voices=en`` (second column)."""
    out = subprocess.run([espeak_binary(), "--voices=en"], capture_output=True, text=True, check=False).stdout
    return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}


def _distinct(candidates: Sequence[str], hashes: dict[str, str], taken: set[str]) -> list[str]:
    """Keep candidates whose audio hash is not already taken (first one wins)."""
    kept = []
    for name in candidates:
        if hashes[name] not in taken:
            taken.add(hashes[name])
            kept.append(name)
    return kept


@functools.lru_cache(maxsize=1)
def discover_voices() -> Voices:
    """English accents and voice variants that really change the sound (cached per process).

    Trap: espeak-ng silently falls back to the base voice for an unknown variant, and
    variants are named by *file* name (``+adam``), not display name. So each variant
    speaks one probe sentence as ``en-us+VARIANT``; it is kept only if its samples
    differ from the plain ``en-us`` voice and from every variant kept before it.
    """
    version, data_dir = _version_and_data_dir()
    listed = _listed_english_voices()
    accents = [a for a in ACCENTS if a in listed or (a == "en-gb" and "en" in listed)]
    variant_dir = data_dir / "voices" / "!v"
    files = sorted(p.name for p in variant_dir.iterdir() if p.is_file()) if variant_dir.is_dir() else []
    base = "en-us" if "en-us" in accents else (accents[0] if accents else "en")
    probes = [*accents, *(f"{base}+{v}" for v in files)]
    # Probing ~100 voices one by one with the program takes ~3 s; threads overlap its processes (0.9 s). The
    # in-process library speaks one at a time (its lock) in about 1.2 s.
    with ThreadPoolExecutor(8) as pool:
        hashes = dict(zip(probes, pool.map(_audio_hash, probes)))
    accents = _distinct(accents, hashes, set())
    taken = {hashes[base]} if base in hashes else set()
    variants = [p.split("+", 1)[1] for p in _distinct([f"{base}+{v}" for v in files], hashes, taken)]
    if not accents or not variants:
        raise UserError(f"espeak-ng {version} at {data_dir}: found {len(accents)} English accents and "
                        f"{len(variants)} voice variants; need at least one of each")
    return Voices(version, str(data_dir), tuple(accents), tuple(variants))


# ---------------------------------------------------------------------------
# Planning: which sentence, voice, speed and pitch each utterance gets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Utt:
    """One planned utterance."""

    split: str  # train / dev / test
    speaker: int  # speaker id, unique per (accent, variant) in the whole corpus
    chapter: int  # chapter id within the speaker
    index: int  # utterance index within the chapter
    accent: str  # espeak voice, e.g. en-gb-scotland
    variant: str  # file name in voices/!v, e.g. adam
    speed: int  # words per minute
    pitch: int  # espeak pitch 0-99
    text: str  # what espeak says (lower case, with punctuation for prosody)
    transcript: str  # LibriSpeech-style upper-case transcript

    @property
    def utt_id(self) -> str:
        return f"{self.speaker}-{self.chapter}-{self.index:04d}"

    def relpath(self) -> Path:
        """Path of the FLAC below ``OUT/LibriSpeech``."""
        return Path(SUBSET[self.split], str(self.speaker), str(self.chapter), f"{self.utt_id}.flac")


def split_variants(variants: Sequence[str], cfg: SynthConfig) -> dict[str, tuple[str, ...]]:
    """Disjoint variant groups per split, drawn with a seeded RNG."""
    usable = sorted(v for v in variants if v not in set(cfg.exclude_variants))
    need = cfg.test_variants + cfg.dev_variants + 1
    if len(usable) < need:
        raise UserError(f"only {len(usable)} usable espeak-ng voice variants, but test_variants="
                        f"{cfg.test_variants} + dev_variants={cfg.dev_variants} + at least 1 for training "
                        f"needs {need}: lower test_variants/dev_variants")
    random.Random(f"asr-synth-variants-{cfg.seed}").shuffle(usable)
    test, dev = usable[:cfg.test_variants], usable[cfg.test_variants:need - 1]
    return {"test": tuple(sorted(test)), "dev": tuple(sorted(dev)), "train": tuple(sorted(usable[need - 1:]))}


def speaker_id(voices: Voices, accent: str, variant: str) -> int:
    """``AVVV``: accent number (1-based, in ACCENTS order) then variant number (1-based)."""
    return 1000 * (ACCENTS.index(accent) + 1) + voices.variants.index(variant) + 1


def _cycle_shuffled(items: Sequence[str], rng: random.Random) -> Iterator[str]:
    """Endless cycle through ``items``, reshuffled every round (so all are used evenly)."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def sentence_plan(seed: int, split: str, exclude: set[str]) -> Iterator[tuple[str, str]]:
    """Endless ``(spoken text, transcript)`` for a split, never repeating and skipping ``exclude``."""
    seen = set(exclude)
    for text in sentence_stream(f"{seed}-{split}"):
        transcript = normalize(text)
        if transcript not in seen:
            seen.add(transcript)
            yield text, transcript


def plan_split(split: str, cfg: SynthConfig, voices: Voices, variants: Sequence[str],
               exclude: set[str]) -> Iterator[Utt]:
    """Endless deterministic stream of planned utterances for ``split``."""
    rng = random.Random(f"asr-synth-{split}-{cfg.seed}")
    accents = _cycle_shuffled(voices.accents, random.Random(f"asr-synth-accents-{split}-{cfg.seed}"))
    chosen = _cycle_shuffled(variants, random.Random(f"asr-synth-vars-{split}-{cfg.seed}"))
    per_speaker: dict[int, int] = defaultdict(int)
    for text, transcript in sentence_plan(cfg.seed, split, exclude):
        accent, variant = next(accents), next(chosen)
        spk = speaker_id(voices, accent, variant)
        n = per_speaker[spk]
        per_speaker[spk] += 1
        yield Utt(split, spk, n // cfg.utts_per_chapter + 1, n % cfg.utts_per_chapter, accent, variant,
                  rng.randint(cfg.speed_min, cfg.speed_max), rng.randint(cfg.pitch_min, cfg.pitch_max),
                  text, transcript)


def distinct_words(transcripts: Iterable[str]) -> int:
    return len({w for t in transcripts for w in t.split()})


def check_test_split(transcripts: Sequence[str], cfg: SynthConfig) -> None:
    """Refuse a test split too small for a fair WER (UserError says what to change)."""
    n, words = len(transcripts), distinct_words(transcripts)
    if n < cfg.min_test_utts or words < cfg.min_test_words:
        raise UserError(f"test split too small for a fair word error rate: {n} utterances (need >= "
                        f"{cfg.min_test_utts}) with {words} distinct words (need >= {cfg.min_test_words}); "
                        f"raise test_utts")


def _held_out_texts(cfg: SynthConfig) -> dict[str, list[tuple[str, str]]]:
    """Sentences of test and dev; test first so it never depends on dev or train settings."""
    test = list(islice(sentence_plan(cfg.seed, "test", set()), cfg.test_utts))
    dev = list(islice(sentence_plan(cfg.seed, "dev", {t for _, t in test}), cfg.dev_utts))
    return {"test": test, "dev": dev}


def corpus_text(cfg: SynthConfig, split: str = "train", n: int | None = None) -> list[str]:
    """Transcripts of a split, without synthesizing (e.g. to train an n-gram LM).

    ``test`` and ``dev`` give exactly the planned transcripts. ``train`` gives the first
    ``n`` sentences of the train stream (default: an estimate of how many fill
    ``cfg.hours``); the synthesized train set is always a prefix of this stream, and
    the stream never contains a test or dev sentence, so a larger ``n`` is extra LM
    text that is still fair to the test split.
    """
    held = _held_out_texts(cfg)
    if split in held:
        return [t for _, t in held[split]]
    if split != "train":
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if n is None:
        n = math.ceil(cfg.hours * 3600 / _mean_seconds_estimate(cfg))
    exclude = {t for texts in held.values() for _, t in texts}
    return [t for _, t in islice(sentence_plan(cfg.seed, "train", exclude), n)]


# Fitted on espeak-ng 1.51 output after trimming: seconds ~= words * 60 / wpm * 0.85 + 0.08.
_SECONDS_PER_WORD_FACTOR = 0.85
_SECONDS_OVERHEAD = 0.08


def estimate_seconds(utt: Utt) -> float:
    """Rough duration of an utterance before synthesis, to size the train batches."""
    return len(utt.transcript.split()) * 60.0 / utt.speed * _SECONDS_PER_WORD_FACTOR + _SECONDS_OVERHEAD


def _mean_seconds_estimate(cfg: SynthConfig) -> float:
    words = 9.0  # mean sentence length of the grammar, words
    return words * 60.0 / ((cfg.speed_min + cfg.speed_max) / 2) * _SECONDS_PER_WORD_FACTOR + _SECONDS_OVERHEAD


# ---------------------------------------------------------------------------
# Rendering (runs in worker processes)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to write one FLAC (small and picklable)."""

    path: str  # absolute output path
    voice: str  # ACCENT+VARIANT
    text: str
    speed: int  # words per minute
    pitch: int  # 0-99
    sample_rate: int  # Hz
    max_silence: float  # seconds
    espeak_path: str | None = None  # espeak-ng-data folder with the made-up variants; None: the system's


def trim_silence(samples: np.ndarray, rate: int, keep: float) -> np.ndarray:
    """Cut leading/trailing near-silence down to ``keep`` seconds (espeak pads ~0.3 s at the end)."""
    loud = np.flatnonzero(np.abs(samples) > 0.01 * max(float(np.abs(samples).max()), 1e-4))
    if loud.size == 0:
        return samples
    margin = int(keep * rate)
    return samples[max(0, loud[0] - margin):loud[-1] + 1 + margin]


def render(job: Job) -> float:
    """Synthesize, resample and write one FLAC unless it exists; return its duration, seconds."""
    path = Path(job.path)
    if path.exists():  # written atomically, so an existing file is complete
        info = sf.info(str(path))
        return info.frames / info.samplerate
    import torch

    if job.espeak_path:  # a made-up voice
        samples, rate = made_up_samples(job)
    else:
        samples, rate = espeak_samples(job.voice, job.text, job.speed, job.pitch)
    samples = trim_silence(samples, rate, job.max_silence)
    with torch.inference_mode():
        audio = resampler(rate, job.sample_rate)(torch.from_numpy(np.ascontiguousarray(samples))).numpy()
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), job.sample_rate, format="FLAC", subtype="PCM_16")
    atomic_write_bytes(path, buf.getvalue())
    return len(audio) / job.sample_rate


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker; `jobs` workers use `jobs` cores


class _InProcess(Executor):
    """jobs=1: render in this process (no worker start-up), torch at one thread meanwhile."""

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for args in zip(*iterables):
                yield fn(*args)
        finally:
            torch.set_num_threads(threads)


def _executor(jobs: int) -> Executor:
    if jobs <= 1:
        return _InProcess()
    # forkserver: children start from a clean server process, not a fork of a caller that
    # may already run torch threads (forking those can deadlock). The server imports torch
    # once (~2 s) and every worker forks from it, instead of each importing torch anew.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "torch", "torchaudio.functional"])
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init)


def _render_all(pool: Executor, root: Path, utts: Sequence[Utt], cfg: SynthConfig, bar,
                made_up: MadeUp | None = None) -> list[float]:
    """Render ``utts`` on ``pool`` in order; advance the tqdm ``bar`` by audio seconds."""
    jobs = [Job(str(root / u.relpath()), f"{u.accent}+{u.variant}", u.text, u.speed, u.pitch,
                cfg.sample_rate, cfg.max_silence, made_up.path if made_up and u.variant in made_up.names else None)
            for u in utts]
    durations = []
    for seconds in pool.map(render, jobs, chunksize=8):
        durations.append(seconds)
        _advance(bar, seconds)
    return durations


def _advance(bar, seconds: float) -> None:
    """Move the bar on; its total is an estimate, so grow it rather than overrun it
    (tqdm drops an overrun total to None, which the numeric bar format cannot print)."""
    if bar.total is not None and bar.n + seconds > bar.total:
        bar.total = math.ceil(bar.n + seconds)
    bar.update(seconds)


# ---------------------------------------------------------------------------
# Markers, transcripts, speakers
# ---------------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e}); delete it to start over") from None


def _check_markers(root: Path, cfg: SynthConfig) -> dict | None:
    """The stored summary if the corpus is complete for ``cfg``; UserError if it is for another."""
    wanted = cfg.identity()
    for name, what in ((COMPLETE_MARKER, "a complete"), (STARTED_MARKER, "an unfinished")):
        marker = _read_json(root / name)
        if marker is None:
            continue
        if marker.get("config") != wanted:
            diff = sorted(k for k in wanted if marker.get("config", {}).get(k) != wanted[k])
            raise UserError(f"{root.parent} holds {what} synthetic corpus made with another config "
                            f"(differs in: {', '.join(diff) or 'format'}); choose another --out or delete it")
        if name == COMPLETE_MARKER:
            return {**marker["summary"], "cached": True}
    return None


def _write_transcripts(root: Path, utts: Iterable[Utt]) -> None:
    """One ``SPK-CH.trans.txt`` per chapter; rewritten only when its content changes."""
    chapters: dict[Path, list[Utt]] = defaultdict(list)
    for u in utts:
        chapters[root / u.relpath().parent].append(u)
    for folder, members in chapters.items():
        members.sort(key=lambda u: u.index)
        text = "".join(f"{u.utt_id} {u.transcript}\n" for u in members)
        path = folder / f"{members[0].speaker}-{members[0].chapter}.trans.txt"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)


def _remove_strays(root: Path, utts: Iterable[Utt]) -> int:
    """Delete audio/transcripts in our subset folders that the plan does not contain.

    Same-config runs never leave such files (every batch is deterministic), but a
    tree touched by hand would otherwise give audio without a transcript line, which
    the LibriSpeech reader reports. Returns how many files went.
    """
    keep = {root / u.relpath() for u in utts}
    keep |= {p.parent / f"{p.parent.parent.name}-{p.parent.name}.trans.txt" for p in keep}
    removed = 0
    for subset in SUBSET.values():
        for path in [*(root / subset).glob("*/*/*.flac"), *(root / subset).glob("*/*/*.trans.txt")]:
            if path not in keep:
                path.unlink()
                removed += 1
    return removed


def _write_speakers(root: Path, utts: Iterable[Utt]) -> None:
    rows = sorted({(u.speaker, u.accent, u.variant, u.split) for u in utts})
    lines = ["speaker\taccent\tvariant\tsplit\n"] + [f"{s}\t{a}\t{v}\t{SUBSET[sp]}\n" for s, a, v, sp in rows]
    atomic_write_text(root / SPEAKERS_FILE, "".join(lines))


def _summary(root: Path, utts: dict[str, list[Utt]], durations: dict[str, list[float]],
             voices: Voices, wall: float) -> dict:
    audio = sum(sum(d) for d in durations.values())
    return {
        "root": str(root),
        "subsets": {split: SUBSET[split] for split in SPLITS},
        "hours": {s: round(sum(durations[s]) / 3600, 4) for s in SPLITS},
        "utterances": {s: len(utts[s]) for s in SPLITS},
        "distinct_words": {s: distinct_words(u.transcript for u in utts[s]) for s in SPLITS},
        "voices": {s: len({u.speaker for u in utts[s]}) for s in SPLITS},
        "variants": {s: len({u.variant for u in utts[s]}) for s in SPLITS},
        "accents": {s: len({u.accent for u in utts[s]}) for s in SPLITS},
        "espeak_version": voices.version,
        "wall_seconds": round(wall, 1),
        "audio_per_wall_second": round(audio / max(wall, 1e-9), 1),
    }


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


def plan_held_out(cfg: SynthConfig, voices: Voices, groups: dict[str, tuple[str, ...]]) -> dict[str, list[Utt]]:
    """Planned test and dev utterances (same sentences as ``corpus_text`` gives)."""
    exclude: set[str] = set()
    plans = {}
    for split, n in (("test", cfg.test_utts), ("dev", cfg.dev_utts)):
        plans[split] = list(islice(plan_split(split, cfg, voices, groups[split], exclude), n))
        exclude |= {u.transcript for u in plans[split]}
    return plans


def _synth_train(pool: Executor, root: Path, cfg: SynthConfig, plan: Iterator[Utt], bar, made_up: MadeUp
                 ) -> tuple[list[Utt], list[float]]:
    """Render train utterances from ``plan`` until their audio reaches ``cfg.hours``.

    Batches are sized from a duration estimate, calibrated on what came back, so the
    result overshoots the target by little; batch sizes depend only on durations,
    which are deterministic, so the set of utterances is too.
    """
    target = cfg.hours * 3600
    utts: list[Utt] = []
    durations: list[float] = []
    calib = 1.0  # real seconds per estimated second, learned from each batch
    aim = 0.97  # the first batch aims a little short of the target; top-ups aim at the rest
    while sum(durations) < target:
        need = (target - sum(durations)) * aim
        batch: list[Utt] = []
        estimated = 0.0
        while not batch or estimated * calib < need:
            batch.append(next(plan))
            estimated += estimate_seconds(batch[-1])
        got = _render_all(pool, root, batch, cfg, bar, made_up)
        calib, aim = sum(got) / estimated, 1.0
        utts += batch
        durations += got
    return utts, durations


@dataclass(frozen=True)
class MadeUp:
    """The made-up training variants (``SynthConfig.made_up_voices``) and the espeak-ng-data folder that has them."""

    names: tuple[str, ...]  # variant file names
    path: str  # espeak-ng-data folder: the system's, plus these variants ("" without any)


def _made_up_voices(root: Path, cfg: SynthConfig, voices: Voices, parents: Sequence[str]) -> MadeUp:
    """``cfg.made_up_voices`` variants bred from ``parents`` (none, and no data folder, for 0)."""
    if not cfg.made_up_voices:
        return MadeUp((), "")
    from asr.corpus import voicegen

    names, data = voicegen.make_voices(root / MADE_UP_DIR, Path(voices.data_dir), parents, cfg.made_up_voices,
                                       cfg.seed)
    return MadeUp(names, str(data))


def made_up_samples(job: Job) -> tuple[np.ndarray, int]:
    """Samples of a made-up voice's job, from the program: some settings make espeak-ng crash on some sentences
    (a segmentation fault, which in this process would end the corpus), and a crash is then the program's alone.
    Such an utterance is spoken by its accent's own voice instead (as deterministic as the rest)."""
    try:
        return read_wav(espeak_wav(job.voice, job.text, job.speed, job.pitch, job.espeak_path))
    except UserError as e:
        accent = job.voice.split("+", 1)[0]
        print(f"warning: {e}; {Path(job.path).name} is spoken by {accent} instead", file=sys.stderr)
        return espeak_samples(accent, job.text, job.speed, job.pitch)


MADE_UP_DIR = ".made-up-voices"  # below OUT/LibriSpeech: the private espeak-ng-data with the made-up variants
_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]"


def synth_corpus(out_dir: Path, cfg: SynthConfig, progress: bool = True) -> dict:
    """Synthesize the corpus into ``out_dir/LibriSpeech``; return a summary dict.

    Re-running with the same config returns the stored summary at once (with
    ``cached: True``); an interrupted run resumes, keeping the files already written;
    another config over an existing corpus raises UserError.
    """
    cfg.validate()
    root = Path(out_dir) / "LibriSpeech"
    cached = _check_markers(root, cfg)
    if cached is not None:
        return cached
    check_test_split(corpus_text(cfg, "test"), cfg)  # before any work: a bad config fails fast
    espeak_binary()
    start = time.monotonic()
    voices = discover_voices()
    groups = split_variants(voices.variants, cfg)
    plans = plan_held_out(cfg, voices, groups)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / STARTED_MARKER, json.dumps({"config": cfg.identity()}, indent=1) + "\n")

    from tqdm import tqdm

    durations: dict[str, list[float]] = {}
    exclude = {u.transcript for split in ("test", "dev") for u in plans[split]}
    total = cfg.hours * 3600 + sum(estimate_seconds(u) for p in plans.values() for u in p)
    with _executor(cfg.jobs) as pool, tqdm(total=round(total), desc="synth", disable=not progress,
                                           bar_format=_BAR_FORMAT) as bar:
        for split in ("test", "dev"):
            durations[split] = _render_all(pool, root, plans[split], cfg, bar)
        made_up = _made_up_voices(root, cfg, voices, groups["train"])
        train_voices = dataclasses.replace(voices, variants=voices.variants + made_up.names)  # numbered after them
        train_plan = plan_split("train", cfg, train_voices, groups["train"] + made_up.names, exclude)
        plans["train"], durations["train"] = _synth_train(pool, root, cfg, train_plan, bar, made_up)
        bar.total = bar.n  # the total was an estimate; end at 100%

    all_utts = [u for split in SPLITS for u in plans[split]]
    _remove_strays(root, all_utts)
    _write_transcripts(root, all_utts)
    _write_speakers(root, all_utts)
    summary = _summary(root, plans, durations, voices, time.monotonic() - start)
    marker = {"config": cfg.identity(), "summary": summary,
              "voices": {"accents": list(voices.accents), "variants": {s: list(groups[s]) for s in SPLITS},
                         "made_up": list(made_up.names)}}
    atomic_write_text(root / COMPLETE_MARKER, json.dumps(marker, indent=1) + "\n")
    (root / STARTED_MARKER).unlink(missing_ok=True)
    if progress:
        _report(summary)
    return {**summary, "cached": False}


def _report(summary: dict) -> None:
    hours = sum(summary["hours"].values())
    print(f"synthesized {hours:.2f} h of audio in {summary['wall_seconds']:.0f} s "
          f"({summary['audio_per_wall_second']:.0f}x real time) into {summary['root']}", file=sys.stderr)
    for split in SPLITS:
        print(f"  {SUBSET[split]}: {summary['utterances'][split]} utterances, {summary['hours'][split]:.3f} h, "
              f"{summary['distinct_words'][split]} distinct words, {summary['voices'][split]} voices "
              f"({summary['variants'][split]} variants x {summary['accents'][split]} accents)", file=sys.stderr)
