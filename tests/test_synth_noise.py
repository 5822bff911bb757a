"""``asr synth-noise``: the coloured noises have the spectra they are named for, hum sits on the mains
frequency, babble is made of the given speech, files follow the seed, re-runs write nothing, bad requests fail
with one line."""

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.corpus.noise import SAMPLE_RATE, synth_noise
from asr.errors import UserError


def _slope(x: np.ndarray) -> float:
    """Slope of log10 power against log10 frequency from 100 Hz to 4 kHz (Welch-like average over 1 s pieces)."""
    pieces = x[: len(x) // SAMPLE_RATE * SAMPLE_RATE].reshape(-1, SAMPLE_RATE)
    power = (np.abs(np.fft.rfft(pieces * np.hanning(SAMPLE_RATE), axis=1)) ** 2).mean(0)
    f = np.fft.rfftfreq(SAMPLE_RATE, 1 / SAMPLE_RATE)
    band = (f >= 100) & (f <= 4000)
    return float(np.polyfit(np.log10(f[band]), np.log10(power[band]), 1)[0])


def test_coloured_noise_spectra_hum_and_determinism(tmp_path):
    paths = synth_noise(tmp_path / "a", ("white", "pink", "brown", "hum"), files_per_kind=2, seconds=8.0, seed=3)
    assert [p.name for p in paths] == [f"{k}-00{i}.flac" for k in ("white", "pink", "brown", "hum") for i in (0, 1)]
    audio = {p.stem: sf.read(p) for p in paths}
    for name, (x, rate) in audio.items():
        assert rate == SAMPLE_RATE and x.ndim == 1 and len(x) == 8 * SAMPLE_RATE, name
        assert 0.45 < np.abs(x).max() <= 0.5 + 1 / 32768, name  # scaled to the 0.5 peak
    for kind, exponent in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        assert _slope(audio[f"{kind}-000"][0]) == pytest.approx(exponent, abs=0.15), kind
    assert not np.array_equal(audio["pink-000"][0], audio["pink-001"][0])
    for i in (0, 1):  # the strongest component of the hum is the mains frequency
        x = audio[f"hum-00{i}"][0]
        peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * SAMPLE_RATE / len(x)
        assert min(abs(peak_hz - 50), abs(peak_hz - 60)) < 1.0
    # the same seed gives the same files, one kind alone included; another seed other files
    again = synth_noise(tmp_path / "b", ("pink",), files_per_kind=1, seconds=8.0, seed=3)
    assert np.array_equal(sf.read(again[0])[0], audio["pink-000"][0])
    other = synth_noise(tmp_path / "c", ("pink",), files_per_kind=1, seconds=8.0, seed=4)
    assert not np.array_equal(sf.read(other[0])[0], audio["pink-000"][0])
    # a re-run (e.g. after a kill) leaves the finished files alone
    stamps = {p: p.stat().st_mtime_ns for p in paths}
    synth_noise(tmp_path / "a", ("white", "pink", "brown", "hum"), files_per_kind=2, seconds=8.0, seed=3)
    assert {p: p.stat().st_mtime_ns for p in paths} == stamps


def test_babble_is_made_of_the_given_speech(tmp_path):
    """Babble from four 'talkers' that are pure tones: the babble's spectrum has those tones and little else."""
    speech = tmp_path / "speech"
    speech.mkdir()
    tones = (300.0, 700.0, 1100.0, 1900.0)
    for hz in tones:  # 8 kHz files: babble resamples them
        t = np.arange(8000) / 8000
        sf.write(speech / f"{int(hz)}.wav", 0.3 * np.sin(2 * np.pi * hz * t), 8000)
    (path,) = synth_noise(tmp_path / "n", ("babble",), files_per_kind=1, seconds=6.0, babble_from=speech)
    x, rate = sf.read(path)
    assert rate == SAMPLE_RATE and len(x) == 6 * SAMPLE_RATE
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    near = np.zeros_like(f, dtype=bool)
    for hz in tones:
        near |= np.abs(f - hz) < 20
    assert power[near].sum() > 0.9 * power.sum()


def test_bad_requests_fail_with_one_line(tmp_path, capsys):
    with pytest.raises(UserError, match=r"noise kinds \['rain'\]: unknown; choose from white"):
        synth_noise(tmp_path, ("pink", "rain"))
    with pytest.raises(UserError, match="babble noise needs speech to mix: give --babble-from DIR"):
        synth_noise(tmp_path, ("babble",))
    with pytest.raises(UserError, match="--babble-from .*nowhere: no such directory"):
        synth_noise(tmp_path, ("babble",), babble_from=tmp_path / "nowhere")
    (tmp_path / "few").mkdir()
    sf.write(tmp_path / "few" / "a.wav", np.zeros(800), 8000)
    with pytest.raises(UserError, match="--babble-from .*few: 1 audio files .* at least 4 recordings"):
        synth_noise(tmp_path, ("babble",), babble_from=tmp_path / "few")
    with pytest.raises(UserError, match="--seed -1: use 0 or more"):
        synth_noise(tmp_path, ("pink",), seed=-1)
    with pytest.raises(UserError, match="nothing to make: 1 kinds, 0 files per kind"):
        synth_noise(tmp_path, ("pink",), files_per_kind=0)
    assert main(["synth-noise", "--out", str(tmp_path / "o"), "--kinds", "hum", "--files", "1", "--seconds", "1"]) == 0
    assert capsys.readouterr().out.strip().endswith("1 files (hum), 0.0 min")
    assert main(["synth-noise", "--out", str(tmp_path / "o"), "--kinds", "babble"]) == 2
    assert capsys.readouterr().err.startswith("error: babble noise needs speech")


def _rt60(h: np.ndarray) -> float:
    """Reverberation time from Schroeder's backward-integrated energy decay, fitted from -5 to -25 dB (T20 x 3)."""
    edc = 10 * np.log10(np.maximum(np.cumsum((h ** 2)[::-1])[::-1] / np.sum(h ** 2), 1e-30))  # 0 past the tail
    fit = (edc <= -5) & (edc >= -25)
    slope = np.polyfit(np.arange(len(h))[fit] / SAMPLE_RATE, edc[fit], 1)[0]  # dB per second
    return -60 / slope


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_room_impulse_response_has_its_reverberation_time_and_direct_ratio(rt60):
    from asr.corpus.noise import room_impulse_response

    h = room_impulse_response(np.random.default_rng(0), rt60=rt60, drr_db=0.0)
    assert len(h) == int(1.5 * rt60 * SAMPLE_RATE) and h[0] == 1.0 and np.argmax(np.abs(h)) == 0
    assert _rt60(h) == pytest.approx(rt60, rel=0.1)
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(0.0, abs=1e-6)  # direct : tail energy


def test_synth_rir_files_only_when_named(tmp_path, capsys):
    paths = synth_noise(tmp_path / "rir", ("rir",), files_per_kind=4, seed=0)
    times, lengths = [], set()
    for p in paths:
        h, rate = sf.read(p)
        assert rate == SAMPLE_RATE and sf.info(p).subtype == "PCM_24" and np.argmax(np.abs(h)) == 0
        times.append(_rt60(h))
        lengths.add(len(h))
        assert 0.18 < times[-1] < 1.1 and len(h) == pytest.approx(1.5 * times[-1] * SAMPLE_RATE, rel=0.1)
    assert len(lengths) == 4 and max(times) - min(times) > 0.1  # four rooms, of different sizes
    assert main(["synth-noise", "--out", str(tmp_path / "n"), "--files", "1", "--seconds", "1"]) == 0
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "n").iterdir()) == ["brown", "hum", "pink", "white"]
