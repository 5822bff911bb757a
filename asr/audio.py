"""Audio input: any file soundfile reads, any rate and channel count, to 16 kHz mono float32."""

from __future__ import annotations

import functools
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import UserError

SUPPORTED = "WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3 (anything libsndfile reads)"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")  # what a folder given to transcribe or prepare picks up
MAX_RESAMPLE_UNITS = 1000  # largest exact resampling period, samples; 44.1 kHz -> 16 kHz is 441 in, 160 out


def audio_files(folder: Path) -> list[Path]:
    """The audio files (AUDIO_EXTENSIONS, any case) under ``folder``, recursively, sorted."""
    return sorted(f for f in Path(folder).rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> torch.Tensor:
    """Read ``path`` as a 1-D float32 tensor at ``sample_rate`` Hz, channels averaged.

    Raises UserError with the file name and the problem for a missing, empty,
    unreadable or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot read audio ({e}); supported formats: {SUPPORTED}") from None
    return to_mono_resampled(data, rate, sample_rate, name=str(path))


PCM16_SCALE = 32768.0  # int16 sample -> float in [-1, 1), as libsndfile converts 16-bit PCM


def load_audio_pcm16(path: str | os.PathLike, sample_rate: int = 16000) -> torch.Tensor:
    """``load_audio`` for the training loader's waveform path: the samples as int16 when the file already
    is 16-bit PCM, mono, at ``sample_rate`` (LibriSpeech's FLAC), else ``load_audio``'s float32.

    int16 halves the bytes that go from the loader workers to the GPU (and their pinned memory) and
    skips the float conversion and checks: 3,860 against 2,740-3,250 audio s/s decoded on one thread
    (the LibriSpeech sample's FLAC). ``int16 / PCM16_SCALE`` is exactly ``load_audio``'s result.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            if f.channels == 1 and f.samplerate == sample_rate and f.subtype == "PCM_16" and f.frames > 0:
                return torch.from_numpy(f.read(dtype="int16"))  # (samples,) int16
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        pass  # load_audio says what is wrong with the file
    return load_audio(path, sample_rate)


def as_float(wave: torch.Tensor) -> torch.Tensor:
    """A waveform from ``load_audio_pcm16`` (int16 or float32) as ``load_audio``'s float32, exactly."""
    return wave.float() / PCM16_SCALE if wave.dtype == torch.int16 else wave


def to_mono_resampled(data: np.ndarray, rate: int, sample_rate: int = 16000, name: str = "audio") -> torch.Tensor:
    """(samples,) or (samples, channels) array at ``rate`` -> (samples',) float32 tensor at ``sample_rate``."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)  # (samples, channels) -> (samples,)
    if data.ndim != 1:
        raise UserError(f"{name}: expected 1-D or (samples, channels) audio, got shape {data.shape}")
    if data.size == 0:
        raise UserError(f"{name}: the audio has no samples")
    if not np.isfinite(data).all():
        raise UserError(f"{name}: the audio contains NaN or infinite samples; fix or re-export the file")
    wav = torch.from_numpy(np.ascontiguousarray(data))
    if rate != sample_rate:
        wav = _resample(wav, int(rate), sample_rate)
    return wav


def resample_units(orig: int, new: int) -> tuple[int, int]:
    """One resampling period (input samples, output samples) for AF.resample: new/orig in lowest terms.

    torchaudio's polyphase kernel has one filter per output sample of a period, each as long
    as about one input period: an odd rate such as 44,101 Hz (period 44,101 in, 16,000 out)
    took 106 s and 12 GB for 2 s of audio. Periods above MAX_RESAMPLE_UNITS are replaced by
    the closest ratio with both sides at most that (a rate error below 1e-4, far below what
    speech recognition notices: 44,101 -> 16,000 becomes 328 -> 119, 3.6e-6 off).
    """
    g = math.gcd(orig, new)
    if max(orig, new) // g <= MAX_RESAMPLE_UNITS:
        return orig // g, new // g
    if new <= orig:
        f = Fraction(new, orig).limit_denominator(MAX_RESAMPLE_UNITS)
        return f.denominator, max(1, f.numerator)
    f = Fraction(orig, new).limit_denominator(MAX_RESAMPLE_UNITS)
    return max(1, f.numerator), f.denominator


def _resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    return AF.resample(wav, *resample_units(orig, new))


def change_speed(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Speed perturbation as in Kaldi and ESPnet (sox ``speed``): play ``wave`` ``factor`` times faster,
    tempo and pitch together, by resampling it: (samples,) -> (about samples / factor,), same dtype.

    int16 input (``load_audio_pcm16``) is resampled on its float values and rounded back to int16.
    """
    if factor == 1.0:
        return wave
    orig, new = Fraction(factor).limit_denominator(100).as_integer_ratio()  # 1.1 -> 11 / 10: 10 out per 11 in
    y = resampler(orig, new)(wave.float())
    if wave.dtype == torch.int16:
        return y.round_().clamp_(-32768, 32767).to(torch.int16)
    return y


@functools.lru_cache(maxsize=16)
def resampler(orig: int, new: int):
    """torchaudio's resampler with its sinc kernel computed once per (orig, new) and process, not per call.

    Same algorithm as ``torchaudio.functional.resample``, which rebuilds the kernel every call (~4 ms per
    synthesized file, 10 % of the work; 2-3x the time of a 60 s speed perturbation); the cached kernel is
    float32, so samples differ by ~1e-5, below 16-bit resolution.
    """
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


@functools.lru_cache(maxsize=4096)
def audio_duration(path: str) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise UserError(f"{path}: cannot read audio header ({e})") from None
    return info.frames / info.samplerate
