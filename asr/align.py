"""Word timestamps and confidences: CTC forced alignment of the decoded tokens on the model's log-probs.

``align_words(log_probs, hyp, tokenizer, frame_s)`` aligns the hypothesis' tokens, word
separators included (the space character, or BPE pieces' word-start mark), with
``torchaudio.functional.forced_align`` (the best CTC path that emits exactly those
tokens) and returns ``[{"word", "start", "end", "confidence"}]``:

- ``start``: the first output frame of the word's first token, in seconds;
- ``end``: the end of the last frame of its last token, in seconds (CTC spikes are
  short, so a word ends when its last unit is emitted, not when its sound fades);
- ``confidence``: the mean posterior probability, ``exp(log_prob)``, of the word's
  tokens over the frames aligned to them (blank frames excluded), in [0, 1].

Forced alignment keeps a (frames x 2 * tokens) back-pointer table, so a long hypothesis
is cut into pieces of at most ``max_frames`` frames between words, in the gap between
the decoder's last emission of one word and first emission of the next, and each piece
is aligned on its own frames: memory stays bounded for an hour. A single "word" longer
than two pieces (a model that emits no separators, e.g. on noise) is timed from the
decoder's own emission frames instead, confidence from the posteriors there.

``align_text(log_probs, tokens, tokenizer, frame_s)`` does the same for a known transcript
(``asr align``): the words of the text, however well the model heard them, and how far the
forced path's log-probability per frame lies below the unconstrained best path's (``gap``, 0 when
the model's greedy output is the transcript): large gaps point at transcripts that do not match
their audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.decode import Hypothesis
from asr.text import WORD_START, Tokenizer

MAX_FRAMES = 1500  # longest piece aligned at once, output frames: 60 s at 40 ms
MAX_CELLS = 100_000_000  # frames x (2 x tokens + 1) of one forced alignment: its int32 back-pointers, 400 MB


@dataclass
class TextAlignment:
    words: list[dict]  # {"word", "start", "end", "confidence"} per word of the transcript, seconds
    logprob: float  # the forced path's mean log-probability per output frame, natural log
    gap: float  # the best unconstrained path's mean log-prob per frame minus ``logprob`` (>= 0)


def ctc_min_frames(ids: list[int]) -> int:
    """Fewest frames a CTC path needs: one per token, plus a blank between two equal neighbours."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def align_text(log_probs: torch.Tensor, tokens: list[int], tokenizer: Tokenizer, frame_s: float) -> TextAlignment:
    """Forced alignment of a known token sequence (a transcript with its word separators) on (T', V) log-probs, in
    one piece. Raises ValueError, saying why, when no CTC path fits or the table would be too large."""
    log_probs = log_probs.detach().float().cpu()
    n = log_probs.shape[0]
    words = _word_spans(tokens, tokenizer)
    if not words:
        raise ValueError("the transcript has no words")
    need = ctc_min_frames(tokens[words[0][0]: words[-1][1]])
    if need > n:
        raise ValueError(f"the transcript needs at least {need} output frames (one per token, and a blank between "
                         f"repeated ones: {need * frame_s:.2f} s of audio); the audio gives {n} ({n * frame_s:.2f} s)")
    if n * (2 * need + 1) > MAX_CELLS:
        raise ValueError(f"too long to align in one piece ({n} frames x {need} tokens): cut the audio and "
                         f"transcript into segments of a few minutes")
    texts = [tokenizer.decode(tokens[a:b]).strip() for a, b in words]
    got = _align_piece(log_probs, tokens, words, texts, tokenizer.blank, 0, frame_s)
    if got is None:
        raise ValueError("no CTC path emits this transcript in these frames")
    aligned, path_logprob = got
    best = float(log_probs.max(-1).values.sum())  # the best path, one token per frame (greedy)
    return TextAlignment(aligned, path_logprob / n, max(0.0, best - path_logprob) / n)


def align_words(log_probs: torch.Tensor, hyp: Hypothesis, tokenizer: Tokenizer, frame_s: float,
                max_frames: int = MAX_FRAMES) -> list[dict]:
    """(T', V) log-probs of one utterance and its hypothesis -> one dict per word, in order."""
    log_probs = log_probs.detach().float().cpu()
    tokens = list(hyp.tokens)
    frames = list(hyp.frames) if len(hyp.frames) == len(tokens) else None
    words = _word_spans(tokens, tokenizer)  # [(first token index, end token index)]
    texts = [tokenizer.decode(tokens[a:b]).strip() for a, b in words]
    if texts != hyp.text.split():  # a decoder whose tokens do not spell its text: time the text evenly
        return _even_spread(hyp.text.split(), log_probs.shape[0], frame_s)
    out: list[dict] = []
    for w0, w1, f0, f1 in _pieces(words, frames, log_probs.shape[0], max_frames):
        part = words[w0:w1]
        if frames is not None and f1 - f0 > 2 * max_frames:  # one word longer than a piece
            out += _from_emissions(log_probs, tokens, frames, part, texts[w0:w1], frame_s)
            continue
        got = _align_piece(log_probs[f0:f1], tokens, part, texts[w0:w1], tokenizer.blank, f0, frame_s)
        aligned = got[0] if got is not None else None
        if aligned is None:  # no CTC path through these frames: cannot happen with the decoder's own path
            aligned = (_from_emissions(log_probs, tokens, frames, part, texts[w0:w1], frame_s) if frames
                       else _even_spread(texts[w0:w1], f1 - f0, frame_s, f0))
        out += aligned
    return out


def _word_spans(tokens: list[int], tokenizer: Tokenizer) -> list[tuple[int, int]]:
    """[first, end) token indices of each word: the space token separates, a piece starting with ▁ begins."""
    spans, start = [], None
    for i, tok in enumerate(tokens):
        piece = tokenizer.tokens[tok]
        separator = piece.isspace() or piece == WORD_START
        if start is not None and (separator or piece.startswith(WORD_START)):
            spans.append((start, i))
            start = None
        if start is None and not separator:
            start = i
    if start is not None:
        spans.append((start, len(tokens)))
    return spans


def _pieces(words: list[tuple[int, int]], frames: list[int] | None, n_frames: int, max_frames: int):
    """(first word, end word, first frame, end frame) of pieces of at most ~max_frames frames.

    Cuts fall midway between one word's last emission and the next word's first, so the
    decoder's own path puts each word's tokens inside its piece and every piece is alignable.
    """
    if not words:
        return
    if n_frames <= max_frames or frames is None:
        yield 0, len(words), 0, n_frames
        return
    w0, f0 = 0, 0
    for i in range(1, len(words)):
        if frames[words[i][1] - 1] + 1 - f0 > max_frames:
            last, first = frames[words[i - 1][1] - 1], frames[words[i][0]]  # of word i-1, of word i
            cut = (last + 1 + first + 1) // 2  # in (last, first]
            yield w0, i, f0, cut
            w0, f0 = i, cut
    yield w0, len(words), f0, n_frames


def _align_piece(log_probs: torch.Tensor, tokens: list[int], words: list[tuple[int, int]], texts: list[str],
                 blank: int, offset: int, frame_s: float) -> tuple[list[dict], float] | None:
    """Forced-align the tokens of ``words`` (with the separators between them) on (T, V) log-probs: the words, and
    the path's total log-probability."""
    first, end = words[0][0], words[-1][1]
    targets = torch.tensor([tokens[first:end]], dtype=torch.int32)  # (1, L)
    try:
        path, scores = AF.forced_align(log_probs.unsqueeze(0), targets, blank=blank)  # (1, T) each
    except RuntimeError:
        return None
    spans = AF.merge_tokens(path[0], scores[0], blank=blank)  # one span per target token, in order
    if len(spans) != end - first:
        return None
    out = []
    for (a, b), text in zip(words, texts):
        ws = spans[a - first: b - first]
        probs = torch.cat([scores[0, s.start: s.end] for s in ws]).exp()  # the word's aligned non-blank frames
        out.append({"word": text, "start": round((offset + ws[0].start) * frame_s, 3),
                    "end": round((offset + ws[-1].end) * frame_s, 3), "confidence": round(float(probs.mean()), 3)})
    return out, float(scores[0].sum())


def _from_emissions(log_probs: torch.Tensor, tokens: list[int], frames: list[int], words: list[tuple[int, int]],
                    texts: list[str], frame_s: float) -> list[dict]:
    """Times from the decoder's emission frames, confidence from the posteriors there: no alignment needed."""
    out = []
    for (a, b), text in zip(words, texts):
        probs = log_probs[frames[a:b], tokens[a:b]].exp()
        out.append({"word": text, "start": round(frames[a] * frame_s, 3),
                    "end": round((frames[b - 1] + 1) * frame_s, 3), "confidence": round(float(probs.mean()), 3)})
    return out


def _even_spread(words: list[str], n_frames: int, frame_s: float, offset: int = 0) -> list[dict]:
    """Fallback timing without an alignment: the frames shared out by word length; confidence 0."""
    total = sum(len(w) + 1 for w in words)
    out, pos = [], 0
    for w in words:
        start, pos = pos, pos + len(w) + 1
        out.append({"word": w, "start": round((offset + n_frames * start / total) * frame_s, 3),
                    "end": round((offset + n_frames * (pos - 1) / total) * frame_s, 3), "confidence": 0.0})
    return out
