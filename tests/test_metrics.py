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
