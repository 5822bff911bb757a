"""bf16 inference (``--precision bf16`` of asr eval, transcribe, align and serve; ``Recognizer(precision=)``):
the model under autocast gives float32 log-probs close to fp32's and the same transcripts; exported models refuse it.
"""

import json

import pytest
import torch

import asr.transcribe
from asr.cli import main
from asr.precision import Autocast
from asr.transcribe import Recognizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bf16_log_probs_are_float32_and_near_fp32(tiny_model, fsdd, librispeech_sample):
    fp32, bf16 = Recognizer(tiny_model), Recognizer(tiny_model, precision="bf16")
    assert isinstance(bf16.model, Autocast) and not isinstance(fp32.model, Autocast)
    for f in sorted(fsdd.glob("*.wav"))[:3] + sorted(librispeech_sample.rglob("*.flac"))[:2]:
        a, b = fp32.transcribe(f, keep_log_probs=True), bf16.transcribe(f, keep_log_probs=True)
        assert b.log_probs.dtype == torch.float32 and b.log_probs.shape == a.log_probs.shape
        # posteriors within 0.01 (bf16 keeps 8 bits of mantissa; measured: 0.002 at most), the best token almost
        # everywhere (the main job's model: the same test WER in bf16, README)
        assert (a.log_probs.exp() - b.log_probs.exp()).abs().max() < 0.01
        assert (a.log_probs.argmax(-1) == b.log_probs.argmax(-1)).float().mean() > 0.95


def test_cli_eval_in_bf16_scores_like_fp32(tiny_model, digit_manifests, tmp_path, capsys):
    dev = digit_manifests[1]
    scores = {}
    for p in ("fp32", "bf16"):
        report = tmp_path / f"{p}.jsonl"
        assert main(["eval", "--model", str(tiny_model), "--manifest", str(dev), "--precision", p,
                     "--report", str(report)]) == 0
        out = dict(line.split()[:2] for line in capsys.readouterr().out.splitlines() if line.startswith(("WER", "CER")))
        rows = [json.loads(line) for line in report.read_text().splitlines()]
        scores[p] = float(out["WER"]), sum(r["hyp"] == r["ref"] for r in rows)
    assert abs(scores["fp32"][0] - scores["bf16"][0]) <= 5.0  # of 40 one-word utterances: two at most differ
    assert abs(scores["fp32"][1] - scores["bf16"][1]) <= 2


def test_bf16_is_refused_for_an_exported_model(tiny_model, tmp_path, capsys):
    ts = tmp_path / "model.ts"
    assert main(["export", "--model", str(tiny_model), "--format", "torchscript", "--out", str(ts)]) == 0
    assert main(["transcribe", "--model", str(ts), "--precision", "bf16", "a.wav"]) == 2
    assert "is for checkpoints" in capsys.readouterr().err


def test_transcribe_workers_get_the_precision(tiny_model, monkeypatch):
    """--jobs N starts each worker's Recognizer from the parent's settings, bf16 included."""
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # the worker's one-thread setting, not here
    rec = Recognizer(tiny_model, precision="bf16")
    asr.transcribe._init_worker(str(tiny_model), rec.decoder_cfg, str(rec.device), rec.longform, rec.precision)
    assert isinstance(asr.transcribe._WORKER.model, Autocast) and asr.transcribe._WORKER.precision == "bf16"
