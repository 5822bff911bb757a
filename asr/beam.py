"""CTC beam search with an optional KenLM n-gram LM of words or characters (flashlight-text, through torchaudio).

``BeamDecoder(cfg, tokenizer).decode(log_probs, lengths)`` is a drop-in for the greedy
decoder (same ``Decoder`` protocol, asr/decode.py). Two modes:

* lexicon (``cfg.lexicon`` a file from ``write_lexicon``): only lexicon words come out;
  flashlight scores them with the LM natively. With an LM and no lexicon file this is also
  the default, over a lexicon of the LM's own words (plus hotwords): much faster (about
  0.2 ms per second of audio against 1.6 ms lexicon-free, beam 50, one CPU core; benchmarks/README.md),
  and only spellings the LM knows can come out. Inside a word the search looks ahead with the
  best unigram score of the words the letters may become (``_lexicon_search``).
* lexicon-free (no lexicon, and no LM or ``cfg.lexicon_free``): any character sequence can
  come out. With an LM, the word LM is applied at word boundaries by ``_WordLM`` below, a
  Python adapter called per (hypothesis, token) pair, with a unigram look-ahead inside
  words; out-of-vocabulary words get the LM's <unk> probability. Tokens more than
  ``cfg.lm_token_prune`` below their frame's best are dropped, and the search runs frame by frame so
  that the adapter answers the dropped ones at once (``_stepped``): 3.4 ms per second of audio -> 1.9,
  about pyctcdecode's speed with the same cut.
* character LM (``asr lm build --unit char``: letters, ``|`` after each word; char models only):
  lexicon-free, with the LM scoring every letter in flashlight's C++ (``_char_lm_search``), no Python
  per token: as fast as the lexicon mode, and words the LM never saw can still come out.

Inputs longer than ``cfg.max_search_frames`` (60 s) are searched in pieces cut at confident word
separators (``_cuts``), so that the search's memory stays that of one piece: lexicon-free with an LM
peaked at 1.4 GB on a 10-minute file uncut and 0.7 GB cut (the model's own share included). The LM
context restarts at each cut; on 445 s of joined test utterances, WER was no worse (lexicon 24.3 ->
23.6 %, lexicon-free 24.7 -> 23.4 %).

flashlight-text has no hotword or phrase boosting; ``cfg.hotwords`` adds ``hotword_score`` per
emitted hotword through the LM adapters below (single words, not phrases), with the bonus in
the lexicon-free look-ahead so that a hotword's first letters already survive pruning.

Conventions, and why:

* Our word separator is the " " token. flashlight calls it the silence token and its
  lexicon files split on whitespace, so the " " token is named ``|`` on the flashlight side;
  ids are unchanged, so the model's log-probs go in as they are.
* A lexicon spelling ends with ``|`` (``there t h e r e |``): a word is complete only when a
  separator follows it, as our model emits a space between words. Without it the decoder
  could split "there" into "the re" at no acoustic cost.
* BPE models have no separator token: a piece with sentencepiece's mark ``▁`` starts a word.
  flashlight still needs a silence token, so ``|`` is added after the model's tokens as one
  the model never emits (log-prob ``_NO``; fairseq's flashlight decoder does the same with a
  BPE vocabulary). A lexicon spelling is the word's sentencepiece pieces (``there ▁the re``),
  without ``|``: the next word's ``▁`` piece closes it. The word-LM adapter ends a word at a
  ``▁`` piece, as at the separator.
* The model emits no space after the last word, so every utterance gets one extra frame in
  which only the separator is possible (log-prob 0): it closes the last word at no cost, and
  that frame is dropped from the output tokens and frames.
* Scores: the acoustic log-probs are natural logs; KenLM returns log10 probabilities, and
  ``lm_weight`` multiplies those (flashlight and wav2letter do the same, so published weights
  carry over). ``word_score`` and ``hotword_score`` are added per word, in natural-log units.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch

from asr.decode import Hypothesis
from asr.errors import UserError
from asr.io import atomic_open
from asr.text import WORD_SEP, WORD_START, BPETokenizer, CharTokenizer, Tokenizer, normalize_text

UNK = "<unk>"
_NO = -1e30  # log-prob of impossible tokens in the closing frame; finite to keep flashlight's arithmetic finite


try:  # torchaudio's CTC decoder over flashlight-text (the [beam] extra); without it BeamDecoder raises a UserError
    from flashlight.lib.text.dictionary import Dictionary, create_word_dict, load_words
    from torchaudio.models.decoder import CTCDecoderLM as _LMBase
    from torchaudio.models.decoder import CTCDecoderLMState as _LMState
    from torchaudio.models.decoder import ctc_decoder

    _IMPORT_ERROR = None
except Exception as _e:  # RuntimeError or ImportError, depending on the torchaudio version
    _LMBase, _LMState, _IMPORT_ERROR = object, None, _e


def _check_flashlight() -> None:
    if _IMPORT_ERROR is not None:
        raise UserError(f"beam search needs flashlight-text: pip install 'flashlight-text' ({_IMPORT_ERROR})")


def is_char_lm(vocab: Iterable[str]) -> bool:
    """Whether an LM's vocabulary (``lm_vocabulary``) is that of a character LM: single characters, ``|`` among them."""
    words = [w for w in vocab if not w.startswith("<")]  # not <s> </s> <unk>
    return WORD_SEP in words and all(len(w) == 1 for w in words)


def _kenlm(path: str, word_dict):
    """flashlight's KenLM over ``path``, mapping ``word_dict``'s indices to the model's words."""
    try:
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError:
        raise UserError("flashlight-text was built without KenLM support: reinstall flashlight-text") from None
    try:
        return KenLM(str(path), word_dict)
    except RuntimeError as e:  # KenLM's FormatLoadException: the last line says what is wrong
        raise UserError(f"{path}: KenLM cannot load this LM ({str(e).strip().splitlines()[-1]}); build one with "
                        f"'asr lm build' (order 2 or more)") from None


# ---------------------------------------------------------------------------------------------
# Tokens and lexicon


def flashlight_tokens(tokenizer: Tokenizer) -> list[str]:
    """Our tokens, in our order, with " " renamed to ``|`` (char), or with a ``|`` the model never emits
    appended (BPE); raises for a char tokenizer without " "."""
    if WORD_SEP in tokenizer.tokens:
        raise UserError(f"the tokenizer already has a {WORD_SEP!r} token; it cannot stand for the word separator")
    if isinstance(tokenizer, BPETokenizer):
        return [*tokenizer.tokens, WORD_SEP]
    if " " not in tokenizer.tokens:
        raise UserError("beam search needs the char tokenizer's ' ' word-separator token, and this model's "
                        "tokenizer has none: use --decoder greedy")
    return [WORD_SEP if t == " " else t for t in tokenizer.tokens]


def spell(word: str, tokenizer: Tokenizer) -> list[str] | None:
    """A word as flashlight tokens: its characters and the separator (char), or its sentencepiece pieces
    (BPE); None if a character has no token."""
    if isinstance(tokenizer, BPETokenizer):
        try:
            return [tokenizer.tokens[i] for i in tokenizer.encode(word)]
        except KeyError:
            return None
    if any(ch not in tokenizer.tokens for ch in word):
        return None
    return [*word, WORD_SEP]


def write_lexicon(words: Iterable[str], path: str | os.PathLike, tokenizer: Tokenizer | None = None) -> int:
    """Write a flashlight lexicon: ``word w o r d |`` per line for the char tokenizer (the default),
    ``word ▁wo rd`` for a BPE one.

    Words go through ``normalize_text`` (so "Don't" becomes "don't"; "well-known" gives
    two words); duplicates and words with characters outside the token set are skipped.
    Returns the number of words written.
    """
    tokenizer = tokenizer or CharTokenizer()
    seen: dict[str, list[str]] = {}
    for raw in words:
        for word in normalize_text(raw).text.split():
            if word not in seen and (spelling := spell(word, tokenizer)) is not None:
                seen[word] = spelling
    with atomic_open(path, "w") as f:
        for word, spelling in seen.items():
            f.write(f"{word} {' '.join(spelling)}\n")
    return len(seen)


# ---------------------------------------------------------------------------------------------
# LM vocabulary


def lm_vocabulary(path: str | os.PathLike) -> list[str]:
    """The words of a KenLM model: the 1-gram section of an ARPA file, or the word list KenLM's
    build_binary appends to a binary file (NUL-separated, starting with <unk>)."""
    from asr.lm import arpa_unigrams, is_arpa, is_gzip

    if is_gzip(path):
        raise UserError(f"{path}: gzip-compressed; KenLM reads ARPA text or its own binary: `asr lm convert {path} "
                        f"--out LM.arpa` decompresses it (and lower-cases its words: LibriSpeech's are upper case)")
    if is_arpa(path):
        return list(arpa_unigrams(path))
    size = os.path.getsize(path)
    with open(path, "rb") as f:  # the list is at the end: read backwards until its start is in view
        chunk = 1 << 20
        while True:
            start = max(0, size - chunk)
            f.seek(start)
            tail = f.read()
            i = tail.rfind(UNK.encode() + b"\0")
            if i >= 0 or start == 0:
                break
            chunk *= 4
    if i < 0:
        raise UserError(f"{path}: no word list found in this KenLM binary; use the ARPA file or a lexicon")
    words = tail[i:].rstrip(b"\0").split(b"\0")
    return [w.decode("utf-8", errors="replace") for w in words]


# ---------------------------------------------------------------------------------------------
# Language models for the decoder


class _WordLM(_LMBase):
    """A word LM for the lexicon-free decoder, which calls its LM once per emitted token.

    flashlight's lexicon-free decoder treats its LM as a token LM. This adapter turns a
    word LM (KenLM, or none) into one: inside a word it returns the change of a look-ahead
    score (the best ``lm_weight * log10 p(w) + hotword bonus`` over vocabulary words starting
    with the letters so far, or the <unk> probability plus ``oov_score`` when none does), and at the separator
    (or a BPE piece that starts the next word) it returns the word's real score minus the look-ahead already
    given, plus ``word_score``.
    The sum over a word is therefore exactly ``lm_weight * log10 p(word | history) + bonuses``;
    the look-ahead only keeps good partial words in the beam (flashlight's lexicon mode
    does the same with its trie "smearing").

    An LM state is (KenLM state, letters of the current word); states are flashlight
    LMState objects, which the decoder compares by identity, so each distinct pair has
    exactly one object: children of a state are keyed by token, and after a word there is
    one state per KenLM state.
    """

    def __init__(self, kenlm, vocab: list[str], tokens: list[str], lm_weight: float,
                 word_score: float, boosts: dict[str, float], oov_score: float = 0.0):
        _LMBase.__init__(self)
        self.kenlm = kenlm
        # per token: (does it end the word before it, the letters it adds): " " (True, ""), "a" (False, "a"),
        # a BPE piece "▁the" (True, "the"), "re" (False, "re")
        self.kind = [(t == WORD_SEP or t.startswith(WORD_START), "" if t == WORD_SEP else t.lstrip(WORD_START))
                     for t in tokens]
        self.word_score = word_score
        self.lm_weight = lm_weight
        self.boosts = boosts
        self.index = {w: i for i, w in enumerate(vocab)}
        self.unk = self.index.get(UNK, -1)
        # look-ahead of letters that start no known word: <unk>'s unigram score plus the OOV penalty
        # (0 without an LM); an out-of-vocabulary hotword is not penalized
        self.oov_score = oov_score if kenlm is not None else 0.0
        self._unk_uni = self._unigram(self.unk) if kenlm is not None else 0.0
        self._unk_look = self._unk_uni + self.oov_score
        self._look = self._lookahead(vocab)
        self._info: dict = {}  # LM state -> (KenLM state, letters so far, their look-ahead)
        self._roots: dict = {}  # KenLM state -> our state at a word boundary
        self.viable: list[bool] | None = None  # per token: possible in the frame being searched (None: all)

    def _unigram(self, idx: int) -> float:
        """lm_weight * log10 p(word) without context."""
        _, s = self.kenlm.score(self.kenlm.start(True), idx)
        return self.lm_weight * s

    def _lookahead(self, vocab: list[str]) -> dict[str, float]:
        """Best unigram score plus bonus over the words that start with each prefix (memory: one
        entry per distinct prefix, about 4 per word)."""
        scores = {w: self._unigram(i) for i, w in enumerate(vocab) if not w.startswith("<")}  # not <s> </s> <unk>
        for w in self.boosts:
            scores[w] = scores.get(w, self._unk_uni) + self.boosts[w]
        look: dict[str, float] = {}
        for w, s in scores.items():
            for k in range(1, len(w) + 1):
                p = w[:k]
                if s > look.get(p, -math.inf):
                    look[p] = s
        return look

    def _root(self, kstate):
        root = self._roots.get(kstate)
        if root is None:
            root = self._roots[kstate] = _LMState()
            self._info[root] = (kstate, "", 0.0)
        return root

    def start(self, start_with_nothing: bool):
        self._info.clear()  # one utterance at a time: drop the previous one's states
        self._roots.clear()
        kstate = self.kenlm.start(start_with_nothing) if self.kenlm is not None else None
        return self._root(kstate)

    def _end_word(self, kstate, prefix: str, look: float):
        """(state after the word, its score minus the look-ahead ``look`` already given)."""
        score = self.word_score + self.boosts.get(prefix, 0.0)
        if self.oov_score and prefix not in self.index and prefix not in self.boosts:
            score += self.oov_score
        if self.kenlm is not None:
            kstate, lm = self.kenlm.score(kstate, self.index.get(prefix, self.unk))
            score += self.lm_weight * lm
        return self._root(kstate), score - look

    def score(self, state, token: int):
        # Called for every (hypothesis, token) pair, up to beam_size x beam_size_token times a frame: keep it lean.
        if self.viable is not None and not self.viable[token]:  # impossible in this frame (BeamDecoder._stepped)
            return state, 0.0
        kstate, prefix, look = self._info[state]
        ends, letters = self.kind[token]
        score = 0.0
        if ends:
            if prefix:  # a word ends here: continue from the state after it, a root (no letters, look-ahead 0)
                state, score = self._end_word(kstate, prefix, look)
                kstate, prefix, look = self._info[state]
            if not letters:
                return state, score
        child = state.child(token)  # flashlight keeps one child per token: the same object on every visit
        info = self._info.get(child)
        if info is None:
            word = prefix + letters
            info = self._info[child] = (kstate, word, self._look.get(word, self._unk_look))
        return child, score + info[2] - look

    def finish(self, state):
        kstate, prefix, look = self._info[state]
        score = 0.0
        if prefix:  # unreachable with the closing separator frame; kept for decode_step users
            state, score = self._end_word(kstate, prefix, look)
            kstate = self._info[state][0]
        if self.kenlm is None:
            return state, score
        kstate, end = self.kenlm.finish(kstate)
        return self._root(kstate), score + self.lm_weight * end


class _BoostedLM(_LMBase):
    """Lexicon mode with hotwords: the inner LM's score times ``lm_weight``, plus a per-word bonus.

    The decoder then runs with lm_weight 1, so a bonus means the same with any weight. The
    states are the inner LM's (flashlight calls this once per word, not per letter).
    """

    def __init__(self, inner, lm_weight: float, bonus: dict[int, float]):
        _LMBase.__init__(self)
        self.inner, self.lm_weight, self.bonus = inner, lm_weight, bonus

    def start(self, start_with_nothing: bool):
        return self.inner.start(start_with_nothing)

    def score(self, state, idx: int):
        state, s = self.inner.score(state, idx)
        return state, self.lm_weight * s + self.bonus.get(idx, 0.0)

    def finish(self, state):
        state, s = self.inner.finish(state)
        return state, self.lm_weight * s


# ---------------------------------------------------------------------------------------------
# The decoder


class BeamDecoder:
    """CTC beam search; ``decode`` gives the best hypothesis per utterance, ``decode_nbest`` up to ``cfg.nbest``."""

    def __init__(self, cfg, tokenizer: Tokenizer, _loaded: dict | None = None, _retry: bool = True):
        self.cfg = cfg
        self._retry = _retry  # search again with wider pruning when no hypothesis completes its last word
        self._wide: list[BeamDecoder | None] = [None, None]  # the wider searches of second tries (_wider)
        self.tokenizer = tokenizer
        self.tokens = flashlight_tokens(tokenizer)
        self.sep = self.tokens.index(WORD_SEP)
        self.added_sep = len(self.tokens) > len(tokenizer)  # BPE: a separator the model never emits
        self.blank = tokenizer.blank
        _check_flashlight()
        for name in ("beam_size", "beam_size_token", "nbest"):
            value = getattr(cfg, name)
            if value is not None and value < 1:
                raise UserError(f"decoder.{name}={value}: use 1 or more")
        for name in ("token_prune", "lm_token_prune"):
            value = getattr(cfg, name)
            if value is not None and value <= 0:
                raise UserError(f"decoder.{name}={value}: use a positive log-prob margin (e.g. 5) or null")
        if 0 < cfg.max_search_frames < 10:
            raise UserError(f"decoder.max_search_frames={cfg.max_search_frames}: "
                            "use 0 (never cut) or at least 10 frames")
        for name, path in (("lm", cfg.lm), ("lexicon", cfg.lexicon)):
            if path is not None and not Path(path).is_file():
                raise UserError(f"decoder {name} file {path}: not found")
        self.hotwords = {w: float(cfg.hotword_score) for h in (cfg.hotwords or [])
                         for w in normalize_text(h).text.split()}
        self._lm = None  # our LM adapter, if any
        self._loaded = _loaded if _loaded is not None else {}  # KenLM, vocabulary, lexicon: shared by reweighted()
        # torchaudio's CTCDecoder keeps the LM alive as long as the decoder (flashlight holds a raw pointer)
        self.char_lm = cfg.lm is not None and is_char_lm(self._cached("vocab", lambda: self._vocabulary(cfg.lm)))
        if self.char_lm:
            self._check_char_lm()
        self.lexicon = cfg.lexicon
        if self.lexicon is None and cfg.lm is not None and not cfg.lexicon_free and not self.char_lm:
            self.lexicon = self._cached("auto_lexicon", self._lexicon_of_lm)
        self._ctc = self._build_lexicon() if self.lexicon else self._build_lexicon_free()
        # a token far below its frame's best can still win with an LM, a lexicon or a hotword behind it: a wider
        # margin with an LM, none with a lexicon (its trie search loses whole words) or hotwords
        if self.lexicon is not None or self.hotwords:
            self.token_prune = None
        else:
            self.token_prune = cfg.token_prune if cfg.lm is None else cfg.lm_token_prune
        self._by_tokens: dict[int, object] = {}  # lexicon-free searches by tokens tried per frame (_search_for)

    def reweighted(self, **changes) -> "BeamDecoder":
        """This decoder with some DecoderConfig fields changed (lm_weight, word_score, beam_size, ...),
        sharing the loaded LM and lexicon, so that tuning does not reload them; lm and lexicon stay."""
        if {"lm", "lexicon"} & set(changes):
            raise ValueError("reweighted() keeps lm and lexicon; build a new BeamDecoder to change them")
        return BeamDecoder(replace(self.cfg, **changes), self.tokenizer, _loaded=self._loaded)

    # -- construction ---------------------------------------------------------------------------

    def _cached(self, key: str, make):
        if key not in self._loaded:
            self._loaded[key] = make()
        return self._loaded[key]

    def _lexicon_of_lm(self) -> str:
        """A lexicon file of the LM's words and the hotwords, in a folder that lives as long as the decoder."""
        import tempfile

        folder = self._cached("auto_lexicon_dir", lambda: tempfile.TemporaryDirectory(prefix="asr-lexicon-"))
        path = Path(folder.name) / "lexicon.txt"
        vocab = self._cached("vocab", lambda: self._vocabulary(self.cfg.lm))
        words = [w for w in vocab if not w.startswith("<")] + list(self.hotwords)
        if write_lexicon(words, path, self.tokenizer) == 0:
            raise UserError(f"LM {self.cfg.lm}: none of its words can be spelled with the model's tokens; "
                            f"set decoder.lexicon_free=true or build the LM from text in the model's alphabet")
        return str(path)

    @staticmethod
    def _vocabulary(path) -> list[str]:
        from asr.lm import is_arpa, upper_case_share

        vocab = lm_vocabulary(path)
        share, example = upper_case_share(vocab)
        if share > 0.5:  # LibriSpeech's official LMs: every word would be <unk> to the lower-case lexicon
            fix = (f"`asr lm convert {path} --out LM.arpa` writes a lower-cased copy" if is_arpa(path) else
                   "lower-case the ARPA file it was built from (`asr lm convert ARPA --out LM.arpa`) and use that")
            raise UserError(f"LM {path}: its words are upper case ({example!r}), and the model spells lower case, so "
                            f"none of them would match: {fix}")
        if share > 0:
            print(f"warning: LM {path}: {share:.1%} of its words hold upper-case letters ({example!r}); the decoder "
                  f"spells lower case and cannot output them (asr lm convert lower-cases an ARPA file)",
                  file=sys.stderr)
        if UNK not in vocab:  # KenLM maps unknown words to its <unk> (id 0) whether or not it is listed
            vocab.insert(0, UNK)
        return vocab

    def _check_char_lm(self) -> None:
        lm = self.cfg.lm
        if self.added_sep:
            raise UserError(f"LM {lm} is a character LM, and this model spells in BPE pieces: build a word LM "
                            "(asr lm build --unit word)")
        if self.cfg.lexicon:
            raise UserError(f"LM {lm} is a character LM; a lexicon needs a word LM: drop the lexicon (a character LM "
                            "lets any spelling through) or build a word LM (asr lm build --unit word)")
        if self.hotwords:
            raise UserError(f"hotwords need a word LM or none; LM {lm} is a character LM")

    def _build_lexicon_free(self):
        """Lexicon-free: flashlight's token-level search, with a character LM, or our word-LM adapter when there
        is a word LM or a word score."""
        if self.char_lm:
            return self._token_search(self.cfg.beam_size_token)
        c = self.cfg
        kenlm = None
        vocab: list[str] = []
        if c.lm is not None:
            vocab = self._cached("vocab", lambda: self._vocabulary(c.lm))
            kenlm = self._cached("kenlm", lambda: _kenlm(c.lm, Dictionary(vocab)))
        if kenlm is not None or c.word_score != 0 or self.hotwords:
            self._lm = _WordLM(kenlm, vocab, self.tokens, c.lm_weight, c.word_score, self.hotwords,
                               c.oov_score)
        return self._token_search(c.beam_size_token)

    def _token_search(self, beam_size_token: int | None):
        """torchaudio's ctc_decoder with our tokens, lexicon-free, trying ``beam_size_token`` tokens per frame (None:
        all); we call its flashlight decoder directly (_search_one). lm_weight 1: our adapter (``self._lm``) applies
        lm_weight itself, so that word_score is not scaled by it. No adapter: flashlight's ZeroLM, a plain beam search
        with no Python in the inner loop. With a character LM: ``_char_lm_search``."""
        if self.char_lm:
            return self._char_lm_search(beam_size_token)
        c = self.cfg
        return ctc_decoder(lexicon=None, tokens=self.tokens, lm=self._lm, beam_size=c.beam_size,
                           beam_size_token=beam_size_token, beam_threshold=c.beam_threshold, lm_weight=1.0,
                           word_score=0.0, sil_score=c.sil_score, log_add=c.log_add,
                           blank_token=self.tokens[self.blank], sil_token=WORD_SEP, unk_word=UNK)

    def _char_lm_search(self, beam_size_token: int | None) -> SimpleNamespace:
        """flashlight's lexicon-free decoder with a character LM that KenLM scores in C++ at each emitted token: no
        Python in the search's inner loop, where ``_WordLM`` is called per (hypothesis, token). ``word_score`` is
        added at each word separator emitted (flashlight's sil_score); the LM's ``|`` ends words the same way.
        Measured on bench_beam.py's 100 demo test utterances (beam 50, 1 thread, weights tuned on dev): a 6-gram of
        the benchmark's text gave 14.8 % WER in 1.5 ms per second of audio; pyctcdecode with a word 3-gram of the
        same text 12.4 % in 5.6 ms, our word-LM adapter 12.9 % in 12.5 ms (before ``lm_token_prune``; now about 5x
        the character LM's time)."""
        from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions

        c = self.cfg
        lm = self._cached("char_kenlm", lambda: _kenlm(c.lm, Dictionary(self.tokens)))  # token id -> LM letter
        options = LexiconFreeDecoderOptions(
            beam_size=c.beam_size, beam_size_token=beam_size_token or len(self.tokens),
            beam_threshold=c.beam_threshold, lm_weight=c.lm_weight, sil_score=c.sil_score + c.word_score,
            log_add=c.log_add, criterion_type=CriterionType.CTC)
        return SimpleNamespace(decoder=LexiconFreeDecoder(options, lm, self.sep, self.blank, []), lm=lm)

    def _build_lexicon(self):
        """Lexicon: words from the lexicon only, scored natively by flashlight (KenLM or no LM)."""
        c = self.cfg
        lexicon = self._cached("lexicon", lambda: load_words(str(self.lexicon)))
        if not any(lexicon.values()):
            raise UserError(f"lexicon {self.lexicon} has no words: make one with asr.beam.write_lexicon")
        ids = {t: i for i, t in enumerate(self.tokens)}  # a dict: a BPE lexicon spells 100k+ words in 1k+ pieces
        bad = [t for spellings in lexicon.values() for s in spellings for t in s if t not in ids]
        if bad:
            how = ("in the model's sentencepiece pieces" if self.added_sep
                   else f"in characters and end each with {WORD_SEP!r}")
            raise UserError(f"lexicon {self.lexicon}: token {bad[0]!r} is not in the model's token set "
                            f"(spell words {how}: asr.beam.write_lexicon)")
        word_dict = self._cached("word_dict", lambda: create_word_dict(lexicon))
        lm = self._cached("kenlm", lambda: _kenlm(c.lm, word_dict)) if c.lm is not None else None
        lm_weight = c.lm_weight
        from flashlight.lib.text.decoder import ZeroLM

        if self.hotwords:
            missing = [w for w in self.hotwords if w not in lexicon]
            if missing:
                raise UserError(f"hotwords not in the lexicon {self.lexicon}: {', '.join(missing[:5])}")
            bonus = {word_dict.get_index(w): b for w, b in self.hotwords.items()}
            lm = self._lm = _BoostedLM(lm if lm is not None else ZeroLM(), lm_weight, bonus)
            lm_weight = 1.0
        return self._lexicon_search(lexicon, ids, word_dict, lm if lm is not None else ZeroLM(), lm_weight)

    def _lexicon_search(self, lexicon: dict, ids: dict[str, int], word_dict, lm, lm_weight: float) -> SimpleNamespace:
        """flashlight's lexicon decoder over a trie of the lexicon's spellings whose look-ahead inside a word is
        the best unigram LM score (KenLM's null context) of the words it may become.

        torchaudio's ctc_decoder (like fairseq's flashlight decoder) smears the trie with p(word | <s>), each
        word's score at the start of a sentence. Inside a sentence that under-rates words that seldom start one,
        and a long last word ("afternoon", "heaters") fell out of the beam behind a short word that completes.
        Measured on 100 demo test utterances at beam 50, LM weight 1.15, word score 1.5 (bench_beam.py's model
        source): 14.7 % WER with the sentence-start look-ahead, 13.2 % with the unigram one (pyctcdecode 12.4 %,
        our lexicon-free search 12.9 %). ``ids``: token -> index. Returns the decoder with the LM and trie it
        points to, kept alive."""
        from flashlight.lib.text.decoder import (CriterionType, LexiconDecoder, LexiconDecoderOptions, SmearingMode,
                                                  Trie)

        c = self.cfg
        trie = Trie(len(self.tokens), self.sep)
        start = lm.start(True)
        for word, spellings in lexicon.items():
            idx = word_dict.get_index(word)
            score = lm.score(start, idx)[1]
            for spelling in spellings:
                trie.insert([ids[t] for t in spelling], idx, score)
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(
            beam_size=c.beam_size, beam_size_token=c.beam_size_token or len(self.tokens),
            beam_threshold=c.beam_threshold, lm_weight=lm_weight, word_score=c.word_score, unk_score=c.unk_score,
            sil_score=c.sil_score, log_add=c.log_add, criterion_type=CriterionType.CTC)
        decoder = LexiconDecoder(options, trie, lm, self.sep, self.blank, word_dict.get_index(UNK), [], False)
        return SimpleNamespace(decoder=decoder, lm=lm, trie=trie)

    # -- decoding -------------------------------------------------------------------------------

    def _with_closing_frame(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, V) -> (B, T + 1, V) float32 with frame lengths[b] = "separator only" (see module doc); V counts
        an added separator (``_with_added_sep``)."""
        lp = log_probs.detach().to("cpu", torch.float32)
        B, T, V = lp.shape
        out = torch.cat([lp, lp.new_full((B, 1, V), _NO)], dim=1)  # (B, T, V) -> (B, T + 1, V)
        for b in range(B):
            n = int(lengths[b])
            out[b, n] = _NO
            out[b, n, self.sep] = 0.0
        return out.contiguous()

    def _hypothesis(self, result, n: int) -> Hypothesis:
        """flashlight's path (initial state, T frames, closing frame, final state) -> our Hypothesis."""
        path = list(result.tokens)[1:n + 1]  # drop the initial state; keep the n real frames
        tokens, frames = [], []
        prev = None
        for t, tok in enumerate(path):
            if tok != self.blank and tok != prev and not (self.added_sep and tok == self.sep):
                tokens.append(tok)
                frames.append(t)
            prev = tok
        text = " ".join(self.tokenizer.decode(tokens).split())
        return Hypothesis(text, tokens, frames, float(result.score))

    def decode_nbest(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        """(B, T, V) log-probs and (B,) valid frame counts -> up to cfg.nbest hypotheses each, best first."""
        if log_probs.shape[-1] != len(self.tokenizer):
            raise ValueError(f"log_probs have {log_probs.shape[-1]} classes, the tokenizer {len(self.tokenizer)}")
        x = self._with_closing_frame(self._with_added_sep(log_probs), lengths)  # (B, T + 1, V')
        if self.token_prune is not None:  # tokens far below their frame's best: impossible (flashlight rejects them)
            x = torch.where(x < x.max(-1, keepdim=True).values - self.token_prune, _NO, x)
        longest = self.cfg.max_search_frames
        out = []
        for b in range(x.shape[0]):
            n = int(lengths[b])
            if longest and n > longest:
                out.append([self._decode_in_pieces(x[b, :n])])
                continue
            results = self._search_one(x[b], n)
            # flashlight returns its whole final beam (up to beam_size paths): turn only as many into hypotheses as
            # it takes to find nbest distinct texts (one, by default), not every path (a Python loop over frames each)
            out.append(self._distinct((self._hypothesis(r, n) for r in results), max(1, self.cfg.nbest)))
        return out

    def _with_added_sep(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(B, T, V) -> (B, T, V + 1) with the added separator impossible (BPE); unchanged for chars."""
        if not self.added_sep:
            return log_probs
        lp = log_probs.detach().to("cpu", torch.float32)
        return torch.cat([lp, lp.new_full((*lp.shape[:2], 1), _NO)], dim=-1)  # (B, T, V) -> (B, T, V + 1)

    def _search_one(self, x: torch.Tensor, n: int) -> list:
        """flashlight's results for one utterance: ``x`` (>= n + 1, V) float32, contiguous rows, n frames
        then the closing frame (``_with_closing_frame``). flashlight's own results, since torchaudio's
        CTCHypothesis drops the raw path we need for frames.

        With a lexicon, the pruning may keep only hypotheses in the middle of a word when the frames run
        out: none can take the closing frame's separator, and the best "result" is a truncated non-word
        ("the librar", score ~_NO; 5 of the demo's 300 test utterances with beam 50, threshold 10). Such an
        utterance is searched again with a 5x wider threshold, and if that fails too, also with twice the beam and
        every token per frame (``_wider``). A wide search alone (4x the beam) completed all five (2026-11-26),
        but on the main job's 19.46 % model it took 43 % of the lexicon search's time for the 4 of 300 test
        utterances it searched again (10-29 ms each against 0.3 ms), where the threshold alone completes most at
        a seventh of that, the same WER (2026-11-27)."""
        decoder = self._search_for(x, n).decoder
        if isinstance(self._lm, _WordLM) and self.token_prune is not None:
            results = self._stepped(decoder, x, n)
        else:
            results = decoder.decode(x.data_ptr(), n + 1, x.shape[-1])
        for level in range(len(self._wide) if self._retry else 0):
            if results and results[0].score >= _NO / 2:
                break
            results = self._wider(level)._search_one(x, n) or results
        return results

    def _wider(self, level: int) -> "BeamDecoder":
        """The searches of ``_search_one``'s second tries, made when first needed: level 0 with a 5x wider
        threshold, level 1 also with twice the beam and every token per frame (4x completed 3 of the 4 test
        utterances of the main job's 19.46 % model that needed a second try, 2x all four, in half the time)."""
        if self._wide[level] is None:
            c = self.cfg
            wide = replace(c, beam_threshold=max(5 * c.beam_threshold, 50.0))
            if level == 1:
                wide = replace(wide, beam_size=max(2 * c.beam_size, 100), beam_size_token=None)
            self._wide[level] = BeamDecoder(wide, self.tokenizer, self._loaded, _retry=False)
        return self._wide[level]

    def _stepped(self, decoder, x: torch.Tensor, n: int) -> list:
        """``decoder.decode`` frame by frame, telling our word-LM adapter which tokens each frame keeps: flashlight
        asks the LM to score every token it tries before it rejects an impossible one, and the adapter answers those
        at once (a Python call per hypothesis and token is what this search spends its time on)."""
        viable = (x[:n + 1] > _NO / 2).tolist()  # (n + 1, V) bools
        ptr, V = x.data_ptr(), x.shape[-1]
        row = V * x.element_size()  # bytes per frame
        decoder.decode_begin()
        try:
            for t in range(n + 1):
                self._lm.viable = viable[t]
                decoder.decode_step(ptr + t * row, 1, V)
            decoder.decode_end()
        finally:
            self._lm.viable = None
        return decoder.get_all_final_hypothesis()

    def _search_for(self, x: torch.Tensor, n: int):
        """The search for one utterance. After ``token_prune`` no frame keeps more than a few tokens, but flashlight
        tries ``beam_size_token`` of them per hypothesis and frame, impossible ones included (each rejected only
        after its score is made): so it tries as many as the utterance's fullest frame keeps, if fewer. The same
        tokens survive in every frame, and so the same result; measured on the /3 main job's test outputs, a
        median of 5 tokens for the fullest frame (3-21)."""
        if self.token_prune is None:
            return self._ctc
        limit = self.cfg.beam_size_token or x.shape[-1]
        kept = min(int((x[:n + 1] > _NO / 2).sum(-1).max()), limit)  # tokens the fullest frame keeps
        if kept == limit:
            return self._ctc
        if kept not in self._by_tokens:
            self._by_tokens[kept] = self._token_search(kept)
        return self._by_tokens[kept]

    def _cuts(self, lp: torch.Tensor) -> list[int]:
        """Frames at which (n, V) log-probs are cut so that no piece exceeds ``cfg.max_search_frames``.

        Each cut lies in the second half of the span a piece may take: the frame most confidently the
        word separator (a word boundary; BPE: a blank followed by a piece that starts a word), or failing a
        frame at p >= 0.5, the one most confidently blank (a pause). The cut frame itself belongs to neither
        piece."""
        longest, n = self.cfg.max_search_frames, lp.shape[0]
        if self.added_sep:  # (n, ) log p(blank at t, a "▁" piece at t + 1); the last frame never ends a piece
            starts = [i for i, t in enumerate(self.tokens) if t.startswith(WORD_START)]
            boundary = torch.cat([lp[:-1, self.blank] + lp[1:, starts].logsumexp(-1), lp.new_full((1,), _NO)])
        else:
            boundary = lp[:, self.sep]
        cuts, start = [], 0
        while n - start > longest:
            lo = start + longest // 2
            span = boundary[lo:start + longest]  # (<= longest / 2,)
            at = int(span.argmax())
            if float(span[at]) < math.log(0.5):
                at = int(lp[lo:start + longest, self.blank].argmax())
            cuts.append(lo + at)
            start = lo + at + 1
        return cuts

    def _decode_in_pieces(self, lp: torch.Tensor) -> Hypothesis:
        """The best hypothesis of (n, V) log-probs searched piece by piece between ``_cuts``: the search's
        memory (flashlight's history, our LM adapter's states) is that of one piece. The pieces' words are
        joined with a separator at the cut frame (char models; a BPE piece's next word starts with its own "▁");
        the score is the sum of the pieces' scores."""
        cuts = self._cuts(lp)
        tokens: list[int] = []
        frames: list[int] = []
        score = 0.0
        for a, c in zip([0] + [k + 1 for k in cuts], cuts + [lp.shape[0]]):
            piece = self._with_closing_frame(lp[a:c].unsqueeze(0), torch.tensor([c - a]))  # (1, c - a + 1, V)
            results = self._search_one(piece[0], c - a)
            h = self._hypothesis(results[0], c - a) if results else Hypothesis("")
            score += h.score
            if not h.text:
                continue
            if tokens and not self.added_sep and tokens[-1] != self.sep and h.tokens[0] != self.sep:
                tokens.append(self.sep)
                frames.append(a - 1)  # the cut frame
            tokens += h.tokens
            frames += [f + a for f in h.frames]
        text = " ".join(self.tokenizer.decode(tokens).split())
        return Hypothesis(text, tokens, frames, score)

    @staticmethod
    def _distinct(hyps: Iterable[Hypothesis], k: int) -> list[Hypothesis]:
        """The first k hypotheses with different texts (paths that differ only in timing say the same); reads
        ``hyps`` (a generator) no further than that."""
        seen, out = set(), []
        for h in hyps:
            if h.text not in seen:
                seen.add(h.text)
                out.append(h)
            if len(out) == k:
                break
        return out

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        """(B, T, V) log-probs and (B,) valid frame counts -> the best hypothesis per utterance."""
        return [h[0] if h else Hypothesis("") for h in self.decode_nbest(log_probs, lengths)]


# ---------------------------------------------------------------------------------------------
# Several processes

_WORKER: dict = {}  # in a ParallelBeamDecoder's worker process: its config, tokenizer and (once built) decoder


def _worker_init(cfg, tokenizer_dict: dict) -> None:
    torch.set_num_threads(1)  # the search is one thread; the processes are the parallelism
    _WORKER.update(cfg=cfg, tokenizer=tokenizer_dict)


def _worker_decoder() -> BeamDecoder:
    """This worker's decoder, built by its first task, not by the pool's initializer: an error building it (an LM
    it cannot use) then comes back to the caller as that task's exception instead of breaking the pool."""
    from asr.text import tokenizer_from_dict

    if "decoder" not in _WORKER:
        _WORKER["decoder"] = BeamDecoder(_WORKER["cfg"], tokenizer_from_dict(_WORKER["tokenizer"]))
    return _WORKER["decoder"]


def _worker_ready() -> None:
    """Build this worker's decoder and return nothing (a decoder cannot travel back through the pool's pipe)."""
    _worker_decoder()


def _worker_decode(log_probs, n: int) -> Hypothesis:
    """One utterance's best hypothesis: ``log_probs`` a (T', V) float32 array."""
    return _worker_decoder().decode(torch.from_numpy(log_probs).unsqueeze(0), torch.tensor([n]))[0]  # (1, T', V)


class ParallelBeamDecoder:
    """BeamDecoder's search in ``jobs`` processes, each with its own decoder (and so its own copy of the LM and
    lexicon); the same hypotheses as one BeamDecoder, in order. Processes, not threads: flashlight's search
    holds the GIL (two threads decoding at once took 0.92x the time of one after the other).

    ``submit`` hands a batch to the workers and returns its futures at once, so that a caller can run the
    model on the next batch meanwhile (``asr.evaluate.infer`` does); ``decode`` waits for them.
    """

    def __init__(self, cfg, tokenizer: Tokenizer, jobs: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if jobs < 2:
            raise ValueError(f"jobs={jobs}: use BeamDecoder for one process")
        # spawn, not fork: a forked child of a process whose OpenMP threads have run can hang in its first
        # parallel region
        self._pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_init, initargs=(cfg, tokenizer.to_dict()))
        try:
            self._pool.submit(_worker_ready).result()  # a decoder it cannot build fails now, before any work
        except BaseException:
            self.close()
            raise

    def submit(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list:
        """(B, T, V) log-probs and (B,) valid frame counts -> one future per utterance (its Hypothesis)."""
        return [self._pool.submit(_worker_decode, log_probs[b, :n].float().numpy().copy(), n)
                for b, n in enumerate(lengths.tolist())]

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Hypothesis]:
        return [f.result() for f in self.submit(log_probs, lengths)]

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
