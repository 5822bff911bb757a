import math
import struct
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import MAX_RESAMPLE_UNITS, PCM16_SCALE, load_audio, load_audio_pcm16, resample_units
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


@pytest.mark.parametrize("rate", [44100, 44101, 7919, 96001])
def test_resampled_tone_keeps_its_frequency(tmp_path, rate):
    """Odd rates too: 44,101 Hz once took 106 s and 12 GB of memory for 2 s (a 44,101-sample period)."""
    path = tmp_path / ("t.flac" if rate == 44100 else "t.wav")  # FLAC takes odd rates only up to 65,535 Hz
    sf.write(path, tone(rate, 1.0), rate, subtype="PCM_24")
    t = time.perf_counter()
    wav = load_audio(path).numpy()
    assert time.perf_counter() - t < 5
    assert abs(len(wav) - 16000) <= 2
    peak_hz = np.argmax(np.abs(np.fft.rfft(wav))) * 16000 / len(wav)
    assert abs(peak_hz - 300) < 2


@pytest.mark.parametrize("orig", [8000, 11025, 22050, 44100, 48000, 44101, 7919, 96001, 192000, 1000003])
def test_resample_units_small_and_close(orig):
    a, b = resample_units(orig, 16000)
    assert a <= MAX_RESAMPLE_UNITS and b <= MAX_RESAMPLE_UNITS
    assert abs(b / a / (16000 / orig) - 1) < 1e-4
    if 16000 % math.gcd(orig, 16000) == 0 and max(orig, 16000) // math.gcd(orig, 16000) <= MAX_RESAMPLE_UNITS:
        assert (a, b) == (orig // math.gcd(orig, 16000), 16000 // math.gcd(orig, 16000))  # exact when small


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


def _wav_with_format_tag(tag: int) -> bytes:
    """A RIFF/WAVE file whose fmt chunk names codec ``tag`` (0x0055: MPEG layer 3 inside WAV)."""
    fmt = struct.pack("<HHIIHH", tag, 1, 16000, 2000, 1, 0)
    data = bytes(1000)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_truncated_flac_and_unsupported_codecs(tmp_path):
    flac = tmp_path / "cut.flac"
    sf.write(flac, tone(16000, 1.0), 16000)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])  # a download cut in the middle
    cases = {flac: "cut.flac: cannot read audio",
             tmp_path / "mp3.wav": "mp3.wav: cannot read audio",
             tmp_path / "a.m4a": "a.m4a: cannot read audio .*supported formats"}
    (tmp_path / "mp3.wav").write_bytes(_wav_with_format_tag(0x0055))
    (tmp_path / "a.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(500))  # AAC
    for path, match in cases.items():
        with pytest.raises(UserError, match=match):
            load_audio(path)


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
    x[10] = -np.inf
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(UserError, match="nan.wav: the audio contains NaN or infinite samples"):
        load_audio(nan)


@pytest.mark.parametrize("rate, subtype, channels, fmt, dtype", [
    (16000, "PCM_16", 1, "FLAC", torch.int16), (16000, "PCM_16", 1, "WAV", torch.int16),
    (16000, "PCM_24", 1, "FLAC", torch.float32), (16000, "PCM_16", 2, "WAV", torch.float32),
    (8000, "PCM_16", 1, "WAV", torch.float32),
])
def test_pcm16_loader_path(tmp_path, rate, subtype, channels, fmt, dtype):
    """16-bit mono files at the target rate come back as int16, exactly load_audio's samples times 32768;
    anything else as load_audio's float32."""
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(rate, 0.5, channels), rate, subtype=subtype, format=fmt)
    got, ref = load_audio_pcm16(path), load_audio(path)
    assert got.dtype == dtype and got.shape == ref.shape
    assert torch.equal(got.float() / PCM16_SCALE if dtype == torch.int16 else got, ref)


def test_pcm16_loader_path_errors(tmp_path):
    with pytest.raises(UserError, match="no such audio file"):
        load_audio_pcm16(tmp_path / "nope.flac")
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(UserError, match="bad.flac: cannot read audio"):
        load_audio_pcm16(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    with pytest.raises(UserError, match="no samples"):
        load_audio_pcm16(empty)


def test_real_files(librispeech_sample, fsdd):
    flac = next(librispeech_sample.rglob("*.flac"))
    assert load_audio(flac).numel() == sf.info(str(flac)).frames  # already 16 kHz
    wav8k = next(fsdd.glob("*.wav"))
    assert abs(load_audio(wav8k).numel() - 2 * sf.info(str(wav8k)).frames) <= 1
