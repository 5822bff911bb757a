"""Beam search on hand-made log-probs: agreement with greedy, LM and lexicon effects, configuration."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("flashlight.lib.text.decoder")

from asr.beam import BeamDecoder, is_char_lm, lm_vocabulary, write_lexicon  # noqa: E402
from asr.config import DecoderConfig, compose, to_dataclass  # noqa: E402
from asr.decode import GreedyDecoder, build_decoder  # noqa: E402
from asr.errors import UserError  # noqa: E402
from asr.lm import build_lm, read_arpa  # noqa: E402
from asr.text import CharTokenizer  # noqa: E402

TOK = CharTokenizer()
LM_TEXT = """the street was long
the street was wide
a street in the town
she walked down the street
the cat sat on the mat
the town was quiet
"""


def emissions(text: str, confusions: dict[int, dict[str, float]] | None = None, blanks: int = 1) -> torch.Tensor:
    """(T, V) log-probs spelling ``text``: each character in one frame (p 0.99) followed by ``blanks``
    blank frames. ``confusions[i]`` replaces the distribution of character i, e.g. {"a": 0.55, "e": 0.45}."""
    rows = []
    for i, ch in enumerate(text):
        probs = (confusions or {}).get(i, {ch: 0.99})
        rows.append({TOK.tokens.index(sym): p for sym, p in probs.items()})
        rows.extend([{TOK.blank: 0.99}] * blanks)
    return log_probs(rows, len(TOK))


def log_probs(rows: list[dict[int, float]], size: int) -> torch.Tensor:
    """(T, size) log-probs: frame t has probability rows[t][i] for token i, 1e-6 elsewhere, renormalized."""
    lp = torch.full((len(rows), size), 1e-6)
    for t, probs in enumerate(rows):
        for i, p in probs.items():
            lp[t, i] = p
    return (lp / lp.sum(-1, keepdim=True)).log()


def decode(decoder, lp: torch.Tensor):
    return decoder.decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]  # (T, V) -> (1, T, V)


def beam(**kw) -> BeamDecoder:
    return BeamDecoder(DecoderConfig(type="beam", **kw), TOK)


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("beam")
    (d / "text.txt").write_text(LM_TEXT)
    return build_lm(d / "text.txt", 3, d / "lm.arpa", backend="python").path


def test_unambiguous_path_gives_greedy_output():
    lp = emissions(" hello  world", blanks=2)  # leading and double spaces, a double letter
    g, b = decode(GreedyDecoder(TOK), lp), decode(beam(), lp)
    assert b.text == g.text == "hello world"
    assert b.tokens == g.tokens and b.frames == g.frames
    assert b.score == pytest.approx(g.score, abs=1e-4)  # one path dominates: same log-probability


def test_batch_with_padding_and_empty_utterance():
    a, b = emissions("cat"), emissions("the mat")
    lp = torch.full((3, b.shape[0], len(TOK)), math.log(1 / len(TOK)))  # padding: uniform noise
    lp[0, : a.shape[0]], lp[1] = a, b
    hyps = beam().decode(lp, torch.tensor([a.shape[0], b.shape[0], 0]))
    assert [h.text for h in hyps] == ["cat", "the mat", ""]
    assert all(f < a.shape[0] for f in hyps[0].frames)


def test_lm_prefers_a_word_over_an_acoustically_better_non_word(lm):
    lp = emissions("the street", {8: {"a": 0.55, "e": 0.45}})  # "streat" is slightly more likely
    assert decode(GreedyDecoder(TOK), lp).text == "the streat"
    assert decode(beam(), lp).text == "the streat"  # no LM: the acoustics decide
    for free in (True, False):
        assert decode(beam(lm=str(lm), lexicon_free=free), lp).text == "the street"
    assert decode(beam(lm=str(lm), lm_weight=0.0, lexicon_free=True, oov_score=0.0), lp).text == "the streat"
    # the default OOV penalty alone (lexicon-free, LM weight 0) also prefers the known word
    assert decode(beam(lm=str(lm), lm_weight=0.0, lexicon_free=True), lp).text == "the street"
    # by default an LM brings a lexicon of its words: "streat" cannot come out even at LM weight 0
    assert decode(beam(lm=str(lm), lm_weight=0.0), lp).text == "the street"


def test_out_of_vocabulary_words_survive_lexicon_free_decoding(lm):
    lp = emissions("the zorblat was long")
    assert decode(beam(lm=str(lm), lexicon_free=True), lp).text == "the zorblat was long"
    closed = decode(beam(lm=str(lm)), lp).text.split()  # the default: only the LM's words
    assert "zorblat" not in closed and set(closed) <= set(LM_TEXT.split())
    assert decode(beam(lm=str(lm), hotwords=["zorblat"]), lp).text == "the zorblat was long"  # hotwords join it


def test_oov_score_is_added_once_per_unknown_word(lm):
    """Lexicon-free with an LM: a word outside the LM's vocabulary costs oov_score once, known words nothing."""
    lp = emissions("the zorblat was long")
    free = {oov: decode(beam(lm=str(lm), lexicon_free=True, oov_score=oov), lp) for oov in (0.0, -4.0)}
    assert free[0.0].text == free[-4.0].text == "the zorblat was long"
    assert free[-4.0].score == pytest.approx(free[0.0].score - 4.0, abs=1e-3)
    known = emissions("the street was long")
    assert decode(beam(lm=str(lm), lexicon_free=True, oov_score=-4.0), known).score == pytest.approx(
        decode(beam(lm=str(lm), lexicon_free=True, oov_score=0.0), known).score, abs=1e-3)


def test_lexicon_restricts_output_to_lexicon_words(lm, tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    assert write_lexicon(["the", "cat", "hat", "The", "sat"], lexicon) == 4
    lp = emissions("the cbt sat", {5: {"b": 0.6, "a": 0.4}})
    assert decode(GreedyDecoder(TOK), lp).text == "the cbt sat"
    for kw in ({}, {"lm": str(lm)}):
        hyp = decode(beam(lexicon=str(lexicon), **kw), lp)
        assert hyp.text == "the cat sat"
        assert hyp.tokens == TOK.encode("the cat sat")
    out = decode(beam(lexicon=str(lexicon)), emissions("dog mat"))  # nothing in the lexicon fits well
    assert set(out.text.split()) <= {"the", "cat", "hat", "sat"}


def test_lexicon_and_lexicon_free_give_the_same_lm_score(lm, tmp_path):
    """The word-LM adapter of the lexicon-free mode scores a sentence as flashlight's lexicon mode does."""
    lexicon = tmp_path / "lexicon.txt"
    write_lexicon(LM_TEXT.split(), lexicon)
    lp = emissions("the cat sat on the mat")
    free = decode(beam(lm=str(lm), word_score=0.5, lexicon_free=True), lp)
    lex = decode(beam(lm=str(lm), word_score=0.5, lexicon=str(lexicon)), lp)
    auto = decode(beam(lm=str(lm), word_score=0.5), lp)  # the lexicon of the LM's words
    assert free.text == lex.text == auto.text == "the cat sat on the mat"
    assert free.score == pytest.approx(lex.score, abs=1e-3) and auto.score == pytest.approx(lex.score, abs=1e-3)


def test_a_last_word_cut_off_by_pruning_is_searched_again(tmp_path):
    """The pruning keeps only "hell" (its "o" is 14 nats below the rest): no hypothesis can take the closing
    separator. A wider second search completes the word instead of returning a non-word: a wider threshold first,
    then also a wider beam over every token."""
    lexicon = tmp_path / "lexicon.txt"
    write_lexicon(["hello", "world"], lexicon)
    lp = emissions("world hell")
    narrow = BeamDecoder(DecoderConfig(type="beam", lexicon=str(lexicon)), TOK, _retry=False)
    assert decode(narrow, lp).score < -1e29, "the first search ends in no complete word"
    dec = beam(lexicon=str(lexicon))
    hyp = decode(dec, lp)
    assert hyp.text == "world hello" and -30 < hyp.score < -10
    assert all(dec._wide)  # "o" is not among the frame's 8 best tokens: the widest search, every token, found it
    # "o" second best in its frame, 11.5 nats below "x", which only a longer word ("hellxyz") continues: the 5x
    # wider threshold alone completes "hello"
    write_lexicon(["hello", "world", "hellxyz"], lexicon)
    lp = emissions("world hello", {10: {"x": 1 - 1e-5, "o": 1e-5}})
    assert decode(BeamDecoder(DecoderConfig(type="beam", lexicon=str(lexicon)), TOK, _retry=False), lp).score < -1e29
    dec = beam(lexicon=str(lexicon))
    assert decode(dec, lp).text == "world hello" and dec._wide[0] is not None and dec._wide[1] is None


def test_lexicon_look_ahead_is_the_unigram_score_not_the_sentence_start_one(lm):
    """Inside a word the lexicon search looks ahead with the best unigram LM score of the words it may become
    (as the lexicon-free adapter does); torchaudio's trie used p(word | <s>), which under-rates words that
    seldom start a sentence ("street": never, in LM_TEXT)."""
    dec = beam(lm=str(lm))
    kenlm, words = dec._loaded["kenlm"], dec._loaded["word_dict"]
    node = dec._ctc.trie.search([dec.tokens.index(ch) for ch in "stree"])  # only "street" starts so
    unigram = kenlm.score(kenlm.start(True), words.get_index("street"))[1]
    at_start = kenlm.score(kenlm.start(False), words.get_index("street"))[1]
    assert node.max_score == pytest.approx(unigram, abs=1e-4) and at_start < unigram - 0.1


def test_write_lexicon_format(tmp_path):
    n = write_lexicon(["Don't", "well-known", "naïve", "don't", "x3"], tmp_path / "lex.txt")
    lines = (tmp_path / "lex.txt").read_text().splitlines()
    assert n == 5 and lines == ["don't d o n ' t |", "well w e l l |", "known k n o w n |", "naive n a i v e |",
                                "x x |"]


def test_hotwords_lift_a_named_word(tmp_path):
    lp = emissions("hi mary", {4: {"e": 0.6, "a": 0.4}})
    assert decode(beam(), lp).text == "hi mery"
    assert decode(beam(hotwords=["Mary"], hotword_score=2.0), lp).text == "hi mary"
    lexicon = tmp_path / "lex.txt"
    write_lexicon(["hi", "mary", "mery"], lexicon)
    assert decode(beam(lexicon=str(lexicon)), lp).text == "hi mery"
    assert decode(beam(lexicon=str(lexicon), hotwords=["mary"], hotword_score=2.0), lp).text == "hi mary"


def test_nbest_distinct_and_sorted():
    lp = emissions("cat", {1: {"a": 0.5, "o": 0.3, "u": 0.2}})
    hyps = beam(nbest=3).decode_nbest(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    assert [h.text for h in hyps] == ["cat", "cot", "cut"]
    assert hyps[0].score >= hyps[1].score >= hyps[2].score


def test_only_the_paths_needed_become_hypotheses(monkeypatch):
    """flashlight returns its whole final beam; only as many paths as it takes to find nbest distinct texts are turned
    into hypotheses (a Python loop over the frames each: a quarter of the plain search's time on the main job's
    log-probs), and the best text is the same."""
    lp = emissions("cat", {1: {"a": 0.5, "o": 0.3, "u": 0.2}})
    made = []
    real = BeamDecoder._hypothesis
    monkeypatch.setattr(BeamDecoder, "_hypothesis", lambda self, r, n: made.append(1) or real(self, r, n))
    x = beam()._with_closing_frame(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    assert len(beam()._search_one(x, lp.shape[0])) == 3  # the whole final beam: cat, cot, cut
    assert [h.text for h in beam(nbest=1).decode_nbest(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]] == ["cat"]
    assert len(made) == 1  # the other two paths were left alone
    made.clear()
    hyps = beam(nbest=3).decode_nbest(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    assert [h.text for h in hyps] == ["cat", "cot", "cut"] and len(made) == 3


@pytest.mark.parametrize("tokens", [None, 8])
def test_plain_search_tries_only_the_tokens_token_prune_keeps(tokens):
    """With token_prune, flashlight is asked to try no more tokens per frame than the utterance's fullest frame keeps
    (three here: a, o, u within 5 nats of the best), never more than beam_size_token; the n best are those of the
    search that tries them all, scores and frames included."""
    g = torch.Generator().manual_seed(0)
    lp = emissions("the cat sat", {5: {"a": 0.5, "o": 0.3, "u": 0.2}, 9: {"a": 0.6, "e": 0.4}})
    lp = (lp + 0.5 * torch.randn(lp.shape, generator=g)).log_softmax(-1)  # noisy, but most tokens far below
    fast, full = beam(beam_size_token=tokens, nbest=5), beam(beam_size_token=tokens, nbest=5)
    full._search_for = lambda x, n: full._ctc  # every frame tries beam_size_token tokens (all when None)
    lengths = torch.tensor([lp.shape[0]])
    got, want = fast.decode_nbest(lp.unsqueeze(0), lengths)[0], full.decode_nbest(lp.unsqueeze(0), lengths)[0]
    assert [(h.text, h.frames, h.score) for h in got] == [(h.text, h.frames, h.score) for h in want]
    x = fast._with_closing_frame(fast._with_added_sep(lp.unsqueeze(0)), lengths)[0]
    kept = int((x >= x.max(-1, keepdim=True).values - 5).sum(-1).max())
    assert 1 < kept < (tokens or x.shape[-1]) and list(fast._by_tokens) == [kept]
    unpruned = beam(beam_size_token=tokens, token_prune=None)
    assert unpruned._search_for(x, lp.shape[0]) is unpruned._ctc  # without token_prune every frame may keep them all


@pytest.mark.parametrize("kind", ["word", "char"])
def test_lexicon_free_lm_search_with_lm_token_prune_equals_the_full_search(kind, lm, char_lm):
    """With an LM and no lexicon, tokens more than lm_token_prune below their frame's best are dropped, flashlight
    tries as many per frame as the fullest frame keeps, and (word LM) the search runs frame by frame so that our
    LM adapter answers impossible tokens at once: the n best are those of one search over every token, scores and
    frames included."""
    g = torch.Generator().manual_seed(0)
    lp = emissions("the street was long", {4: {"s": 0.6, "z": 0.4}, 8: {"e": 0.5, "a": 0.3, "i": 0.2}})
    lp = (lp + 0.5 * torch.randn(lp.shape, generator=g)).log_softmax(-1)  # noisy, but most tokens far below
    kw = dict(lm=str(lm), lexicon_free=True) if kind == "word" else dict(lm=str(char_lm), lm_weight=0.5)
    fast, full = beam(nbest=5, **kw), beam(nbest=5, **kw)
    assert fast.token_prune == 8.0  # lm_token_prune, not token_prune
    full._search_for = lambda x, n: full._ctc  # beam_size_token (8) tokens in every frame
    full._stepped = lambda decoder, x, n: decoder.decode(x.data_ptr(), n + 1, x.shape[-1])  # the LM scores them all
    answered = []
    if kind == "word":
        score = fast._lm.score
        fast._lm.score = lambda state, token: (answered.append(not fast._lm.viable[token]), score(state, token))[1]
    lengths = torch.tensor([lp.shape[0]])
    got, want = fast.decode_nbest(lp.unsqueeze(0), lengths)[0], full.decode_nbest(lp.unsqueeze(0), lengths)[0]
    assert [(h.text, h.frames) for h in got] == [(h.text, h.frames) for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4)
    assert "the street was long" in {h.text for h in got}
    assert fast._by_tokens and all(k < 8 for k in fast._by_tokens)  # fewer tokens tried than beam_size_token
    if kind == "word":
        assert any(answered) and not all(answered) and fast._lm.viable is None  # told per frame, reset after


def test_reweighted_shares_the_loaded_lm(lm):
    d = beam(lm=str(lm), lexicon_free=True)
    d2 = d.reweighted(lm_weight=0.0, word_score=1.0, oov_score=0.0)
    assert d2._loaded["kenlm"] is d._loaded["kenlm"] and d2.cfg.lm_weight == 0.0
    closed = beam(lm=str(lm))
    assert closed.reweighted(lm_weight=0.5).lexicon == closed.lexicon  # the LM's lexicon is written once
    lp = emissions("the street", {8: {"a": 0.55, "e": 0.45}})
    assert decode(d2, lp).text == "the streat"
    with pytest.raises(ValueError):
        d.reweighted(lm="other.arpa")


def test_lm_vocabulary_of_arpa(lm):
    words = lm_vocabulary(lm)
    assert {"<s>", "</s>", "<unk>", "street", "mat"} <= set(words) and "streat" not in words


def test_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        beam(lm=str(tmp_path / "missing.arpa"))
    (tmp_path / "bad.txt").write_text("word W O R D |\n")
    with pytest.raises(UserError, match="not in the model's token set"):
        beam(lexicon=str(tmp_path / "bad.txt"))
    with pytest.raises(UserError, match="word-separator token"):
        BeamDecoder(DecoderConfig(type="beam"), CharTokenizer(tokens=["<blank>", "a", "b"]))


def test_beam_config_group_composes_and_builds():
    cfg = to_dataclass(compose(["decoder=beam", "decoder.beam_size=8"])).decoder
    assert cfg.type == "beam" and cfg.beam_size == 8 and cfg.unk_score == -math.inf
    assert isinstance(build_decoder(cfg, TOK), BeamDecoder)
    assert to_dataclass(compose([])).decoder.type == "greedy"


def test_cli_decoder_flags(tmp_path, lm):
    from asr.cli import _decoder_config, build_parser

    def parse(*argv):
        return build_parser().parse_args(["eval", "--model", "m.pt", "--manifest", "x.jsonl", *argv])

    cfg = _decoder_config(parse("--lm", str(lm), "--lm-weight", "0.7", "--word-score", "1.5", "--beam-size", "20",
                                "--hotword", "mary"))
    assert (cfg.type, cfg.lm, cfg.lm_weight, cfg.word_score, cfg.beam_size, cfg.hotwords) == \
           ("beam", str(lm), 0.7, 1.5, 20, ["mary"])
    assert _decoder_config(parse()).type == "greedy"
    with pytest.raises(UserError, match="--lm"):
        _decoder_config(parse("--decoder", "greedy", "--lm", str(lm)))
    yaml = tmp_path / "tuned.yaml"
    yaml.write_text("type: beam\nlm_weight: 0.3\nword_score: 2.0\n")
    cfg = _decoder_config(parse("--decoder-config", str(yaml), "--word-score", "1"))
    assert (cfg.type, cfg.lm_weight, cfg.word_score) == ("beam", 0.3, 1.0)
    yaml.write_text("lm_wieght: 0.3\n")
    with pytest.raises(UserError, match="lm_wieght"):
        _decoder_config(parse("--decoder-config", str(yaml)))
    assert isinstance(parse(), argparse.Namespace) and replace(cfg) == cfg


@pytest.mark.parametrize("with_lm", [False, True])
def test_long_input_searched_in_pieces_gives_the_uncut_path(with_lm, lm):
    lp = emissions(" ".join(["the street was long", "the cat sat on the mat", "the town was quiet"] * 3))
    kw = {"lm": str(lm), "lexicon_free": True, "lm_weight": 0.5} if with_lm else {}
    whole, cut = beam(max_search_frames=0, **kw), beam(max_search_frames=40, **kw)
    assert len(cut._cuts(lp)) >= lp.shape[0] // 40, "the input is long enough to be cut"
    w, c = decode(whole, lp), decode(cut, lp)
    assert c.text == w.text == decode(GreedyDecoder(TOK), lp).text
    assert c.tokens == w.tokens and c.frames == w.frames, "the separator at each cut frame is put back"
    if not with_lm:  # the cut frames' own log-probs (log 0.99 each) are the only difference
        assert c.score == pytest.approx(w.score, abs=0.02 * len(cut._cuts(lp)) + 1e-3)


def test_cut_in_a_pause_without_separator_splits_words_there():
    pause = emissions("a", blanks=60)[1:]  # 60 confident blank frames
    lp = torch.cat([emissions("hello"), pause, emissions("world")])  # frames 0-9, 10-69, 70-79
    dec = beam(max_search_frames=40)
    cuts = dec._cuts(lp)
    assert cuts and all(10 <= k < 70 for k in cuts), "cuts fall in the pause"
    h = decode(dec, lp)
    assert h.text == "hello world" and h.frames == sorted(h.frames)


def test_max_search_frames_below_ten_is_refused():
    with pytest.raises(UserError, match="max_search_frames=5"):
        beam(max_search_frames=5)


@pytest.mark.parametrize("change, message", [
    ({"beam_size": 0}, "decoder.beam_size=0: use 1 or more"), ({"beam_size_token": 0}, "beam_size_token=0"),
    ({"nbest": 0}, "decoder.nbest=0"),
])
def test_beam_sizes_below_one_are_refused(change, message):
    with pytest.raises(UserError, match=message):
        BeamDecoder(replace(DecoderConfig(type="beam"), **change), CharTokenizer())


def test_unigram_lm_is_refused_at_build_and_at_load(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("a b c\nb c a\n")
    with pytest.raises(UserError, match="--order 1: use 2..6"):
        build_lm(text, 1, tmp_path / "lm.arpa")
    unigram = tmp_path / "uni.arpa"  # a valid ARPA file KenLM still cannot use
    unigram.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\t<s>\t0\n-0.5\ta\n-0.5\t</s>\n\n\\end\\\n")
    with pytest.raises(UserError, match="uni.arpa: KenLM cannot load this LM .*bigram"):
        BeamDecoder(DecoderConfig(type="beam", lm=str(unigram), lexicon_free=True), CharTokenizer())


# ---------------------------------------------------------------------------------------------
# BPE models: no separator token, a piece with "▁" starts a word


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    pytest.importorskip("sentencepiece")
    from asr.text import train_bpe

    lines = LM_TEXT.split("\n") * 4 + ["zorblat streat mery"]  # pieces for the made-up words too
    return train_bpe([x for x in lines if x], 48, tmp_path_factory.mktemp("bpe") / "bpe.model")


def bpe_emissions(bpe, text: str, rival: str | None = None, p: float = 0.99) -> torch.Tensor:
    """(T, V) log-probs of ``text``'s pieces, each in one frame (probability ``p``) then a blank frame; with
    ``rival``, its pieces take the rest of each frame (1 - p), the shorter sequence padded with blanks."""
    a, b = bpe.encode(text), bpe.encode(rival) if rival else []
    rows = []
    for i in range(max(len(a), len(b))):
        probs = {a[i] if i < len(a) else bpe.blank: p}
        if rival:
            probs[b[i] if i < len(b) else bpe.blank] = probs.get(b[i] if i < len(b) else bpe.blank, 0) + 1 - p
        rows += [probs, {bpe.blank: 0.99}]
    return log_probs(rows, len(bpe))


def bpe_beam(bpe, **kw) -> BeamDecoder:
    return BeamDecoder(DecoderConfig(type="beam", **kw), bpe)


def test_bpe_unambiguous_path_gives_greedy_output(bpe):
    lp = bpe_emissions(bpe, "the street was long")
    g, b = decode(GreedyDecoder(bpe), lp), decode(bpe_beam(bpe), lp)
    assert b.text == g.text == "the street was long"
    assert b.tokens == g.tokens == bpe.encode("the street was long") and b.frames == g.frames
    assert b.score == pytest.approx(g.score, abs=1e-4)


def test_bpe_lexicon_is_pieces_without_separator(bpe, tmp_path):
    assert write_lexicon(["Street", "the"], tmp_path / "lex.txt", bpe) == 2
    lines = (tmp_path / "lex.txt").read_text().splitlines()
    assert lines == [f"{w} {' '.join(bpe.tokens[i] for i in bpe.encode(w))}" for w in ("street", "the")]
    assert all(line.split()[1].startswith("\u2581") and "|" not in line.split() for line in lines)


def test_bpe_lm_prefers_a_word_over_an_acoustically_better_non_word(lm, bpe):
    lp = bpe_emissions(bpe, "the streat was long", rival="the street was long", p=0.55)
    assert decode(GreedyDecoder(bpe), lp).text == decode(bpe_beam(bpe), lp).text == "the streat was long"
    for free in (True, False):
        assert decode(bpe_beam(bpe, lm=str(lm), lexicon_free=free), lp).text == "the street was long"


def test_bpe_lexicon_and_lexicon_free_give_the_same_lm_score(lm, bpe):
    """The word-LM adapter ends a word at a "▁" piece and scores the sentence as flashlight's lexicon mode."""
    lp = bpe_emissions(bpe, "the cat sat on the mat")
    free = decode(bpe_beam(bpe, lm=str(lm), word_score=0.5, lexicon_free=True), lp)
    auto = decode(bpe_beam(bpe, lm=str(lm), word_score=0.5), lp)  # the lexicon of the LM's words, in pieces
    assert free.text == auto.text == "the cat sat on the mat"
    assert free.score == pytest.approx(auto.score, abs=1e-3)
    no_lm = decode(bpe_beam(bpe), lp).score
    lm_only = decode(bpe_beam(bpe, lm=str(lm), lexicon_free=True), lp).score
    assert lm_only < no_lm - 1.0, "the LM's log-probabilities were added"
    assert free.score == pytest.approx(lm_only + 6 * 0.5, abs=1e-3), "and the word score once per word"


def test_bpe_out_of_vocabulary_words(lm, bpe):
    lp = bpe_emissions(bpe, "the zorblat was long")
    assert decode(bpe_beam(bpe, lm=str(lm), lexicon_free=True), lp).text == "the zorblat was long"
    closed = decode(bpe_beam(bpe, lm=str(lm)), lp).text.split()
    assert "zorblat" not in closed and set(closed) <= set(LM_TEXT.split())


def test_bpe_long_input_searched_in_pieces_gives_the_uncut_path(lm, bpe):
    lp = bpe_emissions(bpe, " ".join(["the street was long", "the cat sat on the mat"] * 4))
    for kw in ({}, {"lm": str(lm)}):
        whole, cut = bpe_beam(bpe, max_search_frames=0, **kw), bpe_beam(bpe, max_search_frames=30, **kw)
        assert cut._cuts(cut._with_added_sep(lp.unsqueeze(0))[0]), "the input is long enough to be cut"
        w, c = decode(whole, lp), decode(cut, lp)
        assert c.text == w.text == decode(GreedyDecoder(bpe), lp).text
        assert c.tokens == w.tokens


# ---------------------------------------------------------------------------------------------
# Character LMs (asr lm build --unit char): lexicon-free, scored by KenLM in flashlight


@pytest.fixture(scope="module")
def char_lm(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("char-lm")
    (d / "text.txt").write_text(LM_TEXT)
    return build_lm(d / "text.txt", 6, d / "char6.arpa", backend="python", unit="char").path


def test_char_lm_is_recognized_by_its_vocabulary(lm, char_lm):
    assert is_char_lm(lm_vocabulary(char_lm)) and not is_char_lm(lm_vocabulary(lm))
    assert beam(lm=str(char_lm)).char_lm and not beam(lm=str(lm)).char_lm


def test_char_lm_prefers_a_word_but_lets_unseen_words_through(char_lm):
    lp = emissions("the street", {8: {"a": 0.55, "e": 0.45}})  # "streat" is slightly more likely
    assert decode(beam(lm=str(char_lm), lm_weight=0.0), lp).text == "the streat"
    assert decode(beam(lm=str(char_lm)), lp).text == "the street"
    lp = emissions("the zorblat was long")  # no lexicon: a word the LM never saw comes out when the audio is clear
    assert decode(beam(lm=str(char_lm)), lp).text == "the zorblat was long"


@pytest.mark.parametrize("lm_weight, word_score", [(1.0, 0.0), (0.7, -1.5)])
def test_char_lm_score_is_acoustics_plus_weighted_letter_log10_probs(char_lm, lm_weight, word_score):
    """One dominant path: its score = acoustic log-prob + lm_weight * log10 p(t h e | c a t | </s>) + word_score
    per separator, the LM's probabilities read from the ARPA file by our own reader."""
    lp = emissions("the cat")
    arpa = read_arpa(char_lm)
    letters, ctx, lm_total = [*"the|cat|", "</s>"], ("<s>",), 0.0
    for c in letters:
        lm_total += arpa.logprob(c, ctx)
        ctx = (*ctx, c)[-(arpa.order - 1):]
    h = decode(beam(lm=str(char_lm), lm_weight=lm_weight, word_score=word_score), lp)
    assert h.text == "the cat"
    acoustic = decode(GreedyDecoder(TOK), lp).score
    assert h.score == pytest.approx(acoustic + lm_weight * lm_total + 2 * word_score, abs=1e-3)


def test_char_lm_errors(char_lm, bpe, tmp_path):
    write_lexicon(["the", "cat"], tmp_path / "lex.txt")
    with pytest.raises(UserError, match="character LM; a lexicon needs a word LM"):
        beam(lm=str(char_lm), lexicon=str(tmp_path / "lex.txt"))
    with pytest.raises(UserError, match="hotwords need a word LM"):
        beam(lm=str(char_lm), hotwords=["zorblat"])
    with pytest.raises(UserError, match="BPE pieces"):
        bpe_beam(bpe, lm=str(char_lm))


def test_token_prune_skips_far_tokens_in_plain_search_only(lm, tmp_path):
    """decoder.token_prune: without an LM, lexicon or hotwords, tokens more than token_prune below their frame's best
    are never tried; an LM may need them (lm_token_prune, a wider margin), a lexicon or a hotword too (kept)."""
    lp = emissions("the street", {8: {"a": 0.994, "e": 0.006}})  # "e" is 5.1 below "a"
    texts = {h.text for h in beam(nbest=5, token_prune=None).decode_nbest(lp.unsqueeze(0), torch.tensor([len(lp)]))[0]}
    assert "the street" in texts
    pruned = beam(nbest=5, token_prune=5.0).decode_nbest(lp.unsqueeze(0), torch.tensor([len(lp)]))[0]
    assert "the street" not in {h.text for h in pruned} and pruned[0].text == "the streat"
    # the LM's words beat the acoustics only if "e" is still tried (lexicon-free: "streat" pays the OOV score, -10):
    # lm_token_prune (8) keeps it, token_prune does not apply with an LM
    assert decode(beam(lm=str(lm), lexicon_free=True, token_prune=5.0), lp).text == "the street"
    assert decode(beam(lm=str(lm), lexicon_free=True, lm_token_prune=5.0), lp).text == "the streat"
    lexicon = tmp_path / "lexicon.txt"
    write_lexicon(["the", "street"], lexicon)
    assert beam(lm=str(lm)).token_prune is None and beam(lexicon=str(lexicon)).token_prune is None
    assert beam(hotwords=["street"]).token_prune is None and beam().token_prune == 5.0  # the default
    assert beam(lm=str(lm), lexicon_free=True, hotwords=["street"]).token_prune is None
    assert beam(lm=str(lm), lexicon_free=True, lm_token_prune=5.0).token_prune == 5.0
    # within the margin, the same best path as the full search
    close = emissions("the street", {8: {"a": 0.55, "e": 0.45}})
    a, b = decode(beam(token_prune=None), close), decode(beam(), close)
    assert (a.text, a.frames) == (b.text, b.frames) and a.score == pytest.approx(b.score, abs=1e-4)
    with pytest.raises(UserError, match="decoder.token_prune=0"):
        beam(token_prune=0)
    with pytest.raises(UserError, match="decoder.lm_token_prune=-1"):
        beam(lm_token_prune=-1)
