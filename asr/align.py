"""Word timestamps and confidences: CTC forced alignment of the decoded words on the model's log-probs.

``align_words(log_probs, hyp, tokenizer, frame_s)`` aligns the hypothesis' characters,
spaces included, with ``torchaudio.functional.forced_align`` (the best CTC path that
spells exactly those characters) and returns ``[{"word", "start", "end", "confidence"}]``:

- ``start``: the first output frame of the word's first character, in seconds;
- ``end``: the end of the last frame of its last character, in seconds (CTC spikes are
  short, so a word ends when its last letter is emitted, not when its sound fades);
- ``confidence``: the mean posterior probability, ``exp(log_prob)``, of the word's
  characters over the frames aligned to them (blank frames excluded), in [0, 1].

Forced alignment keeps a (frames x 2 * characters) back-pointer table, so a long
hypothesis is cut into pieces of at most ``max_frames`` frames between words, at the
silence between the decoder's last emission of one word and first emission of the
next, and each piece is aligned on its own frames: memory stays bounded for an hour.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF

from asr.decode import Hypothesis
from asr.text import CharTokenizer

MAX_FRAMES = 1500  # longest piece aligned at once, output frames: 60 s at 40 ms


def align_words(log_probs: torch.Tensor, hyp: Hypothesis, tokenizer: CharTokenizer, frame_s: float,
                max_frames: int = MAX_FRAMES) -> list[dict]:
    """(T', V) log-probs of one utterance and its hypothesis -> one dict per word, in order."""
    log_probs = log_probs.detach().float().cpu()
    words = _words(hyp, tokenizer)
    out: list[dict] = []
    for w0, w1, f0, f1 in _pieces(words, log_probs.shape[0], max_frames):
        out += _align_piece(log_probs[f0:f1], [w[0] for w in words[w0:w1]], tokenizer, f0, frame_s)
    return out


def _words(hyp: Hypothesis, tokenizer: CharTokenizer) -> list[tuple[str, int, int]]:
    """(word, first emission frame, last emission frame) from the decoder's tokens.

    Characters: the " " token separates words. BPE pieces (no " " token): a piece starting
    with sentencepiece's "▁" starts a word.
    """
    space = tokenizer.tokens.index(" ") if " " in tokenizer.tokens else None
    words, chars, frames = [], [], []
    have_frames = len(hyp.frames) == len(hyp.tokens)
    for i, tok in enumerate([*hyp.tokens, space]):
        new_word = tok == space or (space is None and tokenizer.tokens[tok].startswith("▁"))
        if new_word and chars:
            words.append((tokenizer.decode(chars).strip(), frames[0], frames[-1]))
            chars, frames = [], []
        if tok is not None and tok != space:
            chars.append(tok)
            frames.append(hyp.frames[i] if have_frames else -1)
    if [w[0] for w in words] != hyp.text.split():  # a decoder whose tokens do not spell its text
        return [(w, -1, -1) for w in hyp.text.split()]
    return words


def _pieces(words: list[tuple[str, int, int]], n_frames: int, max_frames: int):
    """(first word, end word, first frame, end frame) of pieces of at most ~max_frames frames.

    Cuts fall midway between one word's last emission and the next word's first, so the
    decoder's own path puts each word's characters inside its piece and every piece is alignable.
    """
    if not words:
        return
    if n_frames <= max_frames or any(w[1] < 0 for w in words):
        yield 0, len(words), 0, n_frames
        return
    w0, f0 = 0, 0
    for i in range(1, len(words)):
        if words[i][2] + 1 - f0 > max_frames and i > w0:
            cut = (words[i - 1][2] + 1 + words[i][1] + 1) // 2  # in the gap: after i-1's last, at or before i's first
            yield w0, i, f0, cut
            w0, f0 = i, cut
    yield w0, len(words), f0, n_frames


def _align_piece(log_probs: torch.Tensor, words: list[str], tokenizer: CharTokenizer, offset: int,
                 frame_s: float) -> list[dict]:
    """Forced-align ``words`` (joined by single spaces) on (T, V) log-probs; frames counted from ``offset``."""
    sep = tokenizer.encode(" ") if " " in tokenizer.tokens else []  # BPE pieces carry their word breaks
    per_word = [tokenizer.encode(w) for w in words]
    ids = [t for i, w in enumerate(per_word) for t in (w if i == 0 else [*sep, *w])]
    targets = torch.tensor([ids], dtype=torch.int32)  # (1, L)
    try:
        path, scores = AF.forced_align(log_probs.unsqueeze(0), targets, blank=tokenizer.blank)  # (1, T) each
    except RuntimeError:  # too few frames for the characters: cannot happen for a CTC decoder's own output
        return _even_spread(words, log_probs.shape[0], offset, frame_s)
    spans = AF.merge_tokens(path[0], scores[0], blank=tokenizer.blank)  # one span per target character, in order
    out, pos = [], 0
    for word, tokens in zip(words, per_word):
        ws = spans[pos: pos + len(tokens)]
        pos += len(tokens) + len(sep)  # skip the space after the word
        probs = torch.cat([scores[0, s.start: s.end] for s in ws]).exp()  # the word's aligned non-blank frames
        out.append({"word": word, "start": round((offset + ws[0].start) * frame_s, 3),
                    "end": round((offset + ws[-1].end) * frame_s, 3), "confidence": round(float(probs.mean()), 3)})
    return out


def _even_spread(words: list[str], n_frames: int, offset: int, frame_s: float) -> list[dict]:
    """Fallback timing without an alignment: the piece's frames shared out by word length; confidence 0."""
    total = sum(len(w) + 1 for w in words)
    out, pos = [], 0
    for w in words:
        start, pos = pos, pos + len(w) + 1
        out.append({"word": w, "start": round((offset + n_frames * start / total) * frame_s, 3),
                    "end": round((offset + n_frames * (pos - 1) / total) * frame_s, 3), "confidence": 0.0})
    return out
