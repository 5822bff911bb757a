import pytest

from asr.text import CHARS, CharTokenizer, normalize_text


@pytest.mark.parametrize("raw, norm", [
    ("MISTER QUILTER'S MANNER", "mister quilter's manner"),
    ("Hello,   world!", "hello world"),
    ("  trailing space ", "trailing space"),
    ("well-known\tcafé", "well known cafe"),
    ("It\u2019s fine", "it's fine"),
    ("'quoted'", "quoted"),
])
def test_normalize(raw, norm):
    assert normalize_text(raw).text == norm


def test_librispeech_and_user_text_agree():
    assert normalize_text("HELLO WORLD").text == normalize_text("Hello, world.").text


def test_dropped_characters_are_reported():
    n = normalize_text("room 101 costs $5 \u4e2d")
    assert n.text == "room costs"
    assert n.dropped == "101$5\u4e2d"


def test_normalized_text_only_uses_token_set():
    n = normalize_text("Ünïcödé — ümlauts & «quotes» 3.14")
    assert set(n.text) <= set(CHARS)
    assert "  " not in n.text and n.text == n.text.strip()


def test_tokenizer_round_trip():
    tok = CharTokenizer()
    text = "the cat's hat"
    ids = tok.encode(text)
    assert tok.blank == 0 and 0 not in ids
    assert tok.decode(ids) == text
    assert CharTokenizer.from_dict(tok.to_dict()).tokens == tok.tokens
    with pytest.raises(KeyError, match="normalize"):
        tok.encode("Capital")
