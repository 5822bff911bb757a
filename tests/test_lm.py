"""The n-gram LM builder: Kneser-Ney invariants, ARPA validity, lmplz agreement, the CLI."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from asr.cli import main
from asr.errors import UserError
from asr.lm import BOS, EOS, UNK, build_lm, find_kenlm_program, read_arpa

SYLLABLES = ["ba", "ko", "mi", "tu", "re", "sa", "lo", "ne", "di", "fu"]


def toy_text(path: Path, sentences: int = 400, seed: int = 0) -> Path:
    """A Markov-chain text over 300 made-up words: Zipf-like unigrams and repeated n-grams, so every
    order has counts of counts 1..4 (real discounts, no fallback) in a few hundred sentences."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choices(SYLLABLES, k=3)) for _ in range(400)})[:300]
    weights = [1 / (i + 1) for i in range(len(words))]
    follow = {w: rng.sample(words, 6) for w in words}  # each word is followed by one of 6 others
    lines = []
    for _ in range(sentences):
        sent = rng.choices(words, weights)
        for _ in range(rng.randint(2, 9)):
            sent.append(rng.choice(follow[sent[-1]]) if rng.random() < 0.8 else rng.choices(words, weights)[0])
        lines.append(" ".join(sent).capitalize() + ".")  # capitals and a full stop: normalization must fix them
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    return toy_text(tmp_path_factory.mktemp("lm") / "text.txt")


@pytest.fixture(scope="module")
def arpa(text, tmp_path_factory) -> Path:
    return build_lm(text, 3, tmp_path_factory.mktemp("lm") / "py.arpa", backend="python").path


def test_probabilities_sum_to_one(arpa):
    """For contexts of every order, sum over the vocabulary (</s> and <unk> included, <s> not) of p(w | c) = 1."""
    lm = read_arpa(arpa)
    vocab = [g[0] for g in lm.probs[0] if g[0] != BOS]
    bigram_ctx = [g for g in lm.probs[1] if g[-1] != EOS][:3]  # seen 2-word contexts
    contexts = [(), (BOS,), (vocab[5],), bigram_ctx[0], bigram_ctx[1], bigram_ctx[2], ("zzz", vocab[3])]
    for ctx in contexts:
        total = sum(10 ** lm.logprob(w, ctx) for w in vocab)
        assert total == pytest.approx(1.0, abs=2e-5), ctx  # ARPA values carry 7 significant digits


def test_arpa_header_matches_sections_and_specials(arpa):
    lm = read_arpa(arpa)
    assert lm.header == [len(p) for p in lm.probs]
    assert {(BOS,), (EOS,), (UNK,)} <= set(lm.probs[0])
    assert lm.probs[0][(BOS,)] == 0  # <s> is only context, never predicted
    assert all(w == w.lower() and w.isalpha() for (w,) in lm.probs[0] if w not in (BOS, EOS, UNK))
    assert all(len(g) == 3 for g in lm.probs[2]) and not lm.backoffs[2]


def test_arpa_loads_in_flashlight_and_scores_agree(arpa):
    """flashlight's KenLM reads the file and gives the probabilities our reader computes."""
    KenLM = pytest.importorskip("flashlight.lib.text.decoder.kenlm").KenLM
    from flashlight.lib.text.dictionary import Dictionary

    lm = read_arpa(arpa)
    words = [g[0] for g in lm.probs[0]]
    model = KenLM(str(arpa), Dictionary(words))
    sentence = [w for w in words if not w.startswith("<")][:6] + ["nonword"]
    state, ctx = model.start(False), (BOS,)
    for w in sentence:
        state, score = model.score(state, words.index(w) if w in words else words.index(UNK))
        assert score == pytest.approx(lm.logprob(w, ctx), abs=1e-5), (w, ctx)
        ctx = (*ctx, w if w in words else UNK)
    _, end = model.finish(state)
    assert end == pytest.approx(lm.logprob(EOS, ctx), abs=1e-5)


def test_text_is_normalized_and_ids_dropped(tmp_path):
    src = tmp_path / "1272-128104.trans.txt"
    src.write_text("1272-128104-0000 MISTER QUILTER IS THE APOSTLE\nDon't   stop, Well-known!\n\n")
    res = build_lm(src, 2, tmp_path / "lm.arpa", backend="python")
    words = {g[0] for g in read_arpa(res.path).probs[0]}
    assert words == {BOS, EOS, UNK, "mister", "quilter", "is", "the", "apostle", "don't", "stop", "well", "known"}
    assert res.text.sentences == 2 and res.text.words == 9 and not res.text.dropped


@pytest.mark.skipif(find_kenlm_program("lmplz") is None, reason="lmplz not built (tools/build_kenlm.sh)")
@pytest.mark.parametrize("order", [2, 3])
def test_python_estimator_matches_lmplz(text, tmp_path, order):
    """Same n-grams, same probabilities and backoffs.

    Tolerance 1e-4 (log10): both files print 7 significant digits (1e-6 here) and lmplz computes in
    float32 (~1e-6 relative). One known difference is larger: lmplz counts the last n-gram of each
    lower order (in its suffix sort) with its raw instead of its adjusted count in the counts of
    counts (lm/builder/adjust_counts.cc, the loop after "outputs the last n-grams"), which can move
    a discount by ~1/t_k; on texts where that n-gram's two counts differ, expect up to ~3e-3.
    """
    py = read_arpa(build_lm(text, order, tmp_path / "py.arpa", backend="python").path)
    kl = read_arpa(build_lm(text, order, tmp_path / "kenlm.arpa", backend="lmplz").path)
    assert py.header == kl.header
    for n in range(order):
        assert py.probs[n].keys() == kl.probs[n].keys()
        diff = max(abs(py.probs[n][g] - kl.probs[n][g]) for g in py.probs[n])
        assert diff < 1e-4, (n + 1, diff)
        bo = max((abs(py.backoffs[n].get(g, 0) - kl.backoffs[n].get(g, 0)) for g in py.probs[n]), default=0)
        assert bo < 1e-4, (n + 1, bo)


def test_tiny_text_falls_back_to_default_discounts(tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text("a cat sat\na cat ran\n")
    lm = read_arpa(build_lm(src, 3, tmp_path / "lm.arpa", backend="python").path)
    assert "using D1, D2, D3+" in capsys.readouterr().err
    vocab = [g[0] for g in lm.probs[0] if g[0] != BOS]
    assert sum(10 ** lm.logprob(w, ("a", "cat")) for w in vocab) == pytest.approx(1.0, abs=2e-5)


def test_build_lm_errors(tmp_path):
    with pytest.raises(UserError, match="no such text file"):
        build_lm(tmp_path / "missing.txt", 3, tmp_path / "lm.arpa")
    (tmp_path / "empty.txt").write_text("123 !!!\n\n")
    with pytest.raises(UserError, match="no words"):
        build_lm(tmp_path / "empty.txt", 3, tmp_path / "lm.arpa", backend="python")
    with pytest.raises(UserError, match="order"):
        build_lm(tmp_path / "empty.txt", 0, tmp_path / "lm.arpa")


def test_cli_lm_build(text, tmp_path, capsys):
    out, lex = tmp_path / "lm" / "3gram.arpa", tmp_path / "lex.txt"
    assert main(["lm", "build", "--text", str(text), "--order", "2", "--out", str(out), "--lexicon", str(lex)]) == 0
    assert read_arpa(out).order == 2
    assert "2-gram" in capsys.readouterr().out
    assert all(line.endswith(" |") for line in lex.read_text().splitlines())


def test_cli_lm_build_missing_text(tmp_path, capsys):
    code = main(["lm", "build", "--text", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "lm.arpa")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.txt" in err and "Traceback" not in err
    assert not (tmp_path / "lm.arpa").exists()


def test_binary_lm(text, tmp_path):
    if find_kenlm_program("build_binary") is None:
        with pytest.raises(UserError, match="build_kenlm.sh"):
            build_lm(text, 2, tmp_path / "lm.bin", binary=True, backend="python")
        return
    res = build_lm(text, 2, tmp_path / "lm.bin", binary=True, backend="python")
    assert res.path.read_bytes()[:4] == b"mmap" and res.arpa == tmp_path / "lm.arpa"
    from asr.beam import lm_vocabulary

    assert sorted(lm_vocabulary(res.path)) == sorted(g[0] for g in read_arpa(res.arpa).probs[0])
    assert math.isfinite(read_arpa(res.arpa).logprob("zzz"))


def test_char_lm_spells_words_in_letters_closed_by_a_separator(tmp_path, capsys):
    (tmp_path / "text.txt").write_text("The cat.\nA cat sat\n")
    lm = read_arpa(build_lm(tmp_path / "text.txt", 4, tmp_path / "c.arpa", backend="python", unit="char").path)
    assert {g[0] for g in lm.probs[0]} == {*"thecas|", BOS, EOS, UNK}
    assert {("a", "t", "|", "s"), (BOS, "a", "|", "c"), ("e", "|", "c", "a")} <= set(lm.probs[3])
    assert ("t", "|", EOS) in lm.probs[2]  # the last word is closed too
    assert ("t", "c") not in lm.probs[1] and ("t", "|", "c") not in lm.probs[2]  # words join only through "|"
    out = tmp_path / "cli.arpa"
    assert main(["lm", "build", "--unit", "char", "--text", str(tmp_path / "text.txt"), "--out", str(out)]) == 0
    assert read_arpa(out).order == 6  # the default order for characters
    assert "read 2 sentences, 5 words" in capsys.readouterr().err
    assert main(["lm", "build", "--unit", "char", "--text", str(tmp_path / "text.txt"), "--out", str(out),
                 "--lexicon", str(tmp_path / "lex.txt")]) == 2
    assert "a character LM has none" in capsys.readouterr().err
    with pytest.raises(UserError, match="unknown LM unit"):
        build_lm(tmp_path / "text.txt", 3, tmp_path / "x.arpa", unit="piece")
