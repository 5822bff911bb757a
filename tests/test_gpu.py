"""The GPU code paths: bf16 autocast (runs on CPU too), and CUDA-only checks that skip cleanly without a GPU.

On a CUDA machine (``pytest tests/test_gpu.py``) these check what the LibriSpeech recipe relies on there:
cuDNN's packed LSTM against the padded two-pass one, log-mels computed on the GPU against the CPU's, and
a short bf16 training run with features on the device.
"""

import csv
import math

import numpy as np
import pytest
import torch

from asr.checkpoint import build_model, load_checkpoint
from asr.config import FeatureConfig, compose, to_dataclass
from asr.data import WaveBatch
from asr.features import LogMel
from asr.text import CharTokenizer
from asr.train import train
from conftest import tiny_overrides

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _losses(run) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader(open(run / "train.csv"))]


def test_bf16_autocast_trains(digit_manifests, tmp_path, capsys):
    """precision=bf16 (the GPU default) on the CPU, also on a GPU machine: finite losses that go down, a usable
    checkpoint."""
    run = tmp_path / "bf16"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=2) + ["precision=bf16", "device=cpu"]))
    assert "device cpu, bf16" in capsys.readouterr().err
    losses = _losses(run)
    assert len(losses) >= 6 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    weights = load_checkpoint(run / "best.pt")["model"]
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())  # fp32 master weights


@cuda
def test_packed_cudnn_matches_flip_on_gpu():
    """On the GPU, rnn_impl=packed (cuDNN, the default there) and flip give the same log-probs."""
    cfg = to_dataclass(compose(["model=tiny"]))
    model = build_model(cfg, CharTokenizer()).cuda().eval()
    feats = torch.randn(3, 230, cfg.features.n_mels, device="cuda")
    lengths = torch.tensor([230, 171, 40])
    out = {}
    for impl in ("packed", "flip"):
        model.cfg.rnn_impl = impl
        with torch.no_grad():
            lp, n = model(feats, lengths.cuda())
        out[impl] = torch.cat([lp[b, : int(n[b])] for b in range(3)])
    assert torch.allclose(out["packed"], out["flip"], atol=5e-3)  # cuDNN may use TF32 inside


@cuda
def test_log_mels_on_gpu_match_cpu():
    rng = np.random.default_rng(0)
    lengths = torch.tensor([16000, 7001, 160])
    waves = torch.zeros(3, 16000)
    for i, n in enumerate(lengths.tolist()):
        waves[i, :n] = torch.from_numpy(0.2 * rng.standard_normal(n).astype(np.float32))
    batch = WaveBatch(waves, lengths, torch.zeros(0), torch.zeros(3), ["a", "b", "c"], ["", "", ""])
    gpu = batch.featurize(LogMel(FeatureConfig()).cuda())
    cpu = batch.featurize(LogMel(FeatureConfig()))
    assert gpu.features.is_cuda and gpu.feature_lengths.tolist() == cpu.feature_lengths.tolist()
    assert (gpu.features.cpu() - cpu.features).abs().max() < 1e-3


@cuda
def test_gpu_training_bf16_features_on_device(digit_manifests, tmp_path):
    """The recipe's GPU defaults on a tiny model: device=auto (cuda), precision=auto (bf16), packed cuDNN
    LSTM, log-mels on the device (cache off); the loss goes down."""
    run = tmp_path / "gpu"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=2) + ["data.cache_features=false"]))
    losses = _losses(run)
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
