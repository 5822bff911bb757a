"""Speed perturbation (data.speed_perturb): the resampling itself, the sampler's per-epoch factors, training."""

import csv
import math
from collections import Counter

import pytest
import torch

import asr.data
from asr.audio import as_float, change_speed
from asr.config import compose
from asr.data import BucketBatchSampler
from asr.errors import UserError
from asr.train import train
from conftest import tiny_overrides

SR = 16000


def peak_hz(wave: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(wave.float() * torch.hann_window(wave.shape[0]))
    return float(spectrum.abs().argmax()) * SR / wave.shape[0]


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_changes_tempo_and_pitch_together(factor):
    t = torch.arange(SR) / SR
    wave = 0.5 * torch.sin(2 * math.pi * 440 * t)  # 1 s at 440 Hz
    out = change_speed(wave, factor)
    assert out.dtype == torch.float32 and abs(out.shape[0] - SR / factor) <= 1
    assert peak_hz(out) == pytest.approx(440 * factor, abs=2.0)  # a bin is 1 Hz wide
    pcm = (wave * 32767).round().to(torch.int16)  # the int16 waveform path stays int16, within one step
    out16 = change_speed(pcm, factor)
    assert out16.dtype == torch.int16
    assert torch.allclose(as_float(out16), change_speed(as_float(pcm), factor), atol=1.01 / 32768)
    assert change_speed(wave, 1.0) is wave


def test_sampler_draws_a_factor_per_utterance_and_epoch_the_same_on_every_rank():
    frames = [100 + 7 * i for i in range(60)]
    speeds = [0.9, 1.0, 1.1]

    def sampler(epoch, **kw):
        s = BucketBatchSampler(frames, 3000, seed=3, speeds=speeds, **kw)
        s.set_epoch(epoch)
        return s.epoch_batches()

    plain = BucketBatchSampler(frames, 3000, seed=3)
    plain.set_epoch(1)
    e1 = sampler(1)
    assert [[i for i, _ in b] for b in e1] == plain.epoch_batches()  # same batches and order as without
    factors = [f for b in e1 for _, f in b]
    assert set(factors) == set(speeds) and min(Counter(factors).values()) >= 10
    assert sampler(1) == e1, "the same factors after a restart (resume)"
    assert [f for b in sampler(2) for _, f in b] != factors, "new factors every epoch"
    ranks = [sampler(1, rank=r, world_size=2) for r in (0, 1)]
    for whole, a, b in zip(e1, *ranks):  # DDP: the ranks' shares are the single process's batch
        assert sorted(a + b) == sorted(whole)


def test_training_uses_the_factors_in_both_feature_paths(digit_manifests, tmp_path, monkeypatch):
    seen = Counter()
    real = asr.data.change_speed

    def counted(wave, factor):
        seen[factor] += 1
        return real(wave, factor)

    monkeypatch.setattr(asr.data, "change_speed", counted)
    loss = {}
    for where in ("loader", "device"):
        run = tmp_path / where
        train(compose(tiny_overrides(run, *digit_manifests, epochs=1) + [
            "data.cache_features=false", f"data.features_on={where}", "data.speed_perturb=[0.9,1.1]"]))
        loss[where] = [float(r["loss"]) for r in csv.DictReader(open(run / "train.csv"))]
    assert set(seen) - {1.0} == {0.9, 1.1} and min(seen[0.9], seen[1.1]) > 50  # 1.0: the dev pass, unperturbed
    assert all(math.isfinite(x) for x in loss["loader"]) and len(loss["loader"]) >= 3
    assert loss["device"] == pytest.approx(loss["loader"], rel=1e-2)  # int16 rounding is the only difference


@pytest.mark.parametrize("overrides, message", [
    (["data.speed_perturb=[0.9,1.1]"], "set data.cache_features=false"),
    (["data.speed_perturb=[3.0]", "data.cache_features=false"], r"data.speed_perturb=\[3.0\]: factors must be in"),
])
def test_bad_speed_perturb_settings(digit_manifests, tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + overrides))
