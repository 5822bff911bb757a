"""Beam search in several processes (asr eval --jobs): the same hypotheses as one process, errors that say what."""

from __future__ import annotations

import gzip

import pytest
import torch

pytest.importorskip("flashlight.lib.text.decoder")

from asr.beam import BeamDecoder, ParallelBeamDecoder  # noqa: E402
from asr.cli import main  # noqa: E402
from asr.config import DecoderConfig  # noqa: E402
from asr.errors import UserError  # noqa: E402
from asr.lm import build_lm  # noqa: E402
from test_beam import LM_TEXT, TOK, emissions  # noqa: E402


def test_two_processes_give_the_hypotheses_of_one(tmp_path):
    (tmp_path / "text.txt").write_text(LM_TEXT)
    lm = build_lm(tmp_path / "text.txt", 3, tmp_path / "lm.arpa", backend="python").path
    texts = ["the street was long", "a strret in the town", "the cat sat on the mat", "the town was quiet"]
    lps = [emissions(t) for t in texts]
    lengths = torch.tensor([lp.shape[0] for lp in lps])
    batch = torch.zeros(len(lps), int(lengths.max()), len(TOK))  # (B, T, V), padded with zeros
    for b, lp in enumerate(lps):
        batch[b, : lp.shape[0]] = lp
    def same(h):  # paths of exactly equal score come out in either order (seen where the lexicon forced words on
        return h.text, h.score  # an unknown one): the same text, its tokens timed or separated differently

    for cfg in (DecoderConfig(type="beam", lm=str(lm)), DecoderConfig(type="beam", lm=str(lm), lexicon_free=True)):
        one = BeamDecoder(cfg, TOK).decode(batch, lengths)
        many = ParallelBeamDecoder(cfg, TOK, jobs=2)
        try:
            futures = many.submit(batch, lengths)  # returns at once; the results come in order
            assert [same(f.result()) for f in futures] == [same(h) for h in one]
            assert [same(h) for h in many.decode(batch, lengths)] == [same(h) for h in one]
        finally:
            many.close()
        assert one[0].text == "the street was long" and one[2].text == "the cat sat on the mat"
        assert one[1].text == ("a street in the town" if cfg.lexicon_free is False else "a strret in the town")


def test_an_lm_the_workers_cannot_use_fails_at_once_with_its_message(tmp_path):
    bad = tmp_path / "lm.arpa.gz"
    bad.write_bytes(gzip.compress(b"\\data\\\nngram 1=1\n"))
    with pytest.raises(UserError, match="lm.arpa.gz: gzip-compressed"):
        ParallelBeamDecoder(DecoderConfig(type="beam", lm=str(bad)), TOK, jobs=2)


@pytest.mark.parametrize("argv, message", [(["--jobs", "0"], "--jobs 0: use 1"),
                                            (["--jobs", "2"], "--jobs 2 is for beam search")])
def test_cli_jobs_is_checked(tiny_model, digit_manifests, capsys, argv, message):
    assert main(["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]), *argv]) == 2
    assert message in capsys.readouterr().err
