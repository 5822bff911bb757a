"""LibriSpeech's official LMs (OpenSLR 11) are upper-case ARPA files in gzip: beam search refuses them with the
fix in the message, `asr lm convert` makes them usable, and `asr download librispeech-lm` fetches and converts."""

from __future__ import annotations

import gzip
import hashlib
import re

import pytest
import torch

pytest.importorskip("flashlight.lib.text.decoder")

from asr.cli import main  # noqa: E402
from asr.config import DecoderConfig  # noqa: E402
from asr.corpus.download import download_librispeech_lm  # noqa: E402
from asr.errors import UserError  # noqa: E402
from asr.lm import build_lm, convert_arpa, read_arpa  # noqa: E402
from asr.text import CharTokenizer  # noqa: E402
from http_mirror import Mirror, upper_case_arpa  # noqa: E402

TOK = CharTokenizer()
TEXT = "the street was long\nthe street was wide\nshe walked down the street\ndon't stop\n"


def beam_text(lm, text: str, confusions: dict[int, dict[str, float]]) -> str:
    """The beam search's output for log-probs spelling ``text`` (one frame per character, then a blank)."""
    from asr.beam import BeamDecoder

    rows = []
    for i, ch in enumerate(text):
        row = torch.full((len(TOK),), 1e-6)
        for sym, p in confusions.get(i, {ch: 0.99}).items():
            row[TOK.tokens.index(sym)] = p
        blank = torch.full((len(TOK),), 1e-6)
        blank[TOK.blank] = 0.99
        rows += [row, blank]
    lp = (torch.stack(rows) / torch.stack(rows).sum(-1, keepdim=True)).log()
    decoder = BeamDecoder(DecoderConfig(type="beam", lm=str(lm)), TOK)
    return decoder.decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0].text


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """(lower-case ARPA, the same upper-cased as LibriSpeech's, and that gzip-compressed)."""
    d = tmp_path_factory.mktemp("lmconv")
    (d / "text.txt").write_text(TEXT)
    lower = build_lm(d / "text.txt", 3, d / "lower.arpa", backend="python").path
    upper = d / "UPPER.arpa"
    upper.write_text(upper_case_arpa(lower.read_text()))
    packed = d / "UPPER.arpa.gz"
    packed.write_bytes(gzip.compress(upper.read_bytes()))
    return lower, upper, packed


def test_convert_lower_cases_words_and_keeps_every_probability(lms, tmp_path):
    lower, upper, packed = lms
    want = read_arpa(lower)
    for src in (upper, packed):
        res = convert_arpa(src, tmp_path / f"{src.name}.out", progress=False)
        got = read_arpa(res.path)
        assert res.counts == want.header and res.lowered == len(want.probs[0]) - 2  # all but <s> and </s>
        assert got.probs == want.probs and got.backoffs == want.backoffs  # "don't" too
        assert res.path.read_text() == lower.read_text()


def test_beam_search_refuses_upper_case_and_gzip_lms_and_uses_the_converted_one(lms, tmp_path):
    lower, upper, packed = lms
    confusion = {8: {"a": 0.55, "e": 0.45}}  # "streat" sounds a little more likely than "street"
    with pytest.raises(UserError, match=r"UPPER.arpa: its words are upper case \('.*'\).*asr lm convert"):
        beam_text(upper, "the street", confusion)
    with pytest.raises(UserError, match=r"UPPER.arpa.gz: gzip-compressed.*asr lm convert"):
        beam_text(packed, "the street", confusion)
    converted = convert_arpa(packed, tmp_path / "lm.arpa", progress=False).path
    assert beam_text(converted, "the street", confusion) == beam_text(lower, "the street", confusion) == "the street"


def test_a_few_upper_case_words_warn(lms, tmp_path, capsys):
    lower = lms[0]
    mixed = tmp_path / "mixed.arpa"
    mixed.write_text(re.sub(r"\bshe\b", "She", lower.read_text()))  # one of ten words
    beam_text(mixed, "the street", {})
    assert "warning: LM" in capsys.readouterr().err


def test_convert_refuses_what_it_cannot_convert(lms, tmp_path):
    lower = lms[0]
    clash = tmp_path / "clash.arpa"
    text = lower.read_text()
    clash.write_text(text.replace("\tshe", "\tThe"))
    with pytest.raises(UserError, match="the words 'The' and 'the' differ only in case"):
        convert_arpa(clash, tmp_path / "out.arpa", progress=False)
    binary = tmp_path / "lm.bin"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\0" + bytes(64))
    with pytest.raises(UserError, match="not an ARPA file"):
        convert_arpa(binary, tmp_path / "out.arpa", progress=False)
    cut = tmp_path / "cut.arpa.gz"
    cut.write_bytes(gzip.compress(text.encode())[:-30])
    with pytest.raises(UserError, match="cut.arpa.gz: cannot read it as an ARPA file"):
        convert_arpa(cut, tmp_path / "out.arpa", progress=False)
    assert not (tmp_path / "out.arpa").exists() and not list(tmp_path.glob(".out.arpa*")), "nothing half-written"


def test_cli_convert(lms, tmp_path, capsys):
    packed = lms[2]
    assert main(["lm", "convert", str(packed), "--out", str(tmp_path / "lm.arpa")]) == 0
    assert "words lower-cased" in capsys.readouterr().out and (tmp_path / "lm.arpa").read_text() == lms[0].read_text()
    assert main(["lm", "convert", str(packed), "--out", str(packed)]) == 2
    assert "is the input file" in capsys.readouterr().err


def test_download_fetches_verifies_converts_and_skips_when_done(lms, tmp_path):
    payload = lms[2].read_bytes()
    sha = hashlib.sha256(payload).hexdigest()
    with Mirror({"/3-gram.pruned.1e-7.arpa.gz": payload}) as srv:
        out = download_librispeech_lm(["3-gram.pruned.1e-7"], tmp_path, mirror=srv.url,
                                      checksums={"3-gram.pruned.1e-7": sha}, progress=False)
        target = tmp_path / "librispeech-lm" / "3-gram.pruned.1e-7.arpa"
        assert out == {"3-gram.pruned.1e-7": target} and target.read_text() == lms[0].read_text()
        assert not list(target.parent.glob("*.gz*")), "the archive is deleted after the conversion"
        requests = len(srv.requests)
        assert download_librispeech_lm(["3-gram.pruned.1e-7"], tmp_path, mirror=srv.url,
                                       checksums={"3-gram.pruned.1e-7": "0" * 64}, progress=False) == out
        assert len(srv.requests) == requests, "a finished LM is not fetched again"
        with pytest.raises(UserError, match="sha256 of the download is .* expected"):
            download_librispeech_lm(["3-gram.pruned.1e-7"], tmp_path / "bad", mirror=srv.url,
                                    checksums={"3-gram.pruned.1e-7": "0" * 64}, progress=False)
    assert not list((tmp_path / "bad" / "librispeech-lm").glob("*"))
    with pytest.raises(UserError, match="unknown LibriSpeech LM.*5-gram.*valid: 3-gram.pruned.1e-7, 3-gram, 4-gram"):
        download_librispeech_lm(["5-gram"], tmp_path)
