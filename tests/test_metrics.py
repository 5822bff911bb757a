import jiwer
import pytest

from asr.metrics import cer, char_errors, wer, word_errors

PAIRS = [
    ("the cat sat on the mat", "the cat sat on mat"),
    ("hello world", "hello there world"),
    ("a b c d", "x y"),
    ("one two three", "one two three"),
    ("seven", ""),
]


def test_wer_equals_jiwer():
    refs, hyps = zip(*PAIRS)
    assert wer(list(refs), list(hyps)) == pytest.approx(jiwer.wer(list(refs), list(hyps)))
    assert cer(list(refs), list(hyps)) == pytest.approx(jiwer.cer(list(refs), list(hyps)))


def test_counts():
    e = word_errors("a b c d", "a x c d e")
    assert (e.substitutions, e.deletions, e.insertions, e.ref_len) == (1, 0, 1, 4)
    e = word_errors("a b c d", "a c d")
    assert (e.substitutions, e.deletions, e.insertions, e.errors, e.rate) == (0, 1, 0, 1, 0.25)
    assert char_errors("abc", "abd").errors == 1


def test_empty_reference_counts_insertions():
    assert word_errors("", "extra words").insertions == 2


def test_top_errors_counts_jiwer_alignments_over_utterances():
    from asr.evaluate import top_errors

    pairs = [("the cat sat", "the bat sat on"), ("a b c d", "a c d"), ("the cat", "the bat"), ("the dog", "a dog"),
             ("", "noise"), ("one big red bus", "one bus"), ("x y z", "p q z")]  # multi-word chunks count per word
    rows = []
    for ref, hyp in pairs:
        w = word_errors(ref, hyp)
        rows.append({"ref": ref, "hyp": hyp, "sub": w.substitutions, "del": w.deletions, "ins": w.insertions})
    top = top_errors(rows, 10)
    assert top == {"substitutions": [("cat -> bat", 2), ("the -> a", 1), ("x -> p", 1), ("y -> q", 1)],
                   "deletions": [("b", 1), ("big", 1), ("red", 1)], "insertions": [("on", 1)]}
    for kind, key in (("substitutions", "sub"), ("deletions", "del"), ("insertions", "ins")):  # the report's counts
        assert sum(c for _, c in top[kind]) == sum(r[key] for r in rows if r["ref"])
    assert top_errors(rows, 1)["substitutions"] == [("cat -> bat", 2)]
    assert top_errors([], 3) == {"substitutions": [], "deletions": [], "insertions": []}
