"""Noise augmentation (data.noise): the SNR drawn is the SNR mixed, the draws follow the seed, the noise is
read in a segment, looped and resampled as needed, and training with it runs through the loader workers."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.config import compose
from asr.data import BucketBatchSampler
from asr.errors import UserError
from asr.noise import NoiseMixer
from asr.train import train
from conftest import tiny_overrides


def _noise_folder(root, rate=16000, seconds=2.0):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sf.write(root / "hum.wav", (0.1 * np.sin(2 * np.pi * 50 * np.arange(int(seconds * rate)) / rate)), rate)
    sf.write(root / "hiss.flac", 0.05 * rng.standard_normal(int(seconds * rate)), rate)
    return root


def _snr_db(clean, mixed):
    return 10 * math.log10(float(clean.pow(2).sum()) / float((mixed - clean).pow(2).sum()))


def test_mixed_snr_is_the_drawn_snr_and_follows_the_seed(tmp_path):
    mixer = NoiseMixer(_noise_folder(tmp_path / "noise"), snr_db=(3.0, 3.0), prob=1.0)
    clean = 0.3 * torch.sin(torch.arange(16000 * 1.5) / 16000 * 2 * math.pi * 440)
    for seed in range(6):
        assert _snr_db(clean, mixer(clean, seed)) == pytest.approx(3.0, abs=1e-3)
    assert torch.equal(mixer(clean, 7), mixer(clean, 7))
    assert not torch.equal(mixer(clean, 7), mixer(clean, 8))
    wide = NoiseMixer(tmp_path / "noise", snr_db=(0.0, 30.0), prob=1.0)
    snrs = [_snr_db(clean, wide(clean, s)) for s in range(40)]
    assert 0 <= min(snrs) < 10 and 20 < max(snrs) <= 30  # spread over the range
    pcm = (clean * 32768).round().to(torch.int16)  # the loader's int16 path: mixed as float
    assert wide(pcm, 3).dtype == torch.float32


def test_noise_prob_and_short_or_other_rate_noise(tmp_path):
    clean = torch.randn(16000 * 3) * 0.1
    never = NoiseMixer(_noise_folder(tmp_path / "a"), prob=0.0)
    assert all(never(clean, s) is clean for s in range(10))
    half = NoiseMixer(tmp_path / "a", prob=0.5)
    assert 10 < sum(half(clean, s) is not clean for s in range(60)) < 50
    short = NoiseMixer(_noise_folder(tmp_path / "b", rate=8000, seconds=0.25), snr_db=(10.0, 10.0), prob=1.0)
    seg = short.segment(short.files[0], 16000 * 3, 0.5)  # 0.25 s at 8 kHz, looped to 3 s at 16 kHz
    assert seg.shape == (48000,) and torch.allclose(seg[:4000], seg[4000:8000])
    assert _snr_db(clean, short(clean, 1)) == pytest.approx(10.0, abs=1e-3)


def test_noise_folder_errors(tmp_path):
    with pytest.raises(UserError, match="data.noise=.*none: no such directory"):
        NoiseMixer(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="data.noise=.*empty: no audio files"):
        NoiseMixer(tmp_path / "empty")
    (tmp_path / "empty" / "broken.wav").write_bytes(b"RIFF, but no wave")  # named before training starts
    with pytest.raises(UserError, match="data.noise: .*broken.wav: cannot read audio header"):
        NoiseMixer(tmp_path / "empty")


def test_sampler_noise_seeds_are_per_epoch_and_shared_by_ranks():
    frames = [100 + i for i in range(40)]  # batches of 4 at a 600-frame cap, none dropped for 2 ranks
    one = BucketBatchSampler(frames, 600, seed=3, speeds=[0.9, 1.1], noise=True)
    ranks = [BucketBatchSampler(frames, 600, seed=3, speeds=[0.9, 1.1], noise=True, rank=r, world_size=2)
             for r in range(2)]
    plain = BucketBatchSampler(frames, 600, seed=3, speeds=[0.9, 1.1])
    for epoch in (0, 1):
        for s in [one, plain, *ranks]:
            s.set_epoch(epoch)
        keys = [k for b in one.epoch_batches() for k in b]
        assert all(len(k) == 3 for k in keys) and len({k[2] for k in keys}) == len(keys)
        assert [k[:2] for k in keys] == [k for b in plain.epoch_batches() for k in b]  # speeds unchanged by noise
        shared = sorted(k for r in ranks for b in r.epoch_batches() for k in b)
        assert shared == sorted(keys)  # the two ranks split the single process's draws
    one.set_epoch(0)
    first = {k[0]: k[2] for b in one.epoch_batches() for k in b}
    one.set_epoch(1)
    assert first != {k[0]: k[2] for b in one.epoch_batches() for k in b}


@pytest.mark.parametrize("where", ["loader", "device"])
def test_training_with_noise_through_workers(digit_manifests, tmp_path, where):
    """Noise in the workers, before log-mels there or on the training device (batches then mix int16 clean
    and float32 noisy waveforms)."""
    noise = _noise_folder(tmp_path / "noise")
    run = tmp_path / "run"
    train(compose(tiny_overrides(run, *digit_manifests, epochs=1) + [
        f"data.noise={noise}", "data.cache_features=false", "data.num_workers=2", f"data.features_on={where}"]))
    assert (run / "last.pt").is_file()
    with pytest.raises(UserError, match="data.noise mixes new noise .* set data.cache_features=false"):
        train(compose(tiny_overrides(tmp_path / "x", *digit_manifests) + [f"data.noise={noise}"]))
    with pytest.raises(UserError, match=r"data.noise_snr=\[20.0, 5.0\]: expected \[lowest, highest\]"):
        train(compose(tiny_overrides(tmp_path / "x", *digit_manifests) + [
            f"data.noise={noise}", "data.cache_features=false", "data.noise_snr=[20,5]"]))


def test_dataset_items_get_the_seeds_noise(digit_manifests, tmp_path):
    """A key with a noise seed gives the utterance with that seed's noise, as log-mels or as a waveform (for
    log-mels on the GPU); a key without one gives it clean."""
    from asr.config import FeatureConfig
    from asr.data import UtteranceDataset
    from asr.features import LogMel
    from asr.manifest import read_manifest
    from asr.text import CharTokenizer

    ds = UtteranceDataset(read_manifest(digit_manifests[1])[:2], LogMel(FeatureConfig()), CharTokenizer())
    ds.noise = NoiseMixer(_noise_folder(tmp_path / "noise"), snr_db=(0.0, 0.0), prob=1.0)
    clean, noisy, again = ds[0][1], ds[(0, 1.0, 5)][1], ds[(0, 1.0, 5)][1]
    assert clean.shape == noisy.shape and torch.equal(noisy, again)
    assert (noisy - clean).abs().mean() > 0.1  # 0 dB: the noise shows in the log-mels
    ds.waveforms = True
    wave, noisy_wave = ds[0][1], ds[(0, 1.0, 5)][1]
    assert _snr_db(wave.float() / 32768 if wave.dtype == torch.int16 else wave, noisy_wave) == pytest.approx(0.0,
                                                                                                         abs=1e-3)


def test_eval_with_noise_is_per_utterance_and_hurts(tiny_model, digit_manifests, tmp_path, capsys):
    """``asr eval --noise``: each utterance's noise comes from its id, so the batching does not change a
    hypothesis; loud noise raises the loss; the options are checked."""
    from asr.checkpoint import load_model
    from asr.cli import main
    from asr.data import UtteranceDataset
    from asr.decode import build_decoder
    from asr.evaluate import evaluate
    from asr.features import LogMel
    from asr.manifest import read_manifest

    model, tok, cfg = load_model(tiny_model, torch.device("cpu"))
    ds = UtteranceDataset(read_manifest(digit_manifests[1]), LogMel(cfg.features), tok)
    decoder = build_decoder(cfg.decoder, tok)
    clean = evaluate(model, ds, decoder, torch.device("cpu"))
    ds.noise = NoiseMixer(_noise_folder(tmp_path / "noise"), snr_db=(-5.0, -5.0), prob=1.0)
    noisy = [evaluate(model, ds, decoder, torch.device("cpu"), max_frames=m) for m in (40000, 300)]
    assert noisy[0].rows == noisy[1].rows  # one batch of all, or batches of one or two: the same noise
    assert noisy[0].loss > clean.loss + 1.0
    other = evaluate(model, ds, decoder, torch.device("cpu"), noise_seed=1)
    assert other.loss != noisy[0].loss

    args = ["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]), "--report",
            str(tmp_path / "r.jsonl")]
    assert main(args + ["--noise", str(tmp_path / "noise"), "--snr", "-5"]) == 0
    out, err = capsys.readouterr()
    assert "noise: 2 files of" in err and "at -5 dB SNR" in err and out.startswith("WER ")
    assert main(args + ["--noise", str(tmp_path / "noise")]) == 0
    assert "at 10 dB SNR" in capsys.readouterr().err  # the default
    for snr in ("5", "10"):  # 10 too: the default's value given without --noise is still a mistake
        assert main(args + ["--snr", snr]) == 2
        assert "--snr is for --noise DIR" in capsys.readouterr().err
    assert main(args + ["--noise-seed", "3"]) == 2
    assert "--noise-seed is for --noise DIR or --rir DIR" in capsys.readouterr().err
    assert main(args + ["--noise", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().endswith("no such directory; give a folder of noise recordings "
                                                    "(e.g. MUSAN's noise/)")


def _rir_folder(root, taps):
    root.mkdir(parents=True, exist_ok=True)
    for i, h in enumerate(taps):
        sf.write(root / f"rir{i}.wav", np.asarray(h, dtype=np.float32), 16000, subtype="FLOAT")
    return root


def test_reverb_convolves_keeps_level_and_follows_the_seed(tmp_path):
    from asr.noise import Reverb

    rng = np.random.default_rng(1)
    wave = torch.from_numpy(rng.standard_normal(16000).astype(np.float32)) * 0.1
    # a response with silence before its direct sound: the shift puts the direct sound first
    delayed = np.zeros(400)
    delayed[100], delayed[300] = 0.5, 0.25  # direct sound, then one echo 200 samples later at half its level
    echo = Reverb(_rir_folder(tmp_path / "echo", [delayed]), prob=1.0)
    out = echo(wave, seed=7)
    expected = wave.clone()
    expected[200:] += 0.5 * wave[:-200]
    expected *= wave.pow(2).mean().sqrt() / expected.pow(2).mean().sqrt()
    assert torch.allclose(out, expected, atol=1e-5)  # convolved, the tail cut at the end, at the input's level
    assert float(out.pow(2).mean()) == pytest.approx(float(wave.pow(2).mean()), rel=1e-4)
    identity = Reverb(_rir_folder(tmp_path / "id", [[1.0, 0.0, 0.0]]), prob=1.0)
    assert torch.allclose(identity(wave, 0), wave, atol=1e-6)
    int16 = (wave * 32767).round().to(torch.int16)  # waveforms may come as int16 (data.features_on=device)
    assert torch.allclose(identity(int16, 0), int16.float() / 32768, atol=1e-6)
    never = Reverb(tmp_path / "echo", prob=0.0)
    assert never(wave, 3) is wave
    # which response, and whether, follow the seed: half of the seeds at prob 0.5, always the same for one seed
    two = Reverb(_rir_folder(tmp_path / "two", [[1.0, 0.5], [1.0, 0.0, 0.0, 0.9]]), prob=0.5)
    outs = [two(wave, s) for s in range(200)]
    assert all(torch.equal(two(wave, s), outs[s]) for s in range(5))
    changed = [s for s in range(200) if outs[s] is not wave]
    assert 70 < len(changed) < 130
    assert len({float(outs[s][1] - wave[1]) for s in changed}) == 2  # both responses drawn


def test_reverb_errors_name_the_setting(tmp_path):
    from asr.noise import Reverb

    with pytest.raises(UserError, match=r"data.rir=.*none: no such directory; .*, or data.rir=null"):
        Reverb(tmp_path / "none")
    zero = _rir_folder(tmp_path / "zero", [[0.0, 0.0, 0.0]])
    with pytest.raises(UserError, match=r"--rir: .*rir0.wav: all zeros, not an impulse response"):
        Reverb(zero, prob=1.0, key="--rir")(torch.ones(100), 0)
    with pytest.raises(UserError, match="data.rir reverberates the audio anew every epoch, .* set "
                                        "data.cache_features=false"):
        from asr.config import check_ranges, to_dataclass

        check_ranges(to_dataclass(compose([f"data.rir={tmp_path}"])))


def test_training_and_eval_with_reverb(digit_manifests, tiny_model, tmp_path, capsys):
    """Reverberation and noise together in training (loader workers), and ``asr eval --rir``."""
    from asr.cli import main
    from asr.corpus.noise import synth_noise

    rir = tmp_path / "rir"
    synth_noise(rir, ("rir",), files_per_kind=2)
    run = train(compose(tiny_overrides(tmp_path / "run", *digit_manifests, epochs=1) + [
        f"data.rir={rir}", "data.rir_prob=1.0", f"data.noise={_noise_folder(tmp_path / 'noise')}",
        "data.cache_features=false", "data.num_workers=2"]))
    assert (run / "best.pt").is_file()
    from asr.checkpoint import load_model
    from asr.data import UtteranceDataset
    from asr.decode import build_decoder
    from asr.evaluate import evaluate
    from asr.features import LogMel
    from asr.manifest import read_manifest
    from asr.noise import Reverb

    model, tok, cfg = load_model(tiny_model, torch.device("cpu"))
    ds = UtteranceDataset(read_manifest(digit_manifests[1]), LogMel(cfg.features), tok)
    decoder = build_decoder(cfg.decoder, tok)
    clean = evaluate(model, ds, decoder, torch.device("cpu"))
    ds.rir = Reverb(rir, prob=1.0)
    rooms = [evaluate(model, ds, decoder, torch.device("cpu"), max_frames=m) for m in (40000, 300)]
    assert rooms[0].rows == rooms[1].rows and rooms[0].loss != clean.loss
    args = ["eval", "--model", str(tiny_model), "--manifest", str(digit_manifests[1]), "--report",
            str(tmp_path / "r.jsonl")]
    assert main(args + ["--rir", str(rir)]) == 0
    out, err = capsys.readouterr()
    assert "reverberation: 2 impulse responses of" in err and out.startswith("WER ")
