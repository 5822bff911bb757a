"""Decoders: strategies behind one interface, ``decode(log_probs, lengths) -> list[Hypothesis]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from asr.text import CharTokenizer


@dataclass
class Hypothesis:
    text: str  # decoded words, normalized form
    tokens: list[int] = field(default_factory=list)  # token ids after collapsing repeats and removing blanks
    frames: list[int] = field(default_factory=list)  # output frame at which each token was emitted
    score: float = 0.0  # log-probability of the path (greedy) or decoder score (beam)


class Decoder(Protocol):
    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        """(B, T, V) log-probabilities and (B,) valid frame counts -> one best hypothesis per utterance."""
        ...


class GreedyDecoder:
    """Best token per frame, repeats collapsed, blanks removed."""

    def __init__(self, tokenizer: CharTokenizer):
        self.tokenizer = tokenizer

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        best, ids = log_probs.max(-1)  # (B, T), (B, T)
        blank = self.tokenizer.blank
        hyps = []
        for b in range(ids.shape[0]):
            n = int(lengths[b])
            seq = ids[b, :n]
            keep = torch.ones(n, dtype=torch.bool)
            keep[1:] = seq[1:] != seq[:-1]  # first frame of each run
            keep &= seq != blank
            frames = keep.nonzero().flatten()
            tokens = seq[frames].tolist()
            text = " ".join(self.tokenizer.decode(tokens).split())
            hyps.append(Hypothesis(text, tokens, frames.tolist(), float(best[b, :n].sum())))
        return hyps


def build_decoder(cfg, tokenizer: CharTokenizer, jobs: int = 1) -> Decoder:
    """A decoder from a DecoderConfig; a beam search in ``jobs`` processes when ``jobs`` > 1."""
    if cfg.type == "greedy":
        return GreedyDecoder(tokenizer)
    if cfg.type == "beam":
        from asr.beam import BeamDecoder, ParallelBeamDecoder

        return ParallelBeamDecoder(cfg, tokenizer, jobs) if jobs > 1 else BeamDecoder(cfg, tokenizer)
    from asr.errors import UserError

    raise UserError(f"unknown decoder type {cfg.type!r}: use 'greedy' or 'beam'")
