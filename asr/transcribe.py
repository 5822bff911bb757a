"""The Python API for people who embed the recognizer: load once, transcribe paths or arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from asr.audio import load_audio, to_mono_resampled
from asr.checkpoint import load_model
from asr.config import DecoderConfig
from asr.decode import Hypothesis, build_decoder
from asr.features import LogMel
from asr.model import SUBSAMPLING


@dataclass
class Transcript:
    text: str  # the recognized words
    duration: float  # seconds of audio
    hypothesis: Hypothesis = field(repr=False)  # tokens and frames, for alignment
    log_probs: torch.Tensor | None = field(default=None, repr=False)  # (T', V) CTC log-probs
    words: list[dict] = field(default_factory=list)  # [{"word", "start", "end", "confidence"}] when aligned


class Recognizer:
    """``Recognizer("runs/demo/best.pt").transcribe("a.flac").text``"""

    def __init__(self, model_path: str | os.PathLike, decoder: DecoderConfig | None = None, device: str = "cpu"):
        self.device = torch.device(device)
        self.model, self.tokenizer, self.cfg = load_model(model_path, self.device)
        self.logmel = LogMel(self.cfg.features)
        self.decoder = build_decoder(decoder or DecoderConfig(), self.tokenizer)
        self.frame_s = self.cfg.features.hop_ms / 1000 * SUBSAMPLING  # seconds per output frame: 0.04

    @property
    def sample_rate(self) -> int:
        return self.cfg.features.sample_rate

    def transcribe(self, audio: str | os.PathLike | np.ndarray | torch.Tensor, sample_rate: int | None = None,
                   keep_log_probs: bool = False) -> Transcript:
        """A path (any format soundfile reads) or a (samples,) / (samples, channels) array at ``sample_rate``."""
        if isinstance(audio, (str, os.PathLike)):
            wav = load_audio(audio, self.sample_rate)
        else:
            arr = audio.numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
            wav = to_mono_resampled(arr, sample_rate or self.sample_rate, self.sample_rate)
        return self.transcribe_wav(wav, keep_log_probs)

    @torch.no_grad()
    def transcribe_wav(self, wav: torch.Tensor, keep_log_probs: bool = False) -> Transcript:
        feats = self.logmel(wav).unsqueeze(0)  # (T, F) -> (1, T, F)
        log_probs, lengths = self.model(feats.to(self.device), torch.tensor([feats.shape[1]]))
        hyp = self.decoder.decode(log_probs.cpu(), lengths.cpu())[0]
        return Transcript(hyp.text, wav.numel() / self.sample_rate, hyp,
                          log_probs[0, : int(lengths[0])].cpu() if keep_log_probs else None)
