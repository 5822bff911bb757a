"""The acoustic model: normalization -> SpecAugment -> conv front (/4 frames) -> BiLSTM stack -> linear."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.config import FeatureConfig, ModelConfig, SpecAugmentConfig
from asr.features import GlobalNorm, SpecAugment

SUBSAMPLING = 4  # two stride-2 convolutions


def conv_out_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after the conv front: each 3x3 stride-2 pad-1 conv maps L -> (L - 1) // 2 + 1."""
    for _ in range(2):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


class ConvFront(nn.Module):
    """Two 3x3 stride-2 convolutions over (time, mel): 4x fewer frames, then a projection."""

    def __init__(self, n_mels: int, channels: int, out_dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.GELU(),
        )
        freq = (n_mels - 1) // 2 + 1
        freq = (freq - 1) // 2 + 1  # 80 mel bins -> 20
        self.proj = nn.Linear(channels * freq, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.unsqueeze(1))  # (B, T, F) -> (B, 1, T, F) -> (B, C, T/4, F/4)
        b, c, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, c * f)  # (B, C, T', F') -> (B, T', C*F')
        return self.proj(x)  # (B, T', out_dim)


class BiLSTMCTC(nn.Module):
    def __init__(self, cfg: ModelConfig, features: FeatureConfig, specaug: SpecAugmentConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.norm = GlobalNorm(features.n_mels)
        self.specaug = SpecAugment(specaug)
        self.front = ConvFront(features.n_mels, cfg.conv_channels, cfg.hidden)
        self.lstm = nn.LSTM(
            cfg.hidden, cfg.hidden, num_layers=cfg.layers, bidirectional=True, batch_first=True, dropout=cfg.dropout
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden, vocab_size)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, n_mels) log-mel, (B,) frame counts -> (B, T', V) log-probs, (B,) output frame counts."""
        x = self.specaug(self.norm(feats))
        x = self.front(x)  # (B, T', H)
        out_lengths = conv_out_lengths(lengths)
        # Packing keeps the backward direction from reading padding first.
        packed = pack_padded_sequence(x, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])  # (B, T', 2H)
        logits = self.out(self.dropout(y))  # (B, T', V)
        return logits.float().log_softmax(-1), out_lengths

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
