"""The GPU code paths: bf16 autocast (runs on CPU too), and CUDA-only checks that skip cleanly without a GPU.

On a CUDA machine (``pytest tests/test_gpu.py``) these check what the LibriSpeech recipe relies on there:
cuDNN's packed LSTM against the padded two-pass one, log-mels computed on the GPU against the CPU's, and
a short bf16 training run with features on the device, and one in fp16 with the loss scaler.
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
@pytest.mark.parametrize("residual", [False, True])
def test_packed_cudnn_matches_flip_on_gpu(residual):
    """On the GPU, rnn_impl=packed (cuDNN, the default there) and flip give the same log-probs, with residual
    layers too."""
    cfg = to_dataclass(compose(["model=tiny", f"model.residual={residual}"]))
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
@pytest.mark.parametrize("residual", [False, True])
def test_auto_takes_cudnn_persistent_lstm_on_batches_of_8(residual):
    """Under autocast on a batch of 8 utterances, rnn_impl=auto takes flip, which cuDNN runs as its persistent
    kernel on an A100/H100-class GPU: packed's log-probs with a fraction of its kernel launches, residual layers
    or not. 7 utterances: packed."""
    from torch.profiler import ProfilerActivity, profile

    props = torch.cuda.get_device_properties(0)
    if not (props.major >= 8 and props.minor != 6 and props.multi_processor_count >= 98):
        pytest.skip(f"{props.name}: PyTorch does not ask cuDNN for its persistent LSTM on this GPU")
    cfg = to_dataclass(compose(["model=tiny", "model.hidden=128", "model.layers=2", "specaug=none",
                                f"model.residual={residual}"]))
    model = build_model(cfg, CharTokenizer()).cuda().eval()
    feats = torch.randn(8, 400, cfg.features.n_mels, device="cuda")
    lengths = torch.tensor([400, 380, 350, 300, 280, 250, 220, 200], device="cuda")
    picked, out, launches = [], {}, {}
    flip, packed = model._flip_lstm, model._packed_lstm
    model._flip_lstm = lambda x, n: picked.append(("flip", x.shape[0])) or flip(x, n)
    model._packed_lstm = lambda x, n: picked.append(("packed", x.shape[0])) or packed(x, n)
    for impl in ("auto", "packed"):
        model.cfg.rnn_impl = impl
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model(feats, lengths)  # warm-up: cuDNN plans
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                lp, n = model(feats, lengths)
                torch.cuda.synchronize()
        out[impl] = torch.cat([lp[b, : int(n[b])] for b in range(8)])
        launches[impl] = sum(e.count for e in prof.key_averages() if str(e.device_type).endswith("CUDA"))
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        model.cfg.rnn_impl = "auto"
        model(feats[:7], lengths[:7])
    assert picked == [("flip", 8)] * 2 + [("packed", 8)] * 2 + [("packed", 7)]
    assert launches["auto"] * 3 < launches["packed"], launches  # one kernel per layer and direction, not per step
    assert (out["auto"] - out["packed"]).abs().max() < 0.05  # both in fp16 (cuDNN under autocast)


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
    """The recipe's GPU defaults on a tiny model: device=auto (cuda), precision=auto (bf16, the loss scaled:
    cuDNN's LSTM runs in fp16), batches of 8 utterances (flip, cuDNN's persistent kernel where it has one), log-mels
    on the device (cache off); the loss goes down."""
    run = tmp_path / "gpu"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=2) + [
        "data.cache_features=false", "data.batch_multiple=8", "data.max_utts=64", "model.hidden=128"]))
    losses = _losses(run)
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert load_checkpoint(run / "last.pt")["scaler"]["scale"] >= 1.0


@cuda
def test_gpu_training_fp16_with_loss_scaler(digit_manifests, tmp_path, capsys):
    """precision=fp16 (what auto picks on a V100 or T4) on the GPU, packed cuDNN LSTM in fp16 under the loss
    scaler: finite losses that go down, the scale checkpointed."""
    run = tmp_path / "fp16"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=2) + ["precision=fp16"]))
    assert "fp16" in capsys.readouterr().err
    losses = _losses(run)
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert load_checkpoint(run / "last.pt")["scaler"]["scale"] >= 1.0


@cuda
@pytest.mark.parametrize("rnn_impl", ["packed", "auto"])
def test_real_gpu_out_of_memory_trains_the_batch_in_pieces(capsys, rnn_impl):
    """A batch that does not fit in the GPU memory allowed (``torch.cuda.set_per_process_memory_fraction``) is
    trained in pieces by ``_step``: a real CUDA out-of-memory error, not a simulated one, and the same loss and
    gradient as the whole batch where it fits (bf16 autocast, the recipe's GPU setting)."""
    from asr.train import _step
    from asr.data import Batch

    # auto: on 64 utterances flip (cuDNN's persistent kernel). With it, not even one utterance fit under the 55 %
    # limit below in 1 of 2 runs on an H100 (2026-11-27), while packed passed in every run. A likely cause, fixed
    # since: _step tried the pieces inside its except clause, where the traceback kept the failed attempt's
    # activations alive (tests/test_faults.py).
    cfg = to_dataclass(compose(["model=librispeech_100", "model.dropout=0", "specaug=none",
                                f"model.rnn_impl={rnn_impl}"]))
    torch.manual_seed(0)
    model = build_model(cfg, CharTokenizer()).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: the weights stay as they are between the steps
    b, t, n_tok = 64, 1500, 120
    lengths = torch.randint(t // 2, t + 1, (b,))
    lengths[0] = t
    batch = Batch(torch.randn(b, t, cfg.features.n_mels), lengths, torch.randint(1, 29, (b * n_tok,)),
                  torch.full((b,), n_tok), [f"u{i}" for i in range(b)], [""] * b)
    device = torch.device("cuda")

    def step():
        loss, gnorm, _ = _step(model, opt, batch, device, torch.bfloat16, 0.0, 1e9)
        grads = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
        return loss, gnorm, grads

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    loss1, _, g1 = step()
    peak, base = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction((base + 0.55 * (peak - base)) / total)
        loss2, why, g2 = step()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    err = capsys.readouterr().err
    assert "out of memory on a batch of 64 utterances" in err and "splitting it in two" in err
    assert loss2 is not None, why
    assert loss2 == pytest.approx(loss1, rel=2e-2)
    assert torch.nn.functional.cosine_similarity(g1, g2, dim=0) > 0.98
