"""Connected digit strings from the Free Spoken Digit Dataset, in the LibriSpeech layout.

FSDD (https://github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) holds isolated
digits, ``{digit}_{speaker}_{n}.wav`` at 8 kHz. ``synth_digits`` joins 2-7 recordings of ONE
speaker with short gaps of low noise into utterances such as ``THREE SEVEN ZERO``, at 16 kHz,
written as ``OUT/LibriSpeech/digits-{train,dev,test}/SPK/CH/SPK-CH-UTT.flac`` with
``SPK-CH.trans.txt``, so ``asr prepare librispeech`` reads it.

Splits (no recording is ever in two splits):

- test: every recording of ``test_speaker``, who is in no other split;
- dev: by default the recordings numbered below ``dev_holdout`` (FSDD's own test indices 0-4)
  of the training speakers; with ``dev_speaker`` set, every recording of that speaker instead,
  who is then also left out of training. Holding out recordings rather than a second speaker
  keeps four training speakers instead of three: with so few speakers, each one matters more
  for reaching an unseen voice than a dev set that also measures an unseen voice does for
  keep-best. The test speaker is the unseen-voice measurement.
- train: the other recordings of the other speakers, with speed perturbation (0.9/1.0/1.1,
  Kaldi style: pitch and tempo together), a random equalizer, gain and noise, to widen the few
  voices and microphones there are; for ``flite_share`` of the strings, digits spoken by flite's
  four voices (made from recordings of real people), each as ``flite_personas`` speakers of their
  own pitch and tempo (needs flite; ``flite_voices=()`` turns this off); and, for ``tts_share`` of
  the rest, digits spoken by ``tts_voices`` espeak-ng voices (needs espeak-ng; ``tts_voices=0``
  turns this off). By default 30 % flite, 35 % espeak-ng, 35 % FSDD. Four real voices generalize
  poorly to a fifth: recipes/digits/README.md has the numbers.

Each split also gets ``SOURCES.jsonl``: for every utterance, the recordings it was made from.

``download_fsdd`` fetches the dataset from its GitHub release archive with the checksum-verified,
resumable download of ``asr.corpus.download``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from asr.audio import to_mono_resampled
from asr.corpus.download import COMPLETE_MARKER, Checksum, extract_atomically, fetch
from asr.corpus.synth import espeak_samples
from asr.errors import UserError
from asr.io import atomic_write_text

WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
SPLITS = ("digits-train", "digits-dev", "digits-test")
EQ_HZ = (0.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 8000.0)  # random-equalizer control points, Hz
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")

# FSDD v1.0.9 (5 speakers, 2,500 recordings): URL, size and SHA-256 as pinned by TensorFlow
# Datasets (tensorflow_datasets/audio/spoken_digit/checksums.tsv).
FSDD_VERSION = "1.0.9"
FSDD_URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v{FSDD_VERSION}.tar.gz"
FSDD_SHA256 = "8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0"  # 11,975,353 bytes


@dataclass(frozen=True)
class DigitsConfig:
    seed: int = 0  # seeds the digit strings, the recordings chosen, gaps, gains and noise
    test_speaker: str = "george"  # FSDD speaker held out for digits-test (in no other split)
    dev_speaker: str = ""  # FSDD speaker held out for digits-dev ("" : dev_holdout recordings of train speakers)
    dev_holdout: int = 5  # recordings numbered below this go to dev, not train (when dev_speaker is "")
    train_utterances: int = 3000  # digit strings in digits-train
    dev_utterances: int = 200  # digit strings in digits-dev
    test_utterances: int = 300  # digit strings in digits-test
    min_digits: int = 2  # digits per string, inclusive
    max_digits: int = 7  # digits per string, inclusive
    min_gap_ms: float = 50.0  # pause between digits, milliseconds
    max_gap_ms: float = 300.0  # pause between digits, milliseconds
    edge_ms: float = 150.0  # longest pause before the first and after the last digit, milliseconds
    noise_dbfs: tuple[float, float] = (-70.0, -50.0)  # background noise level range, dB re full scale
    train_speeds: tuple[float, ...] = (0.9, 1.0, 1.1)  # speed perturbation factors (train only)
    train_gain_db: float = 6.0  # random gain within +-this (train only), dB
    train_eq_db: float = 10.0  # random equalizer: gain within +-this at each EQ_HZ frequency (train only), dB
    train_snr_db: tuple[float, float] = (15.0, 50.0)  # extra noise, speech-to-noise ratio range (train only), dB
    tts_voices: int = 40  # espeak-ng voices added to training as extra speakers (0: none)
    tts_takes: int = 2  # renderings of each digit per espeak-ng voice, each at its own speed and pitch
    tts_share: float = 0.5  # fraction of the training strings spoken by an espeak-ng voice
    # Flite voices (Debian: apt-get install flite) added to training as extra speakers: diphone and
    # clustergen voices built from recordings of real people (kal16, awb, rms, slt), closer to speech
    # than espeak-ng's formant synthesis. Each voice speaks as ``flite_personas`` speakers, each with
    # its own pitch and tempo. () : none.
    flite_voices: tuple[str, ...] = ("kal16", "awb", "rms", "slt")
    flite_personas: int = 4  # speakers made from each flite voice
    flite_takes: int = 2  # renderings of each digit per persona, each with a small pitch and tempo jitter
    flite_share: float = 0.3  # fraction of the training strings spoken by a flite persona (when flite_voices)
    sample_rate: int = 16000  # output rate, Hz


@dataclass
class Recording:
    digit: int  # 0-9
    speaker: str  # e.g. jackson
    index: int  # n in {digit}_{speaker}_{n}.wav
    path: Path = field(compare=False)  # the file; for a synthetic clip a made-up FSDD-style name
    # An in-memory clip instead of the file: (samples, channels) array and its rate in Hz.
    audio: tuple[np.ndarray, int] | None = field(default=None, compare=False, repr=False)


def scan_fsdd(recordings: str | Path) -> list[Recording]:
    """Every ``{digit}_{speaker}_{n}.wav`` in the folder, sorted; UserError when there are none."""
    recordings = Path(recordings)
    if not recordings.is_dir():
        raise UserError(f"{recordings}: no such folder; pass FSDD's recordings/ folder "
                        f"(or get it with 'asr download fsdd --out DIR')")
    recs = []
    for p in sorted(recordings.glob("*.wav")):
        m = _NAME.match(p.name)
        if m:
            recs.append(Recording(int(m[1]), m[2], int(m[3]), p))
    if not recs:
        raise UserError(f"{recordings}: no FSDD recordings ({{digit}}_{{speaker}}_{{n}}.wav) found")
    return sorted(recs, key=lambda r: (r.speaker, r.digit, r.index))


def split_recordings(recs: list[Recording], cfg: DigitsConfig) -> dict[str, list[Recording]]:
    """split name -> its recordings; speakers of test (and dev_speaker) appear in no other split."""
    speakers = sorted({r.speaker for r in recs})
    for role, name in (("test_speaker", cfg.test_speaker), ("dev_speaker", cfg.dev_speaker)):
        if name and name not in speakers:
            raise UserError(f"{role}={name!r} is not in the recordings (found: {', '.join(speakers)})")
    if cfg.dev_speaker == cfg.test_speaker:
        raise UserError(f"dev_speaker and test_speaker are both {cfg.test_speaker!r}; pick two speakers")
    held_out = {cfg.test_speaker, cfg.dev_speaker} - {""}
    train_spk = [s for s in speakers if s not in held_out]
    if not train_spk:
        raise UserError(f"no training speakers left (found: {', '.join(speakers)}; held out: {', '.join(held_out)})")
    out: dict[str, list[Recording]] = {s: [] for s in SPLITS}
    for r in recs:
        if r.speaker == cfg.test_speaker:
            out["digits-test"].append(r)
        elif r.speaker == cfg.dev_speaker or (not cfg.dev_speaker and r.index < cfg.dev_holdout):
            out["digits-dev"].append(r)
        else:
            out["digits-train"].append(r)
    for split, rs in out.items():
        missing = {(s, d) for s in {r.speaker for r in rs} for d in range(10)} - {(r.speaker, r.digit) for r in rs}
        if missing:
            s, d = sorted(missing)[0]
            raise UserError(f"{split}: speaker {s} has no recording of digit {d}; check the FSDD folder")
    return out


def synth_digits(recordings: str | Path, out_dir: str | Path, cfg: DigitsConfig = DigitsConfig(),
                 progress: bool = True) -> dict:
    """Write the three splits under ``OUT/LibriSpeech``; returns a summary (utterances and hours per split).

    Re-run safe: each split is built in a temporary folder and renamed into place with a marker
    holding the config; a split whose marker matches is skipped, one made with another config is
    an error (delete it or choose another --out).
    """
    if not 1 <= cfg.min_digits <= cfg.max_digits:
        raise UserError(f"need 1 <= min_digits <= max_digits, got {cfg.min_digits} and {cfg.max_digits}")
    for name in ("tts_share", "flite_share"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise UserError(f"{name} is a fraction of the training strings: give a value from 0 to 1, "
                            f"not {getattr(cfg, name)}")
    recs = scan_fsdd(recordings)
    splits = split_recordings(recs, cfg)
    root = Path(out_dir) / "LibriSpeech"
    config = asdict(cfg)
    if not cfg.flite_voices:  # corpora made before flite voices existed keep their marker
        config = {k: v for k, v in config.items() if not k.startswith("flite_")}
    stamp = json.dumps({"config": config, "recordings": len(recs)}, sort_keys=True)
    if all((root / s / COMPLETE_MARKER).is_file() and (root / s / COMPLETE_MARKER).read_text() == stamp
           for s in SPLITS):
        print(f"{root}: digit strings already made, skipping", file=sys.stderr)
        return {split: _summarize(root / split) for split in SPLITS}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # resampling half-second clips: one thread is ~50x faster than two fighting
    try:
        if cfg.tts_voices:
            splits["digits-train"] += tts_recordings(cfg, random.Random(f"{cfg.seed}:tts"))
        if cfg.flite_voices:
            splits["digits-train"] += flite_recordings(cfg, random.Random(f"{cfg.seed}:flite"))
        speakers = sorted({r.speaker for rs in splits.values() for r in rs})
        return _synth(splits, speakers, root, cfg, progress, stamp)
    finally:
        torch.set_num_threads(threads)


def _synth(splits: dict[str, list[Recording]], speakers: list[str], root: Path, cfg: DigitsConfig, progress: bool,
           stamp: str) -> dict:
    spk_id = {s: 100 * (i + 1) for i, s in enumerate(speakers)}  # LibriSpeech ids are numbers: george -> 100
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "DIGITS-SPEAKERS.TXT", "".join(f"{spk_id[s]} {s}\n" for s in speakers))
    summary = {}
    for n, split in enumerate(SPLITS):
        target = root / split
        marker = target / COMPLETE_MARKER
        if marker.is_file():
            if marker.read_text() != stamp:
                raise UserError(f"{target} was made with another configuration (see {marker}); "
                                f"delete it or choose another --out")
            print(f"{target}: already made, skipping", file=sys.stderr)
        else:
            count = {"digits-train": cfg.train_utterances, "digits-dev": cfg.dev_utterances,
                     "digits-test": cfg.test_utterances}[split]
            # One RNG per split, seeded from (seed, split): changing one split's size leaves the others alone.
            rng = random.Random(f"{cfg.seed}:{split}")
            _write_split(splits[split], target, count, cfg, rng, spk_id, chapter=n + 1, stamp=stamp,
                         augment=split == "digits-train", progress=progress)
        summary[split] = _summarize(target)
    return summary


def _write_split(recs: list[Recording], target: Path, count: int, cfg: DigitsConfig, rng: random.Random,
                 spk_id: dict[str, int], chapter: int, stamp: str, augment: bool, progress: bool) -> None:
    by_speaker: dict[str, list[list[Recording]]] = defaultdict(lambda: [[] for _ in range(10)])
    for r in recs:
        by_speaker[r.speaker][r.digit].append(r)
    speakers = sorted(s for s in by_speaker if not s.startswith(("tts-", "flite-")))
    tts_speakers = sorted(s for s in by_speaker if s.startswith("tts-"))
    flite_speakers = sorted(s for s in by_speaker if s.startswith("flite-"))
    speeds = cfg.train_speeds if augment else (1.0,)
    cache: dict[tuple[Path, float], np.ndarray] = {}

    def audio(r: Recording, speed: float) -> np.ndarray:
        if (r.path, speed) not in cache:
            data, rate = r.audio or sf.read(str(r.path), dtype="float32", always_2d=True)  # (samples, channels)
            # Reading an 8 kHz file as if it were 8 kHz * speed and resampling to 16 kHz plays it
            # `speed` times faster (pitch and tempo together).
            cache[(r.path, speed)] = to_mono_resampled(data, round(rate * speed), cfg.sample_rate,
                                                       name=str(r.path)).numpy()
        return cache[(r.path, speed)]

    if target.exists():
        raise UserError(f"{target} exists but has no {COMPLETE_MARKER} marker (not made by synth-digits?); "
                        f"move or delete it and re-run")
    for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        lines: dict[Path, list[str]] = defaultdict(list)
        np_rng = np.random.default_rng(rng.getrandbits(63))
        per_spk = defaultdict(int)
        sources: list[str] = []
        for _ in tqdm(range(count), desc=target.name, unit="utt", disable=not progress, file=sys.stderr,
                      mininterval=1):
            if flite_speakers and rng.random() < cfg.flite_share:
                spk = flite_speakers[rng.randrange(len(flite_speakers))]
            elif tts_speakers and rng.random() < cfg.tts_share:
                spk = tts_speakers[rng.randrange(len(tts_speakers))]
            else:
                spk = speakers[rng.randrange(len(speakers))]
            digits = [rng.randrange(10) for _ in range(rng.randint(cfg.min_digits, cfg.max_digits))]
            speed = rng.choice(speeds)
            chosen = [rng.choice(by_speaker[spk][d]) for d in digits]
            pieces = [_silence(rng.uniform(0, cfg.edge_ms), cfg.sample_rate)]
            for i, r in enumerate(chosen):
                if i:
                    pieces.append(_silence(rng.uniform(cfg.min_gap_ms, cfg.max_gap_ms), cfg.sample_rate))
                pieces.append(audio(r, speed))
            pieces.append(_silence(rng.uniform(0, cfg.edge_ms), cfg.sample_rate))
            wav = np.concatenate(pieces)
            if augment:
                wav = _augment(wav, cfg, rng, np_rng)
            noise_db = rng.uniform(*cfg.noise_dbfs)
            wav = wav + np_rng.standard_normal(len(wav)).astype(np.float32) * 10 ** (noise_db / 20)
            wav = np.clip(wav, -1.0, 1.0)
            sid = spk_id[spk]
            utt = f"{sid}-{chapter}-{per_spk[sid]:04d}"
            per_spk[sid] += 1
            folder = tmp / str(sid) / str(chapter)
            folder.mkdir(parents=True, exist_ok=True)
            # A plain write: the whole split becomes visible at once by the rename below, and an
            # fsync per file would cost more than making the file.
            sf.write(folder / f"{utt}.flac", wav, cfg.sample_rate, format="FLAC", subtype="PCM_16")
            lines[folder / f"{sid}-{chapter}.trans.txt"].append(f"{utt} {' '.join(WORDS[d] for d in digits)}")
            sources.append(json.dumps({"id": utt, "speaker": spk, "speed": speed,
                                       "recordings": [r.path.name for r in chosen]}))
        for trans, ls in lines.items():
            atomic_write_text(trans, "\n".join(ls) + "\n")
        atomic_write_text(tmp / "SOURCES.jsonl", "\n".join(sources) + "\n")  # which recordings made each utterance
        atomic_write_text(tmp / COMPLETE_MARKER, stamp)
        tmp.rename(target)  # the split appears whole, marker included, or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _augment(wav: np.ndarray, cfg: DigitsConfig, rng: random.Random, np_rng: np.random.Generator) -> np.ndarray:
    """Training-only variety the four voices lack: microphone colour, level and noise.

    FSDD's speakers were recorded on different microphones: one has 10 dB less energy below
    500 Hz than the others. A random smooth equalizer (gains at EQ_HZ, interpolated) makes the
    model ignore such colouring, which a CTC model without per-utterance normalization cannot
    otherwise learn from four speakers.
    """
    gains_db = [rng.uniform(-cfg.train_eq_db, cfg.train_eq_db) for _ in EQ_HZ]
    spectrum = np.fft.rfft(wav)
    freqs = np.fft.rfftfreq(len(wav), 1 / cfg.sample_rate)
    spectrum *= 10 ** (np.interp(freqs, EQ_HZ, gains_db) / 20)
    wav = np.fft.irfft(spectrum, n=len(wav)).astype(np.float32)
    wav *= 10 ** (rng.uniform(-cfg.train_gain_db, cfg.train_gain_db) / 20)
    speech_rms = float(np.sqrt(np.mean(wav**2))) + 1e-9
    noise_rms = speech_rms * 10 ** (-rng.uniform(*cfg.train_snr_db) / 20)
    return wav + np_rng.standard_normal(len(wav)).astype(np.float32) * noise_rms


# espeak-ng English voices and voice variants (espeak-ng-data/voices/!v) that sound like people,
# not robots, whispers or effects.
TTS_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
TTS_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "Alex", "Andy", "Annie",
                "adam", "anika", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed",
                "edward", "iven", "john", "linda", "max", "michel", "miguel", "norbert", "paul", "pedro", "quincy",
                "rob", "robert", "steph", "travis", "victor", "zac")


def tts_recordings(cfg: DigitsConfig, rng: random.Random) -> list[Recording]:
    """Isolated digits from ``cfg.tts_voices`` espeak-ng voices (accent + variant), trimmed like FSDD's.

    More voices for a training set of four people: formant synthesis is no substitute for
    speech, but its many vocal-tract settings widen what the model has heard.
    """
    if shutil.which("espeak-ng") is None:
        raise UserError("tts_voices > 0 needs espeak-ng (Debian: apt-get install espeak-ng); or turn the espeak-ng "
                        "voices off (asr synth-digits --tts-voices 0)")
    if cfg.tts_voices > len(TTS_VARIANTS):
        raise UserError(f"tts_voices={cfg.tts_voices}: at most {len(TTS_VARIANTS)}")
    jobs = []
    for i, variant in enumerate(rng.sample(TTS_VARIANTS, cfg.tts_voices)):
        accent = TTS_ACCENTS[i % len(TTS_ACCENTS)]
        for d in range(10):
            for k in range(cfg.tts_takes):
                jobs.append((f"{accent}+{variant}", f"tts-{accent}-{variant}", d, k,
                             rng.randint(120, 200), rng.randint(20, 80)))  # words per minute, pitch 0-99

    def render(job) -> Recording:
        voice, speaker, d, k, wpm, pitch = job
        samples, rate = espeak_samples(voice, WORDS[d].lower(), wpm, pitch)
        # (samples,) -> (samples, 1 channel)
        return _synthetic_recording(samples[:, None], rate, d, speaker, k, cfg.sample_rate, name=voice)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(render, jobs))


def _synthetic_recording(data: np.ndarray, rate: int, digit: int, speaker: str, take: int, sample_rate: int,
                         name: str) -> Recording:
    """A synthesized digit, (samples, channels) at ``rate``, trimmed like FSDD's and resampled to the output rate.

    To the output rate now: speed perturbation then resamples 16 kHz * speed -> 16 kHz, cheap ratios
    (9:10, 11:10), where 22.05 kHz * speed -> 16 kHz would need kernels of thousands of phases.
    """
    data = to_mono_resampled(_trim(data, rate), rate, sample_rate, name=name).numpy()[:, None]
    return Recording(digit, speaker, take, Path(f"{digit}_{speaker}_{take}.wav"), audio=(data, sample_rate))


# Flite's English voices (`flite -lv`) and the median pitch each speaks at by default, Hz (measured
# with librosa.pyin). kal16 is kal at 16 kHz; awb_time is a talking clock (times of day only). rms
# ignores int_f0_target_mean: its personas differ in tempo only.
FLITE_VOICES = {"kal16": 95.0, "awb": 104.0, "rms": 81.0, "slt": 205.0}


def flite_recordings(cfg: DigitsConfig, rng: random.Random) -> list[Recording]:
    """Isolated digits from flite voices, ``cfg.flite_personas`` speakers per voice, trimmed like FSDD's."""
    flite = shutil.which("flite")
    if flite is None:
        raise UserError("flite_voices needs flite (Debian: apt-get install flite); or turn the flite voices off "
                        "(asr synth-digits --flite-voices '')")
    unknown = sorted(set(cfg.flite_voices) - set(FLITE_VOICES))
    if unknown:
        raise UserError(f"flite_voices: unknown voice(s) {', '.join(unknown)}; choose from {', '.join(FLITE_VOICES)}")
    jobs = []
    for voice in cfg.flite_voices:
        for p in range(cfg.flite_personas):
            f0 = FLITE_VOICES[voice] * rng.uniform(0.75, 1.35)  # the persona's pitch
            stretch = rng.uniform(0.85, 1.2)  # and tempo (duration multiplier)
            for d in range(10):
                for k in range(cfg.flite_takes):
                    jobs.append((voice, f"flite-{voice}-{p}", d, k, f0 * rng.uniform(0.95, 1.05),
                                 stretch * rng.uniform(0.95, 1.05)))

    def render(job) -> Recording:
        voice, speaker, d, k, f0, stretch = job
        with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
            out = Path(tmp) / "digit.wav"
            cmd = [flite, "-voice", voice, "-t", WORDS[d].lower(), "--setf", f"int_f0_target_mean={f0:.1f}",
                   "--setf", f"duration_stretch={stretch:.3f}", "-o", str(out)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0 or not out.is_file():
                raise UserError(f"flite failed for voice {voice}: {done.stderr.strip()[:200]}")
            data, rate = sf.read(str(out), dtype="float32", always_2d=True)
        return _synthetic_recording(data, rate, d, speaker, k, cfg.sample_rate, name=voice)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(render, jobs))


def _trim(data: np.ndarray, rate: int, floor_db: float = -40.0) -> np.ndarray:
    """Cut leading and trailing 10 ms frames quieter than ``floor_db`` below the loudest one."""
    hop = rate // 100  # 10 ms
    frames = data[: len(data) // hop * hop, 0].reshape(-1, hop)  # (samples, 1) -> (frames, hop)
    energy = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() + floor_db)
    return data[loud[0] * hop: (loud[-1] + 1) * hop] if len(loud) else data


def _silence(ms: float, sample_rate: int) -> np.ndarray:
    return np.zeros(round(sample_rate * ms / 1000), dtype=np.float32)


def _summarize(target: Path) -> dict:
    files = list(target.glob("*/*/*.flac"))
    seconds = sum(sf.info(str(f)).duration for f in files)
    return {"folder": str(target), "utterances": len(files), "hours": round(seconds / 3600, 3)}


def download_fsdd(out_dir: str | Path, progress: bool = True) -> Path:
    """Fetch FSDD v1.0.9 from GitHub (resumable, SHA-256 verified) into ``OUT/free-spoken-digit-dataset-1.0.9``;
    returns its ``recordings`` folder. Safe to re-run."""
    out_dir = Path(out_dir)
    target = out_dir / f"free-spoken-digit-dataset-{FSDD_VERSION}"
    if not (target / COMPLETE_MARKER).is_file():
        archive = fetch(FSDD_URL, out_dir / f"fsdd-{FSDD_VERSION}.tar.gz", Checksum("sha256", FSDD_SHA256),
                        progress=progress)
        extract_atomically(archive, target.name, target, progress=progress)
        archive.unlink()
    return target / "recordings"
