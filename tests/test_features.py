import librosa
import numpy as np
import pytest
import torch

from asr.config import FeatureConfig, SpecAugmentConfig
from asr.data import UtteranceDataset, collate, collate_waves
from asr.features import (DB_TO_LN, LogMel, RunningStats, SpecAugment, feature_echo, feature_eq, freq_warp,
                          mel_centers_hz)
from asr.manifest import Utterance
from asr.text import CharTokenizer


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


@pytest.mark.parametrize("subtypes, dtype", [(["PCM_24"] * 4, torch.float32), (["PCM_16"] * 4, torch.int16),
                                             (["PCM_16", "PCM_24", "PCM_16", "PCM_16"], torch.float32)])
def test_device_features_match_the_loader(tmp_path, subtypes, dtype):
    """A WaveBatch featurized in one call gives the Batch that collate makes from per-utterance features:
    same lengths, same valid frames (LogMel pads with zeros, as the batch does), zeros past each length.
    16-bit files travel as int16 (half the bytes), a batch with any other file as float32."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    utts = []
    for i, n in enumerate([16000, 7001, 12345, 160]):  # lengths that are and are not multiples of the hop
        path = tmp_path / f"u{i}.flac"
        sf.write(path, (0.2 * rng.standard_normal(n)).astype(np.float32), 16000, subtype=subtypes[i])
        utts.append(Utterance(f"u{i}", str(path), n / 16000, "a b"))
    ds = UtteranceDataset(utts, LogMel(FeatureConfig()), CharTokenizer())
    ref = collate([ds[i] for i in range(len(ds))])
    ds.waveforms = True
    waves = collate_waves([ds[i] for i in range(len(ds))])
    assert waves.waves.shape == (4, 16000) and waves.wave_lengths.tolist() == [16000, 7001, 12345, 160]
    assert waves.waves.dtype == dtype
    got = waves.featurize(LogMel(FeatureConfig()))
    assert got.feature_lengths.tolist() == ref.feature_lengths.tolist() == [101, 44, 78, 2]
    assert got.features.shape == ref.features.shape
    assert (got.features - ref.features).abs().max() < 1e-5  # float rounding of a batched FFT
    assert torch.equal(got.targets, ref.targets) and got.ids == ref.ids and got.texts == ref.texts
    assert (got.features[1, 44:] == 0).all() and (got.features[1, :44] != 0).any()


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


def test_freq_warp_scales_the_mel_axis():
    """A ramp over the mel bins comes out as a ramp with slope in [1 - w, 1 + w], one slope per utterance."""
    torch.manual_seed(0)
    ramp = torch.arange(80, dtype=torch.float32).expand(16, 30, 80)  # feature value = bin index
    y = freq_warp(ramp, 0.2)
    assert y.shape == ramp.shape
    slopes = y[:, :, 1] - y[:, :, 0]  # (B, T): bin 1 reads the input at `factor`
    assert torch.allclose(slopes, slopes[:, :1].expand_as(slopes))  # same warp over all frames
    assert ((slopes >= 0.8 - 1e-5) & (slopes <= 1.2 + 1e-5)).all()
    assert slopes.std() > 0.05  # a different warp per utterance
    assert y.max() <= 79 + 1e-5  # clamped at the top bin, never reads past it
    assert torch.equal(freq_warp(ramp, 0.0), ramp)
    some = freq_warp(ramp, 0.2, prob=0.5)
    unwarped = (some == ramp).flatten(1).all(1)
    assert 0.2 < unwarped.float().mean() < 0.8  # about half left as they were


def test_mel_centers_are_librosas_slaney_centres():
    for cfg in (FeatureConfig(), FeatureConfig(n_mels=40, f_max=4000.0), FeatureConfig(f_min=20.0, sample_rate=8000)):
        f_max = cfg.f_max or cfg.sample_rate / 2
        ref = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.f_min, fmax=f_max, htk=False)[1:-1]
        np.testing.assert_allclose(mel_centers_hz(cfg).numpy(), ref, rtol=1e-5)


def test_freq_warp_on_the_hz_axis_scales_frequency_as_vtlp():
    """With the bins' centre frequencies, each bin reads the input at its own frequency times one factor per
    utterance: features whose value is the bin's frequency come out as that frequency times the factor (exactly,
    as the interpolation is linear in Hz between centres), clamped to the lowest and highest bin."""
    torch.manual_seed(0)
    centers = mel_centers_hz(FeatureConfig())
    x = centers.expand(16, 30, 80)
    y = freq_warp(x, 0.2, centers_hz=centers)
    factor = y[:, :, 20] / centers[20]  # (B, T): bin 20 (about 700 Hz) is never clamped
    assert torch.allclose(factor, factor[:, :1].expand_as(factor))  # same warp over all frames
    assert ((factor >= 0.8 - 1e-4) & (factor <= 1.2 + 1e-4)).all() and factor.std() > 0.05
    expected = (centers * factor[:, :1]).clamp(centers[0].item(), centers[-1].item()).unsqueeze(1).expand_as(y)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-2)
    assert SpecAugment(SpecAugmentConfig(freq_warp_axis="hz")).centers_hz is not None
    with pytest.raises(ValueError, match="freq_warp_axis"):
        SpecAugment(SpecAugmentConfig(freq_warp_axis="bark"))


def test_feature_echo_repeats_an_impulse_at_the_delay_with_the_gain():
    """An impulse (0 against a -20 floor, log power) comes back every d frames, k repeats at k * g dB; frames
    past an utterance's length stay as they were; the ones an echo does not reach are unchanged."""
    torch.manual_seed(0)
    x = torch.full((2, 40, 3), -20.0)
    x[:, 5] = 0.0
    y = feature_echo(x, torch.tensor([40, 12]), 1.0, (10, 10), (-6.0, -6.0))
    db = -6.0 * DB_TO_LN  # ln of the power gain
    for k in (1, 2, 3):
        assert torch.allclose(y[0, 5 + 10 * k], torch.logaddexp(torch.tensor(-20.0), torch.tensor(k * db)))
    assert torch.equal(y[0, :10], x[0, :10])  # before the first echo of frame 0
    assert torch.allclose(y[1, 15], torch.tensor(-20.0))  # utterance 2 ends at frame 12: no echo past it
    assert torch.allclose(y[1, 10], torch.logaddexp(torch.tensor(-20.0), torch.tensor(-20.0 + db)))  # floor echoes


def test_feature_echo_draws_per_utterance_and_only_the_asked_share():
    torch.manual_seed(0)
    x = torch.randn(200, 60, 8)
    lengths = torch.full((200,), 60)
    y = feature_echo(x, lengths, 0.3, (3, 25), (-15.0, -3.0))
    changed = (y != x).flatten(1).any(1)
    assert 0.2 < changed.float().mean() < 0.4
    assert (y >= x - 1e-6).all()  # an echo only adds power
    assert torch.equal(feature_echo(x, lengths, 0.0, (3, 25), (-15.0, -3.0)), x)


@pytest.mark.parametrize("setting", [{"freq_warp": 0.2}, {"echo_prob": 1.0}, {"eq_prob": 1.0}],
                         ids=["warp", "echo", "eq"])
def test_log_mel_augmentations_only_in_training_and_before_normalization(setting):
    """Each works on the log-mels before normalization (``raw``), in training only; the masks' ``forward`` leaves
    them alone; all are off by default."""
    sa = SpecAugment(SpecAugmentConfig(freq_masks=0, time_masks=0, **setting))
    x = torch.randn(4, 80, 80)
    n = torch.full((4,), 80)
    assert torch.equal(sa.eval().raw(x, n), x)
    assert not torch.equal(sa.train().raw(x, n), x)
    assert torch.equal(sa.train()(x), x)
    assert torch.equal(SpecAugment(SpecAugmentConfig()).train().raw(x, n), x)
    assert SpecAugment(SpecAugmentConfig(), FeatureConfig(hop_ms=10.0)).echo_delays == (3, 25)  # 30-250 ms
    assert SpecAugment(SpecAugmentConfig(), FeatureConfig(hop_ms=20.0)).echo_delays == (2, 12)


def test_feature_eq_adds_one_smooth_bounded_curve_per_picked_utterance():
    """Every frame of an equalized utterance moves by the same curve over the mel bins, at most eq_db dB, linear
    between its anchors; the others are untouched; about the asked share is equalized."""
    torch.manual_seed(0)
    x = torch.randn(300, 7, 81)
    y = feature_eq(x, 0.4, 6.0, points=5)
    delta = (y - x) / DB_TO_LN  # dB
    picked = delta.abs().flatten(1).amax(1) > 0
    assert 0.3 < picked.float().mean() < 0.5
    assert torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-4)  # the same curve in every frame
    assert delta.abs().max() <= 6.0 + 1e-4
    curve = delta[:, 0]
    second = curve[:, 2:] - 2 * curve[:, 1:-1] + curve[:, :-2]  # zero inside each linear piece of 20 bins
    assert (second.abs() > 1e-3).sum(1).max() <= 3  # bends only at the 3 inner anchors
    assert torch.equal(feature_eq(x, 0.0, 6.0), x)
