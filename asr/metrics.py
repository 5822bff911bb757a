"""Word and character error rates (jiwer), corpus-level and per utterance."""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


@dataclass
class ErrorCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_len: int = 0  # reference words (or characters)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / max(self.ref_len, 1)

    def __iadd__(self, other: "ErrorCounts") -> "ErrorCounts":
        self.substitutions += other.substitutions
        self.deletions += other.deletions
        self.insertions += other.insertions
        self.ref_len += other.ref_len
        return self


def word_errors(ref: str, hyp: str) -> ErrorCounts:
    if not ref.split():  # jiwer refuses an empty reference
        return ErrorCounts(insertions=len(hyp.split()))
    o = jiwer.process_words(ref, hyp)
    return ErrorCounts(o.substitutions, o.deletions, o.insertions, o.substitutions + o.deletions + o.hits)


def char_errors(ref: str, hyp: str) -> ErrorCounts:
    if not ref:
        return ErrorCounts(insertions=len(hyp))
    o = jiwer.process_characters(ref, hyp)
    return ErrorCounts(o.substitutions, o.deletions, o.insertions, o.substitutions + o.deletions + o.hits)


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER as a fraction: total word errors over total reference words."""
    total = ErrorCounts()
    for r, h in zip(refs, hyps, strict=True):
        total += word_errors(r, h)
    return total.rate


def cer(refs: list[str], hyps: list[str]) -> float:
    total = ErrorCounts()
    for r, h in zip(refs, hyps, strict=True):
        total += char_errors(r, h)
    return total.rate
