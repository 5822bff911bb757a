"""Exported models (TorchScript, ONNX) give the checkpoint's log-probs and transcriptions."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from asr.checkpoint import build_model, load_model
from asr.cli import main
from asr.config import ModelConfig, TrainConfig
from asr.export import example_inputs, export_onnx, export_torchscript, exportable, load_exported, max_abs_diff
from asr.io import atomic_write_bytes
from asr.text import CharTokenizer, train_bpe
from asr.transcribe import Recognizer

ort = pytest.importorskip("onnxruntime")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["torchscript", "onnx"])
def exported(request, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / ("model.onnx" if request.param == "onnx" else "model.ts")
    assert main(["export", "--model", str(tiny_model), "--format", request.param, "--out", str(out)]) == 0
    return request.param, out


def run_exported(fmt, path, feats, lengths):
    if fmt == "onnx":
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        lp, n = sess.run(None, {"features": feats.numpy(), "lengths": lengths.numpy()})
        return torch.from_numpy(lp), torch.from_numpy(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated in torch 2.14, still works
        return torch.jit.load(str(path))(feats, lengths)


@pytest.mark.parametrize("lengths", [(211, 150, 97), (64,)])
def test_exported_log_probs_match_pytorch(exported, tiny_model, lengths):
    fmt, path = exported
    model, _, cfg = load_model(tiny_model)
    feats, lens = example_inputs(cfg.features.n_mels, lengths)  # (B, T, 80), two batch sizes, three lengths
    with torch.no_grad():
        ref, ref_lens = model(feats, lens)
        also_flip, _ = exportable(model)(feats, lens)
    got, got_lens = run_exported(fmt, path, feats, lens)
    assert got_lens.tolist() == ref_lens.tolist() == [(n + 3) // 4 for n in lengths]
    for b, n in enumerate(ref_lens.tolist()):
        assert (got[b, :n] - ref[b, :n]).abs().max() < 1e-4
        assert (also_flip[b, :n] - ref[b, :n]).abs().max() < 1e-5  # flip = the checkpoint's LSTM


def test_transcription_with_the_export(exported, tiny_model, fsdd, librispeech_sample):
    _, path = exported
    ours, theirs = Recognizer(tiny_model), Recognizer(path)
    assert theirs.tokenizer.tokens == ours.tokenizer.tokens and theirs.cfg.features == ours.cfg.features
    for f in [sorted(fsdd.glob("*.wav"))[0], sorted(librispeech_sample.rglob("*.flac"))[0]]:
        a, b = ours.transcribe(f, keep_log_probs=True), theirs.transcribe(f, keep_log_probs=True)
        assert a.text == b.text and [w["word"] for w in a.words] == [w["word"] for w in b.words]
        assert np.abs((a.log_probs - b.log_probs).numpy()).max() < 1e-4
        assert torch.equal(a.log_probs.argmax(-1), b.log_probs.argmax(-1))


def test_export_errors(tiny_model, tmp_path, capsys):
    assert main(["transcribe", "--model", str(tmp_path / "x.onnx"), "a.wav"]) == 2
    assert "no such model file" in capsys.readouterr().err
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert main(["transcribe", "--model", str(tmp_path / "bad.onnx"), "a.wav"]) == 2
    assert "not a readable exported model" in capsys.readouterr().err


def test_bpe_model_exports_with_its_tokenizer(tmp_path):
    pytest.importorskip("sentencepiece")
    bpe = train_bpe(["hello world", "say hello to the world"] * 20, 40, tmp_path / "bpe.model")
    cfg = TrainConfig(model=ModelConfig(conv_channels=4, hidden=16, layers=2, dropout=0.0))
    model = build_model(cfg, bpe).eval()
    atomic_write_bytes(tmp_path / "m.onnx", export_onnx(model, cfg, bpe))
    exported, tok, cfg2 = load_exported(tmp_path / "m.onnx")
    assert tok.tokens == bpe.tokens and tok.encode("hello world") == bpe.encode("hello world")
    assert cfg2.model == cfg.model and max_abs_diff(model, exported, cfg.features.n_mels) < 1e-4


def test_subsampling_3_exports_with_its_frame_rate(tmp_path):
    """A /3 model (the main job's) exports with its setting: the checkpoint's log-probs, ceil(T / 3) frames, and
    30 ms frames for the recognizer that loads the export."""
    cfg = TrainConfig(model=ModelConfig(conv_channels=4, hidden=16, layers=2, dropout=0.0, subsampling=3))
    model = build_model(cfg, CharTokenizer()).eval()
    path = tmp_path / "m.onnx"
    atomic_write_bytes(path, export_onnx(model, cfg, CharTokenizer()))
    exported, _, cfg2 = load_exported(path)
    assert cfg2.model.subsampling == 3 and max_abs_diff(model, exported, cfg.features.n_mels) < 1e-4
    feats, lens = example_inputs(cfg.features.n_mels, (211, 97))
    assert run_exported("onnx", path, feats, lens)[1].tolist() == [71, 33]  # ceil(211 / 3), ceil(97 / 3)
    assert Recognizer(path).frame_s == pytest.approx(0.03)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("setting", ["utterance_cmn", "residual"])
def test_main_job_model_settings_are_in_the_exported_graph(fmt, setting, tmp_path):
    """Per-utterance mean normalization (the main job's and the digits recipe's models) and residual LSTM layers
    (the main job's) are part of the exported graph: the checkpoint's log-probs on batches of other lengths than
    the traced one, padded frames included."""
    cfg = TrainConfig(model=ModelConfig(conv_channels=4, hidden=16, layers=3, dropout=0.0, subsampling=3,
                                        **{setting: True}))
    model = build_model(cfg, CharTokenizer()).eval()
    with torch.no_grad():
        model.norm.set_stats(torch.randn(cfg.features.n_mels), torch.rand(cfg.features.n_mels) + 0.5)
    path = tmp_path / ("m.onnx" if fmt == "onnx" else "m.ts")
    export = export_onnx if fmt == "onnx" else export_torchscript
    atomic_write_bytes(path, export(model, cfg, CharTokenizer()))
    exported, _, cfg2 = load_exported(path)
    assert getattr(cfg2.model, setting)
    assert max_abs_diff(model, exported, cfg.features.n_mels, batches=((300, 41, 122), (57,), (403, 402))) < 1e-4
    # the setting is really there: the same weights without it give other log-probs
    plain = build_model(TrainConfig(model=replace(cfg.model, **{setting: False})), CharTokenizer()).eval()
    plain.load_state_dict(model.state_dict())
    assert max_abs_diff(plain, exported, cfg.features.n_mels) > 1e-3
