"""Additive noise augmentation: recordings of noise (e.g. MUSAN's noise/ folder) mixed into training
utterances at a random signal-to-noise ratio, as SpeechBrain's AddNoise and ESPnet's noise_scp do.

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

from asr.audio import AUDIO_EXTENSIONS, as_float, to_mono_resampled
from asr.errors import UserError

MIN_NOISE_S = 0.05  # shorter noise files are left out, seconds


class NoiseMixer:
    def __init__(self, folder: str | Path, snr_db: tuple[float, float] = (5.0, 20.0), prob: float = 0.5,
                 sample_rate: int = 16000):
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"data.noise={folder}: no such directory; give a folder of noise recordings "
                            f"(e.g. MUSAN's noise/), or data.noise=null")
        files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())
        self._shape = {}  # file -> (frames, sample rate), from its header, read once
        for f in files:
            try:
                info = sf.info(str(f))
            except (sf.LibsndfileError, RuntimeError) as e:
                raise UserError(f"data.noise: {f}: cannot read audio header ({e})") from None
            if info.frames >= MIN_NOISE_S * info.samplerate:
                self._shape[f] = (info.frames, info.samplerate)
        self.files = list(self._shape)
        if not self.files:
            raise UserError(f"data.noise={folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) of at least "
                            f"{MIN_NOISE_S} s under this folder")
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
