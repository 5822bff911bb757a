import librosa
import numpy as np
import pytest
import torch

from asr.config import FeatureConfig, SpecAugmentConfig
from asr.features import LogMel, RunningStats, SpecAugment


@pytest.mark.parametrize("n", [160, 161, 16000, 23456])
def test_frame_count(n):
    lm = LogMel(FeatureConfig())
    f = lm(torch.randn(n))
    assert f.shape == (lm.num_frames(n), 80) == (1 + n // 160, 80)
    assert torch.isfinite(f).all()


def test_batched_matches_single():
    lm = LogMel(FeatureConfig())
    x = torch.randn(3, 8000)
    assert torch.allclose(lm(x)[1], lm(x[1]), atol=1e-4)


def test_parity_with_librosa_slaney():
    """Our torchaudio log-mel equals librosa's melspectrogram (slaney scale and norm)."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(16000)).astype(np.float32)
    ours = LogMel(FeatureConfig())(torch.from_numpy(wav)).numpy()
    ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=80,
                                         power=2.0, center=True, pad_mode="constant", htk=False, norm="slaney")
    ref = np.log(ref.T + 1e-6)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-3


def test_running_stats():
    x = torch.randn(1000, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 5
    rs = RunningStats(4)
    rs.update(x[:300])
    rs.update(x[300:])
    mean, std = rs.mean_std()
    assert torch.allclose(mean, x.mean(0), atol=1e-4)
    assert torch.allclose(std, x.std(0, unbiased=False), atol=1e-4)


def test_specaugment_only_in_training():
    sa = SpecAugment(SpecAugmentConfig(freq_masks=2, freq_width=20, time_masks=2, time_width=20, time_ratio=0.5))
    x = torch.randn(4, 200, 80) + 10
    sa.eval()
    assert torch.equal(sa(x), x)
    sa.train()
    torch.manual_seed(0)
    y = sa(x)
    assert y.shape == x.shape
    masked = (y == 0).float().mean().item()
    assert 0 < masked < 0.6
    assert not torch.equal((y[0] == 0), (y[1] == 0))  # a different mask per utterance
