import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.errors import UserError


def tone(rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * 300 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("rate, subtype, channels, fmt", [
    (16000, "PCM_16", 1, "WAV"), (8000, "PCM_U8", 1, "WAV"), (44100, "PCM_24", 2, "FLAC"),
    (48000, "FLOAT", 6, "WAV"), (22050, "PCM_32", 1, "WAV"), (48000, "VORBIS", 2, "OGG"),
])
def test_any_format_to_16k_mono(tmp_path, rate, subtype, channels, fmt):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(rate, 0.5, channels), rate, subtype=subtype, format=fmt)
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.ndim == 1
    assert abs(wav.numel() - 8000) <= 2  # 0.5 s at 16 kHz
    assert 0.3 < wav.abs().max() < 0.6  # amplitude survives channel averaging and resampling


def test_resampled_tone_keeps_its_frequency(tmp_path):
    path = tmp_path / "t.flac"
    sf.write(path, tone(44100, 1.0), 44100, subtype="PCM_24")
    wav = load_audio(path).numpy()
    peak_hz = np.argmax(np.abs(np.fft.rfft(wav))) * 16000 / len(wav)
    assert abs(peak_hz - 300) < 2


@pytest.mark.parametrize("content, match", [
    (b"", "cannot read audio"),
    (b"this is just text, not audio\n" * 10, "cannot read audio"),
])
def test_unreadable_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(UserError, match=match) as e:
        load_audio(path)
    assert "bad.wav" in str(e.value)


def test_missing_empty_and_nonfinite(tmp_path):
    with pytest.raises(UserError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(UserError, match="no samples"):
        load_audio(empty)
    nan = tmp_path / "nan.wav"
    x = tone(16000, 0.1)
    x[10] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(UserError, match="NaN"):
        load_audio(nan)


def test_real_files(librispeech_sample, fsdd):
    flac = next(librispeech_sample.rglob("*.flac"))
    assert load_audio(flac).numel() == sf.info(str(flac)).frames  # already 16 kHz
    wav8k = next(fsdd.glob("*.wav"))
    assert abs(load_audio(wav8k).numel() - 2 * sf.info(str(wav8k)).frames) <= 1
