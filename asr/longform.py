"""Long audio in overlapping windows, with memory bounded whatever the length.

The file is read block by block (``soundfile.SoundFile.seek`` + ``read``), one window at
a time; each window is resampled to the model's rate, turned into log-mels and run
through the model; only the log-probs of its central part are kept::

    window i:  | context | central part i | context |
    window i+1:                  | context | central part i+1 | context |

Central parts tile the file's output frames exactly (no gap, no overlap), so the
concatenation has as many frames as a single pass over the whole file, and one
greedy or beam decode over it loses or doubles nothing at window boundaries. Window
edges fall on output-frame boundaries (``hop * subsampling`` samples: 40 ms at 4), so frame
``j`` of a window is frame ``start + j`` of the file; the first and last windows keep
the file's own edges, and every other edge is at least ``context_s`` away from any kept
frame, where the bidirectional LSTM has forgotten it. A model with per-utterance mean
normalization (``model.utterance_cmn``, the main job's) subtracts each window's own mean
spectrum, as it would for a file of that window's length: its log-probs then differ a little
from one pass over the whole file (a mean over 60 s of speech against one over all of it).

Memory: one window of audio, features and activations (~60 s), plus the kept
log-probs, ``vocab * 4`` bytes per 40 ms frame: 2.9 kB per second of audio, 10 MB an hour.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from asr.audio import SUPPORTED, resample_units
from asr.errors import UserError
from asr.features import LogMel
from asr.model import conv_out_lengths

RESAMPLE_MARGIN_S = 0.05  # audio read beyond each window edge before resampling, seconds (the sinc
                          # kernel spans ~17 input samples; the margin keeps its edge effects out)


@dataclass(frozen=True)
class LongFormConfig:
    window_s: float = 60.0  # audio the model sees at once, seconds (60: 17 % recomputed context; 30 s gave 33 %)
    context_s: float = 5.0  # discarded at each inner window edge (overlap with the neighbour), seconds
    threshold_s: float = 70.0  # Recognizer.transcribe uses windows for audio longer than this, seconds

    def __post_init__(self):
        if self.context_s < 0 or self.window_s - 2 * self.context_s <= 0:
            raise UserError(f"long-form window of {self.window_s} s leaves no central part after "
                            f"{self.context_s} s of context on each side")


class AudioSource(Protocol):
    num_samples: int  # length at the model's rate

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Mono float32 samples [start, stop) at the model's rate."""
        ...


class ArraySource:
    """Audio already in memory at the model's rate."""

    def __init__(self, wav: torch.Tensor):
        self.wav = wav
        self.num_samples = wav.numel()

    def read(self, start: int, stop: int) -> torch.Tensor:
        return self.wav[start:stop]


class FileSource:
    """A file read a block at a time, channels averaged, resampled block by block.

    Resampling works in periods of ``orig / g`` input samples = ``new / g`` output samples
    (``asr.audio.resample_units``); a block that starts on a period boundary resamples to exactly
    the samples a whole-file resampling gives there, except within the sinc kernel's reach
    of the block's edges, so each block is read with a margin that is then cut off.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int):
        self.path = str(path)
        try:
            self.file = sf.SoundFile(self.path)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise UserError(f"{path}: cannot read audio ({e}); supported formats: {SUPPORTED}") from None
        self.orig, self.new = self.file.samplerate, sample_rate
        self.unit_orig, self.unit_new = resample_units(self.orig, self.new)  # one resampling period, in and out
        self.num_samples = -(-self.file.frames * self.unit_new // self.unit_orig)  # ceil, as AF.resample
        if self.file.frames == 0:
            raise UserError(f"{path}: the audio has no samples")
        margin = math.ceil(RESAMPLE_MARGIN_S * self.new / self.unit_new)  # periods
        self.margin = margin * self.unit_new if self.orig != self.new else 0  # output samples

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, start: int, stop: int) -> torch.Tensor:
        a = max(0, start - self.margin) // self.unit_new  # periods
        b = -(-min(self.num_samples, stop + self.margin) // self.unit_new)
        a_in, b_in = a * self.unit_orig, min(b * self.unit_orig, self.file.frames)
        try:
            self.file.seek(a_in)
            block = self.file.read(b_in - a_in, dtype="float32", always_2d=True)  # (samples, channels)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise UserError(f"{self.path}: cannot read audio at {a_in / self.orig:.1f} s ({e})") from None
        if not np.isfinite(block).all():
            raise UserError(f"{self.path}: the audio contains NaN or infinite samples near {a_in / self.orig:.1f} s; "
                            f"fix or re-export the file")
        wav = torch.from_numpy(block.mean(axis=1))  # (samples, channels) -> (samples,)
        if self.orig != self.new:
            wav = AF.resample(wav, self.unit_orig, self.unit_new)
        off = start - a * self.unit_new  # output sample `start` is block sample `off`
        return wav[off: off + stop - start]


Model = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # BiLSTMCTC's forward


@torch.no_grad()
def windowed_log_probs(model: Model, logmel: LogMel, source: AudioSource, cfg: LongFormConfig = LongFormConfig(),
                       device: torch.device | str = "cpu", progress: bool | None = None,
                       desc: str = "audio", subsampling: int = 4) -> torch.Tensor:
    """(T', V) log-probs of the whole source, T' as for one pass over it, computed window by window;
    ``subsampling``: the model's feature frames per output frame (model.subsampling)."""
    frame_samples = logmel.hop * subsampling  # 640 samples = 40 ms per output frame at 4
    frame_s = frame_samples / logmel.cfg.sample_rate
    n = source.num_samples
    total = int(conv_out_lengths(torch.tensor(logmel.num_frames(n)), subsampling))  # output frames of the file
    ctx = round(cfg.context_s / frame_s)  # 125 frames
    step = max(1, round(cfg.window_s / frame_s) - 2 * ctx)  # central frames per window: 1250
    out = None
    with tqdm(total=-(-total // step), desc=desc, unit="window", disable=None if progress is None else not progress,
              leave=False) as bar:
        for c0 in range(0, total, step):
            c1 = min(c0 + step, total)  # central part [c0, c1)
            s0, s1 = max(0, c0 - ctx), min(total, c1 + ctx)  # what the model sees, with context
            wav = source.read(s0 * frame_samples, n if s1 == total else s1 * frame_samples)
            feats = logmel(wav).unsqueeze(0)  # (frames, n_mels) -> (1, frames, n_mels)
            lp, _ = model(feats.to(device), torch.tensor([feats.shape[1]], device=device))  # (1, T_w, V)
            if out is None:
                out = torch.empty(total, lp.shape[-1])
            out[c0:c1] = lp[0, c0 - s0: c1 - s0].float().cpu()
            bar.update()
    return out
