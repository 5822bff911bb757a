"""A folder of noise recordings made here, for ``data.noise`` and ``asr eval --noise`` when MUSAN is out of reach.

``synth_noise(out, ...)`` writes 16 kHz mono FLAC files, ``KIND-NNN.flac``, of these kinds:

- ``white``, ``pink``, ``brown``: Gaussian noise whose power falls as 1/f^0, 1/f^1, 1/f^2 (0, -3, -6 dB per
  octave), with a slow random swell (0.1-1 Hz, up to 6 dB) so that no file is stationary;
- ``hum``: mains hum, 50 or 60 Hz with decaying harmonics over a faint hiss;
- ``babble``: 4-8 talkers at once, cut at random from the speech recordings under ``babble_from`` (any
  folder of audio: a training corpus for training noise, other speakers for a test), each at its own level;
- ``rir``: not noise but room impulse responses, for ``data.rir`` and ``asr eval --rir`` (keep them in a
  folder of their own): the direct sound, then an exponentially decaying Gaussian tail (the statistical
  model of late reverberation) with a reverberation time RT60 of 0.2-1.0 s and a direct-to-reverberant
  ratio of -3 to 10 dB; 1.5 x RT60 long, 24-bit.

Deterministic from ``seed``; each file is written atomically, so a re-run after a kill writes only what is
missing. The files are noise for mixing at a chosen signal-to-noise ratio: their level does not matter.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.audio import AUDIO_EXTENSIONS, audio_files, to_mono_resampled
from asr.errors import UserError
from asr.io import atomic_open

SAMPLE_RATE = 16000  # Hz
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # kind -> exponent of the 1/f power spectrum
KINDS = (*COLOURS, "hum", "babble", "rir")
RT60_S = (0.2, 1.0)  # reverberation times of the rooms, seconds
DRR_DB = (-3.0, 10.0)  # direct-to-reverberant energy ratios of the rooms, dB
LOWEST_HZ = 20.0  # the 1/f shaping is flat below this frequency, Hz
PEAK = 0.5  # each file is scaled to this peak (full scale 1)


def coloured_noise(samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (flat below LOWEST_HZ), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples, 1 / SAMPLE_RATE)
    spec *= np.maximum(freqs, LOWEST_HZ) ** (-exponent / 2)  # amplitude ~ f^(-e/2): power ~ f^-e
    x = np.fft.irfft(spec, n=samples)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _swell(samples: int, rng: np.random.Generator) -> np.ndarray:
    """A slow random gain, 0.1-1 Hz, between -6 and 0 dB."""
    t = np.arange(samples) / SAMPLE_RATE
    rate, phase = rng.uniform(0.1, 1.0), rng.uniform(0, 2 * math.pi)
    return 10 ** (-6 * (0.5 + 0.5 * np.sin(2 * math.pi * rate * t + phase)) / 20)


def _hum(samples: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.choice([50.0, 60.0]) * rng.uniform(0.995, 1.005)  # mains frequency, Hz, with some drift
    t = np.arange(samples) / SAMPLE_RATE
    decay = rng.uniform(0.4, 0.8)  # amplitude ratio of successive harmonics
    x = sum(decay ** k * np.sin(2 * math.pi * base * (k + 1) * t + rng.uniform(0, 2 * math.pi)) for k in range(8))
    return x + 0.05 * rng.standard_normal(samples)


def room_impulse_response(rng: np.random.Generator, rt60: float | None = None, drr_db: float | None = None
                          ) -> np.ndarray:
    """An impulse response: 1 at sample 0 (the direct sound), then Gaussian noise decaying by 60 dB per ``rt60``
    seconds from 2-10 ms on, with ``drr_db`` more energy in the direct sound than in the tail; drawn when None."""
    rt60 = rng.uniform(*RT60_S) if rt60 is None else rt60
    drr_db = rng.uniform(*DRR_DB) if drr_db is None else drr_db
    t = np.arange(int(1.5 * rt60 * SAMPLE_RATE)) / SAMPLE_RATE  # to -90 dB
    tail = rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60)  # amplitude: -60 dB at t = rt60
    tail[: int(rng.uniform(0.002, 0.010) * SAMPLE_RATE)] = 0  # the first reflection comes after the direct sound
    tail *= math.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def _speech_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"--babble-from {folder}: no such directory; give a folder of speech recordings")
    files = audio_files(folder)
    if len(files) < 4:
        raise UserError(f"--babble-from {folder}: {len(files)} audio files ({', '.join(AUDIO_EXTENSIONS)}); "
                        f"babble needs at least 4 recordings to overlap")
    return files


def _read(path: Path) -> np.ndarray:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise UserError(f"--babble-from: {path}: cannot read audio ({e})") from None
    return to_mono_resampled(data, rate, SAMPLE_RATE, name=str(path)).numpy().astype(np.float64)


def _talker(samples: int, files: list[Path], rng: random.Random) -> np.ndarray:
    """One talker: random recordings one after another, unit RMS over its speech, ``samples`` long."""
    out, n = np.zeros(samples), rng.randrange(samples // 4)  # talkers start at different times
    while n < samples:
        x = _read(files[rng.randrange(len(files))])
        x = x / (np.sqrt(np.mean(x ** 2)) + 1e-9)
        take = min(len(x), samples - n)
        out[n:n + take] = x[:take]
        n += take + rng.randrange(SAMPLE_RATE // 10)  # up to 0.1 s between recordings
    return out


def _babble(samples: int, files: list[Path], rng: random.Random) -> np.ndarray:
    talkers = rng.randint(4, 8)
    return sum(10 ** (rng.uniform(-6, 0) / 20) * _talker(samples, files, rng) for _ in range(talkers))


def synth_noise(out: str | Path, kinds: tuple[str, ...] = KINDS, files_per_kind: int = 4, seconds: float = 30.0,
                seed: int = 0, babble_from: str | Path | None = None) -> list[Path]:
    """Write ``files_per_kind`` files of ``seconds`` s of each kind (responses: as long as their room needs) to
    ``out``; returns their paths."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UserError(f"noise kinds {unknown}: unknown; choose from {', '.join(KINDS)}")
    if seed < 0:
        raise UserError(f"--seed {seed}: use 0 or more")
    if not kinds or files_per_kind < 1 or seconds <= 0:
        raise UserError(f"nothing to make: {len(kinds)} kinds, {files_per_kind} files per kind, {seconds} s each; "
                        f"give at least one kind, one file and a positive length")
    speech = None
    if "babble" in kinds:
        if babble_from is None:
            raise UserError("babble noise needs speech to mix: give --babble-from DIR (a folder of recordings), "
                            "or leave babble out of --kinds")
        speech = _speech_files(Path(babble_from))
    out = Path(out)
    samples = int(seconds * SAMPLE_RATE)
    paths = []
    jobs = [(kind, i) for kind in kinds for i in range(files_per_kind)]
    for kind, i in tqdm(jobs, desc="noise", unit="file", leave=False):
        path = out / f"{kind}-{i:03d}.flac"
        paths.append(path)
        if path.exists():  # written atomically: present means complete
            continue
        rng = np.random.default_rng([seed, KINDS.index(kind), i])  # each file its own stream: any subset re-runs alike
        if kind in COLOURS:
            x = coloured_noise(samples, COLOURS[kind], rng) * _swell(samples, rng)
        elif kind == "hum":
            x = _hum(samples, rng)
        elif kind == "babble":
            x = _babble(samples, speech, random.Random(f"babble-{seed}-{i}"))
        else:
            x = room_impulse_response(rng)
        x = PEAK * x / (np.abs(x).max() + 1e-12)
        with atomic_open(path, "wb") as f:  # 24 bits for the 90 dB decay of a response
            sf.write(f, x.astype(np.float32), SAMPLE_RATE, format="FLAC",
                     subtype="PCM_24" if kind == "rir" else "PCM_16")
    return paths
