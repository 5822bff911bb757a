"""Additive noise and reverberation: recordings of noise (e.g. MUSAN's noise/ folder) mixed into training
utterances at a random signal-to-noise ratio, as SpeechBrain's AddNoise and ESPnet's noise_scp do, and room
impulse responses convolved with them, as SpeechBrain's AddReverb and ESPnet's rir_scp do (``Reverb``).

``NoiseMixer(folder, ...)`` lists the folder's audio files once (headers only); ``mixer(wave, seed)``
draws from ``random.Random(seed)`` whether to add noise (``prob``), which file, where in it and the SNR,
reads only that segment (looped when the file is shorter than the utterance), and mixes it with
``torchaudio.functional.add_noise``. The seed comes from the batch sampler, so an epoch's noise is the
same on every DDP rank and after a resume.
"""

from __future__ import annotations

import random
from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.audio import AUDIO_EXTENSIONS, as_float, audio_files, to_mono_resampled
from asr.errors import UserError

MIN_NOISE_S = 0.05  # shorter noise files are left out, seconds
MAX_RIR_S = 4.0  # room impulse responses are cut to this length, seconds (RT60 of a large hall)


def _audio_headers(folder: str | Path, key: str, what: str, min_s: float) -> dict[Path, tuple[int, int]]:
    """{file: (frames, sample rate)} for the audio files under ``folder`` of at least ``min_s`` seconds, headers
    only; UserErrors name the config key ``key``."""
    folder = Path(folder)
    if not folder.is_dir():
        drop = f", or {key}=null" if "." in key else ""  # a config key (data.noise) can be unset; a CLI flag left out
        raise UserError(f"{key}={folder}: no such directory; give a folder of {what}{drop}")
    shape = {}
    for f in audio_files(folder):
        try:
            info = sf.info(str(f))
        except (sf.LibsndfileError, RuntimeError) as e:
            raise UserError(f"{key}: {f}: cannot read audio header ({e})") from None
        if info.frames >= min_s * info.samplerate:
            shape[f] = (info.frames, info.samplerate)
    if not shape:
        least = f" of at least {min_s} s" if min_s >= 0.01 else ""
        raise UserError(f"{key}={folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}){least} under this folder")
    return shape


class NoiseMixer:
    def __init__(self, folder: str | Path, snr_db: tuple[float, float] = (5.0, 20.0), prob: float = 0.5,
                 sample_rate: int = 16000, key: str = "data.noise"):
        # file -> (frames, sample rate), from its header, read once; errors name ``key``, the setting or flag
        self._shape = _audio_headers(folder, key, "noise recordings (e.g. MUSAN's noise/)", MIN_NOISE_S)
        self.files = list(self._shape)
        self.snr_db, self.prob, self.sample_rate = (float(snr_db[0]), float(snr_db[1])), prob, sample_rate

    def __call__(self, wave: torch.Tensor, seed: int) -> torch.Tensor:
        """``wave`` (samples,) int16 or float32 with noise added (float32), or unchanged when the draw says so."""
        rng = random.Random(seed)
        if rng.random() >= self.prob:
            return wave
        path = self.files[rng.randrange(len(self.files))]
        snr = rng.uniform(*self.snr_db)
        noise = self.segment(path, len(wave), rng.random())
        if not noise.abs().max() > 0:  # digital silence: no level to scale to the SNR
            return wave
        # (samples,) -> (1, samples) for add_noise's batch dimension, and back
        return AF.add_noise(as_float(wave)[None], noise[None], torch.tensor([snr]))[0]

    def segment(self, path: Path, samples: int, where: float) -> torch.Tensor:
        """``samples`` samples of ``path`` at the mixer's rate, from the point ``where`` (0-1) of the file on,
        looped from the start as often as needed."""
        frames, rate = self._shape[path]
        need = -(-samples * rate // self.sample_rate) + 1  # source samples for ``samples`` output ones
        start = int(where * max(0, frames - need))
        data, _ = sf.read(str(path), start=start, frames=min(need, frames), dtype="float32", always_2d=True)
        noise = to_mono_resampled(data, rate, self.sample_rate, name=str(path))
        reps = -(-samples // len(noise))
        return noise.repeat(reps)[:samples] if reps > 1 else noise[:samples]


class Reverb:
    """Reverberation: ``reverb(wave, seed)`` draws from the seed whether (``prob``) and which room impulse
    response of the folder to convolve the utterance with (by FFT).

    The response is read when drawn (a folder may hold many thousands), cut to MAX_RIR_S and shifted so that its
    strongest sample, the direct sound, comes first: the words keep their times. The result has the RMS level of
    the input. The seed is the one the noise mixer gets; the draws differ, as they come from another stream.
    """

    def __init__(self, folder: str | Path, prob: float = 0.5, sample_rate: int = 16000, key: str = "data.rir"):
        self._rate = {f: rate for f, (_, rate) in _audio_headers(
            folder, key, "room impulse responses (e.g. OpenSLR 28's, or 'asr synth-noise --kinds rir')",
            1e-9).items()}  # file -> sample rate; files of one sample or more
        self.files = list(self._rate)
        self.prob, self.sample_rate, self.key = prob, sample_rate, key

    def __call__(self, wave: torch.Tensor, seed: int) -> torch.Tensor:
        """``wave`` (samples,) int16 or float32, reverberated (float32), or unchanged when the draw says so."""
        rng = random.Random(f"rir-{seed}")
        if rng.random() >= self.prob:
            return wave
        rir = self.response(self.files[rng.randrange(len(self.files))])
        x = as_float(wave)
        # linear convolution by FFT at a power-of-2 size (torchaudio's fftconvolve takes the exact size,
        # len(x) + len(rir) - 1, whose FFT is 4x slower here: 23 against 6 ms for 3 s of speech); the tail past
        # the end of the utterance is dropped
        n = 1 << (len(x) + len(rir) - 2).bit_length()  # smallest power of 2 >= len(x) + len(rir) - 1
        out = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(rir, n), n)[: len(x)]
        gain = x.pow(2).mean().sqrt() / out.pow(2).mean().sqrt().clamp_min(1e-9)
        return out * gain

    def response(self, path: Path) -> torch.Tensor:
        """The impulse response at the mixer's rate, from its direct sound (scaled to 1) on, at most MAX_RIR_S."""
        data, rate = sf.read(str(path), frames=int(MAX_RIR_S * self._rate[path]), dtype="float32", always_2d=True)
        rir = to_mono_resampled(data, rate, self.sample_rate, name=str(path))
        peak = int(rir.abs().argmax())
        if not rir[peak] != 0:
            raise UserError(f"{self.key}: {path}: all zeros, not an impulse response")
        return rir[peak:] / rir[peak]
