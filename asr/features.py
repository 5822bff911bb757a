"""Log-mel front end (torchaudio), global mean/variance normalization and SpecAugment."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from asr.config import FREQ_WARP_AXES, FeatureConfig, SpecAugmentConfig

LOG_FLOOR = 1e-6  # added to mel power before the log; below -60 dB of full scale
DB_TO_LN = math.log(10) / 10  # a power ratio in dB times this is its natural log: 0.2303


class LogMel(nn.Module):
    """(samples,) or (B, samples) waveform -> (frames, n_mels) or (B, frames, n_mels) log-mel.

    Slaney mel scale and area normalization (librosa's defaults), power spectrum,
    centered frames with zero padding, so ``frames = 1 + samples // hop``.
    """

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        self.win = round(cfg.sample_rate * cfg.win_ms / 1000)  # 400 samples at 16 kHz
        self.hop = round(cfg.sample_rate * cfg.hop_ms / 1000)  # 160 samples at 16 kHz
        if cfg.n_fft < self.win:
            raise ValueError(f"n_fft={cfg.n_fft} is shorter than the {self.win}-sample window")
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=self.win,
            hop_length=self.hop,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=2.0,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        )

    def num_frames(self, num_samples):
        """Frames of ``num_samples`` samples (an int, or a tensor of lengths)."""
        return 1 + num_samples // self.hop

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        mel = self.mel(wav)  # (..., n_mels, frames)
        return torch.log(mel + LOG_FLOOR).transpose(-1, -2)  # -> (..., frames, n_mels)


def zero_padding(x: torch.Tensor, lengths: torch.Tensor, time_dim: int) -> torch.Tensor:
    """x with every time step at or past each utterance's length set to zero (batch first)."""
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = x.shape[0], x.shape[time_dim]
    steps = torch.arange(x.shape[time_dim], device=x.device)
    return x * (steps.unsqueeze(0) < lengths.unsqueeze(1)).view(shape).to(x.dtype)


class GlobalNorm(nn.Module):
    """Per-bin mean/std from the training set, kept as buffers so they travel with the model."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std


class RunningStats:
    """Streaming per-bin mean and variance over many (frames, bins) tensors, in float64."""

    def __init__(self, n: int):
        self.count = 0
        self.sum = torch.zeros(n, dtype=torch.float64)
        self.sumsq = torch.zeros(n, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> None:
        f = feats.to(torch.float64)
        self.count += f.shape[0]
        self.sum += f.sum(0)
        self.sumsq += (f * f).sum(0)

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count == 0:
            raise ValueError("no frames seen: cannot compute normalization statistics")
        mean = self.sum / self.count
        var = (self.sumsq / self.count - mean * mean).clamp_min(0)
        return mean.float(), var.sqrt().float()


class SpecAugment(nn.Module):
    """Frequency and time masking (torchaudio), a different mask per utterance; identity in eval mode.

    ``forward`` takes normalized features; ``raw`` (warp, echo, equalizer) takes the log-mels before normalization.
    """

    def __init__(self, cfg: SpecAugmentConfig, features: FeatureConfig | None = None):
        super().__init__()
        self.cfg = cfg
        features = features or FeatureConfig()
        hop_ms = features.hop_ms
        # echo delays in feature frames of hop_ms: 3..25 at the defaults
        self.echo_delays = (max(1, round(cfg.echo_min_ms / hop_ms)), max(1, round(cfg.echo_max_ms / hop_ms)))
        if cfg.freq_warp_axis not in FREQ_WARP_AXES:  # train() names it sooner (asr.config's choices)
            raise ValueError(f"specaug.freq_warp_axis={cfg.freq_warp_axis!r}: expected {' or '.join(FREQ_WARP_AXES)}")
        # centre frequencies of the mel bins, Hz (freq_warp_axis=hz): (n_mels,)
        self.centers_hz = mel_centers_hz(features) if cfg.freq_warp_axis == "hz" else None
        self.freq = torchaudio.transforms.FrequencyMasking(cfg.freq_width, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(cfg.time_width, iid_masks=True, p=cfg.time_ratio)

    def raw(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The augmentations of log-mel power (before normalization): frequency warp, echo, equalizer. Identity in eval
        mode. The warp moves the formants of the log spectrum itself, as a longer or shorter vocal tract would
        (until 2026-11-27 it warped the normalized features, whose per-bin means it then moved too)."""
        c = self.cfg
        if not self.training:
            return feats
        if c.freq_warp > 0:
            feats = freq_warp(feats, c.freq_warp, c.freq_warp_prob, self.centers_hz)
        if c.echo_prob > 0:
            feats = feature_echo(feats, lengths, c.echo_prob, self.echo_delays, (c.echo_min_db, c.echo_max_db))
        if c.eq_prob > 0:
            feats = feature_eq(feats, c.eq_prob, c.eq_db, c.eq_points)
        return feats

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return feats
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, T, F) -> (B, 1, F, T), the layout torchaudio masks
        for _ in range(self.cfg.freq_masks):
            x = self.freq(x)
        for _ in range(self.cfg.time_masks):
            x = self.time(x)
        return x.squeeze(1).transpose(1, 2)  # (B, 1, F, T) -> (B, T, F)


def feature_echo(feats: torch.Tensor, lengths: torch.Tensor, prob: float, delay_frames: tuple[int, int],
                 gain_db: tuple[float, float], repeats: int = 6) -> torch.Tensor:
    """(B, T, F) log-mels with a decaying echo added to a random ``prob`` share of the utterances.

    In mel power, y(t) = x(t) + g x(t - d) + g^2 x(t - 2d) + ... (``repeats`` terms), with the delay d (frames,
    uniform in ``delay_frames``) and the gain g (dB, uniform in ``gain_db``) drawn per utterance: a feedback echo
    as a hard-walled room or espeak-ng's ``echo`` voice setting makes (one of its test voices, an echo at 100 ms,
    was the main job's second-hardest voice). Delays longer than the 25 ms window add as powers; the phases of
    shorter ones would interfere, which this ignores. Frames past each utterance's length are left alone.
    """
    b = feats.shape[0]
    pick = (torch.rand(b) < prob).nonzero().flatten().tolist()
    if not pick:
        return feats
    out = feats.clone()
    delays = torch.randint(delay_frames[0], delay_frames[1] + 1, (b,))
    log_gains = (gain_db[0] + torch.rand(b) * (gain_db[1] - gain_db[0])) * DB_TO_LN  # (B,) ln of power
    for i in pick:
        n, d, g = int(lengths[i]), int(delays[i]), float(log_gains[i])
        x = feats[i, :n].float()
        y = x.clone()
        for k in range(1, repeats + 1):
            if k * d >= n:
                break
            y[k * d:] = torch.logaddexp(y[k * d:], x[: n - k * d] + k * g)
        out[i, :n] = y.to(out.dtype)
    return out


def feature_eq(feats: torch.Tensor, prob: float, max_db: float, points: int = 5) -> torch.Tensor:
    """(B, T, F) log-mels with a random equalizer on a random ``prob`` share of the utterances: ``points`` gains
    uniform in [-max_db, max_db] dB spread evenly from the lowest mel bin to the highest, linear between them,
    added to every frame (in ln power) of the utterance."""
    b, _, f = feats.shape
    pick = torch.rand(b) < prob
    if not pick.any():
        return feats
    anchors = (torch.rand(b, 1, points) * 2 - 1) * max_db * DB_TO_LN  # (B, 1, P), ln of power
    curve = torch.nn.functional.interpolate(anchors, size=f, mode="linear", align_corners=True)  # (B, 1, F)
    curve = curve * pick.view(b, 1, 1)
    return (feats.float() + curve.to(feats.device)).to(feats.dtype)


def freq_warp(feats: torch.Tensor, max_warp: float, prob: float = 1.0,
              centers_hz: torch.Tensor | None = None) -> torch.Tensor:
    """Warp the frequency axis of a random ``prob`` share of the utterances, each by a random factor in
    [1 - max_warp, 1 + max_warp], as a shorter or longer vocal tract moves the formants of a voice.

    Without ``centers_hz``, output bin f reads the input at bin f * factor: the mel axis stretched, which on the
    slaney scale (linear to 1 kHz, logarithmic above) moves high frequencies far more than low ones (at factor 0.8
    the top bin, 7.7 kHz, reads 4.2 kHz). With ``centers_hz`` (the bins' centre frequencies, Hz, rising), output
    bin f reads the input where the frequency is centers_hz[f] * factor, as vocal tract length perturbation
    (VTLP) scales the spectrum (7.7 kHz reads 6.2 kHz at 0.8). Linear interpolation between bins, clamped at the
    top bin.
    """
    b, t, f = feats.shape
    factor = 1 + (torch.rand(b, 1, device=feats.device) * 2 - 1) * max_warp  # (B, 1)
    if prob < 1:
        factor = torch.where(torch.rand(b, 1, device=feats.device) < prob, factor, torch.ones_like(factor))
    if centers_hz is None:
        src = torch.arange(f, device=feats.device, dtype=torch.float32) * factor  # (B, F) source bins
    else:
        centers = centers_hz.to(feats.device)
        src = _fractional_bin(centers, centers * factor)  # (B, F) source bins
    src = src.clamp(min=0, max=f - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=f - 1)
    frac = (src - lo).to(feats.dtype).unsqueeze(1)  # (B, 1, F), broadcast over time
    lo, hi = (i.unsqueeze(1).expand(b, t, f) for i in (lo, hi))  # (B, F) -> (B, T, F) gather indices
    return feats.gather(2, lo) * (1 - frac) + feats.gather(2, hi) * frac


def _fractional_bin(centers: torch.Tensor, hz: torch.Tensor) -> torch.Tensor:
    """Where frequencies ``hz`` (any shape) fall on the bins of rising ``centers`` (F,), as fractional bin
    indices (linear between centres; beyond the last centre past F - 1, below the first under 0)."""
    i = torch.searchsorted(centers, hz.contiguous()).clamp(1, len(centers) - 1)  # the centre at or above
    lo, hi = centers[i - 1], centers[i]
    return (i - 1) + (hz - lo) / (hi - lo)


def mel_centers_hz(cfg: FeatureConfig) -> torch.Tensor:
    """(n_mels,) centre frequencies of LogMel's filters, Hz: n_mels + 2 points evenly spaced on the slaney mel
    scale from f_min to f_max, less the two edges (librosa.mel_frequencies(n_mels + 2, htk=False)[1:-1])."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0  # slaney: 66.7 Hz per mel below 1 kHz, logarithmic above
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0  # 15 mel; 27 mel per factor 6.4 above 1 kHz

    def to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + math.log(hz / min_log_hz) / logstep

    f_max = cfg.f_max if cfg.f_max is not None else cfg.sample_rate / 2
    mels = torch.linspace(to_mel(cfg.f_min), to_mel(f_max), cfg.n_mels + 2, dtype=torch.float64)[1:-1]
    hz = torch.where(mels < min_log_mel, mels * f_sp, min_log_hz * torch.exp((mels - min_log_mel) * logstep))
    return hz.float()
