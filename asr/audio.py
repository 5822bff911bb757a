"""Audio input: any file soundfile reads, any rate and channel count, to 16 kHz mono float32."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import UserError

SUPPORTED = "WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3 (anything libsndfile reads)"


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


def _resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    g = np.gcd(orig, new)
    return AF.resample(wav, orig // g, new // g)


@functools.lru_cache(maxsize=4096)
def audio_duration(path: str) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise UserError(f"{path}: cannot read audio header ({e})") from None
    return info.frames / info.samplerate
